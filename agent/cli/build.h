/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Building a new snapshot (publish, commit): the hash of every chunk,
 * laid out so that the array *is* the index (docs/manifest-format.md,
 * section 3: index chunk k is the hashes of chunks [k*E, k*E + E) back to
 * back), the signed manifest, and handing both to the daemon with
 * ADD_BEGIN / ADD_INDEX / ADD_PRESENT / ADD_COMMIT (docs/control.md).
 */
#ifndef PSC_BUILD_H
#define PSC_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "client.h"
#include "manifest.h"

struct cli_build {
	struct psd_geometry geo;
	uint8_t (*hashes)[PSD_HASH_LEN];	/* geo.chunk_count entries */
};

/* index_chunk_size 0: the default. -EINVAL (reason in err), -ENOMEM. */
int cli_build_init(struct cli_build *b, uint64_t size, uint32_t chunk_size,
		   uint32_t index_chunk_size, struct psd_mf_err *err);
void cli_build_free(struct cli_build *b);

/* Index chunk k's bytes (psd_geometry_index_len() of them). */
const uint8_t *cli_build_index_chunk(const struct cli_build *b, uint32_t k,
				     size_t *ret_len);

/*
 * Loads this host's identity (the configuration's path; a missing one
 * points at 'peersnap keygen'). Prints the reason on failure; the caller
 * wipes *ret (psd_identity_wipe()) when done.
 */
int cli_load_identity(struct cli_ctx *ctx, struct psd_identity *ret);

/*
 * Signs a manifest of b (created now) with id. Prints the reason on
 * failure. *ret_buf is free()d by the caller.
 */
int cli_build_sign(const struct cli_build *b, const struct psd_identity *id,
		   const char *name, const uint8_t *parent,
		   uint8_t **ret_buf, size_t *ret_len);

/* Where the daemon finds the new snapshot's chunks. */
struct cli_source {
	enum psd_ctl_source kind;
	const char *path;		/* absolute */
	const uint8_t *present;		/* CACHE only: chunk_count bits */
};

/*
 * Sends the manifest, every index chunk that is not all zeros and, for a
 * cache device, its present bitmap; *ret_id on success. On failure
 * c->err says why (the add is aborted).
 */
int cli_build_add(struct cli_client *c, const struct cli_build *b,
		  const uint8_t *manifest, size_t manifest_len,
		  const struct cli_source *src, uint8_t ret_id[PSD_HASH_LEN]);

#endif /* PSC_BUILD_H */
