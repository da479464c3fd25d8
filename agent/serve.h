/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What this agent serves to its peers: the swarm's lookup hook
 * (swarm.h). A chunk is served from a place the store records for its
 * hash (store.h: origin images first, then cache devices), once its bytes
 * there were read and found to hash to the name; the open fd and extent
 * are kept in a small table (PSD_SERVE_CACHED entries, least recently
 * used goes) so that the swarm's lookups while it sends a chunk's frames
 * cost no I/O. A table entry lives until the store's records change.
 *
 * A lookup knows only the hash, not the chunk size: the power-of-two
 * sizes the manifest format allows are tried, smallest first.
 *
 * A place verified once may change later (a writable volume's cache
 * device): the requester verifies every chunk it gets (swarm.h: -EBADMSG)
 * and moves on, so a stale entry costs a retry, never wrong data.
 */
#ifndef PSD_SERVE_H
#define PSD_SERVE_H

#include "store.h"
#include "swarm.h"

#define PSD_SERVE_CACHED	64

struct psd_serve;

int psd_serve_new(struct psd_serve **ret, struct psd_store *store);
/* Closes every fd. Accepts NULL. */
void psd_serve_free(struct psd_serve *s);

/* psd_swarm_lookup_fn: ctx is the psd_serve. 0 and *ret, or -ENOENT. */
int psd_serve_lookup(void *ctx, const uint8_t hash[PSD_OBJECT_ID_LEN],
		     struct psd_swarm_extent *ret);

#endif /* PSD_SERVE_H */
