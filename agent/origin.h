/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Origin backend: maps a snapshot id to the image file that holds its data.
 * This is the first, local backend; the swarm transport replaces it later
 * behind the same lookup. Image files are opened on first use and kept open
 * (they are immutable, so their size is read once).
 */
#ifndef PSD_ORIGIN_H
#define PSD_ORIGIN_H

#include <stddef.h>
#include <stdint.h>

#include <linux/peersnap.h>

#include "config.h"

#define PSD_SNAPSHOT_HEX_LEN	(2 * PEERSNAP_SNAPSHOT_ID_LEN)

/* The value of one hex digit (either case), or -1. */
int psd_hex_nibble(char c);

/* How many of s's first len characters are hex digits before the first
 * that is not (len if all are). */
size_t psd_hex_span(const char *s, size_t len);

/* Parses exactly 64 hex digits (either case). -EINVAL. */
int psd_hex_id_parse(const char *s, size_t len,
		     uint8_t ret_id[PEERSNAP_SNAPSHOT_ID_LEN]);

/* Writes 64 lower-case hex digits and a NUL. */
void psd_hex_id_format(const uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN],
		       char out[PSD_SNAPSHOT_HEX_LEN + 1]);

/*
 * Parses a command-line "<64-hex id>=<image file>". On success *ret_path
 * points into arg. On failure returns -EINVAL and explains in err.
 */
int psd_origin_arg_parse(const char *arg,
			 uint8_t ret_id[PEERSNAP_SNAPSHOT_ID_LEN],
			 const char **ret_path, char *err, size_t errlen);

struct psd_origins;

int psd_origins_init(struct psd_origins **ret,
		     const struct psd_origin_entry *entries, size_t n);
void psd_origins_uninit(struct psd_origins *origins);

/*
 * Returns the open image for id: -ENOENT if no origin is configured for it,
 * or the -errno of opening it. The fd stays owned by the table.
 */
int psd_origins_open(struct psd_origins *origins,
		     const uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN],
		     int *ret_fd, uint64_t *ret_size);

#endif /* PSD_ORIGIN_H */
