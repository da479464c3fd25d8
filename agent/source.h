/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where one chunk of a manifest-backed snapshot can be read from: the
 * ordered list of candidate sources that fetch.c tries until one's data
 * matches the chunk's hash. No I/O but opening a source.
 *
 *   1. in place: the FETCH's own cache device (store.h's
 *      psd_store_in_place()); never for a read without a target device;
 *   2. the store's copies of the hash: origin images, then recorded cache
 *      devices (the target's own place is left out: it is 1.);
 *   3. the snapshot's --origin image, when one is configured for its id;
 *   4. a configured peer (swarm.h), when the agent has any: asked by hash
 *      for one chunk at a time, never part of a longer run.
 *
 * The list is recomputed for each attempt; the store may change between
 * two (a control request), which at worst repeats or skips a candidate:
 * attempts are counted per chunk and bounded by PSD_SRC_MAX.
 */
#ifndef PSD_SOURCE_H
#define PSD_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "origin.h"
#include "store.h"

#define PSD_SRC_MAX	11

enum psd_src_kind {
	PSD_SRC_IN_PLACE,	/* the target cache device */
	PSD_SRC_ORIGIN,		/* an origin image recorded in the store */
	PSD_SRC_CACHE,		/* another recorded cache device place */
	PSD_SRC_CONFIGURED,	/* the snapshot's --origin image */
	PSD_SRC_PEER,		/* any configured peer, by hash (not opened) */
};

struct psd_src {
	enum psd_src_kind kind;
	const char *path;	/* ORIGIN, CACHE: valid until the store changes */
	uint32_t dev;		/* CACHE: the recorded dev_t */
	uint64_t offset;	/* of the chunk there, in bytes */
};

/* What a chunk is wanted for. */
struct psd_src_want {
	const struct psd_store_snapshot *sn;
	uint64_t chunk;
	const uint8_t *hash;	/* the chunk's (not PSD_HASH_ZERO) */
	uint32_t target_dev;	/* the FETCH's cache device; 0: a read */
	bool peers;		/* a peer may be asked */
};

/* Fills ret[0..PSD_SRC_MAX) in the order above; returns how many. */
unsigned int psd_src_list(struct psd_store *store,
			  struct psd_origins *origins,
			  const struct psd_src_want *w,
			  struct psd_src ret[PSD_SRC_MAX]);

/* Whether b continues a's source at a's offset + step bytes (one read
 * covers both). Never for peers: one request per chunk. */
bool psd_src_follows(const struct psd_src *a, const struct psd_src *b,
		     uint64_t step);

/*
 * Opens a source for reading. IN_PLACE: target_fd itself. ORIGIN: the
 * image, O_RDONLY. CACHE: the device O_RDONLY | O_DIRECT, refused with
 * -ESTALE if it is not the recorded dev_t any more. CONFIGURED: the fd
 * of the origins table. *ret_size: the bytes readable (a file's size;
 * UINT64_MAX for devices); *ret_owned: whether the caller closes the fd.
 * PEER has nothing to open: -EINVAL.
 */
int psd_src_open(const struct psd_src *s, struct psd_origins *origins,
		 const uint8_t id[PSD_HASH_LEN], int target_fd, int *ret_fd,
		 bool *ret_owned, uint64_t *ret_size);

#endif /* PSD_SOURCE_H */
