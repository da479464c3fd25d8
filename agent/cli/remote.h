/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshots held by the daemon, as the CLI reads them: a manifest by id
 * or unique id prefix (GET_MANIFEST), decoded and checked here too, and
 * index chunks (GET_INDEX) checked against it. The daemon is trusted to
 * run the commands, not to hand us well-formed bytes.
 */
#ifndef PSC_REMOTE_H
#define PSC_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "manifest.h"

/*
 * The manifest of the snapshot named by arg (8..64 hex digits, already
 * checked with cli_check_id_arg()) or, when arg is NULL, by id. -errno
 * with c->err set; *ret (psd_manifest_free()) on success.
 */
int cli_remote_manifest(struct cli_client *c, const char *arg,
			const uint8_t *id, struct psd_manifest **ret);

/*
 * Index chunk k of m into buf (m->geo.index_chunk_size bytes), checked
 * with psd_manifest_index_verify(); *ret_len its length. An index chunk
 * whose hash is all zeros is zeros, without asking.
 */
int cli_remote_index(struct cli_client *c, const struct psd_manifest *m,
		     uint32_t k, uint8_t *buf, size_t *ret_len);

#endif /* PSC_REMOTE_H */
