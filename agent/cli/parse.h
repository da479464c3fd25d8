/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The CLI's texts, parsed and built without I/O (unit-tested): sizes with
 * binary suffixes, chunk sizes, snapshot ids and id prefixes, the
 * peersnap target's table line and its status line.
 */
#ifndef PSC_PARSE_H
#define PSC_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manifest.h"

/* Shortest snapshot id prefix the daemon resolves. */
#define CLI_ID_PREFIX_MIN	8
#define CLI_ID_HEX_MAX		64

/*
 * A decimal number with an optional binary suffix, case-insensitive:
 * K (2^10), M (2^20), G (2^30), optionally followed by "iB" or "B"
 * ("256K", "4MiB", "1g"). -EINVAL for anything else, -ERANGE on overflow.
 */
int cli_parse_size(const char *s, uint64_t *ret);

/* A chunk size: cli_parse_size(), then a power of two from 4K to 4M.
 * -EINVAL. */
int cli_parse_chunk_size(const char *s, uint32_t *ret);

/* A snapshot id or a prefix of one: CLI_ID_PREFIX_MIN..64 hex digits.
 * -EINVAL. */
int cli_check_id_arg(const char *s);

/*
 * The table line for dmsetup and libdevmapper (design brief section 2):
 * "0 <sectors> peersnap <metadata> <cache> <chunk_sectors> <id>". The
 * target covers whole chunks. -ENOSPC if cap is too small.
 */
int cli_format_table(char *buf, size_t cap, const struct psd_manifest *m,
		     const char *metadata, const char *cache);

/* The target's parameters: the table line after "0 <sectors> peersnap ". */
const char *cli_table_params(const char *line);

/* The fields of the peersnap target's status line (kmod/target.c,
 * ps_status()) that the CLI uses. */
struct cli_target_status {
	uint32_t chunk_sectors;
	uint64_t present, total, dirty;
	uint64_t inflight, fetched, failed;
	bool agent_connected;
	bool hydrating;
};

/* -EINVAL if the line is not a peersnap status line. */
int cli_parse_status(const char *line, struct cli_target_status *ret);

#endif /* PSC_PARSE_H */
