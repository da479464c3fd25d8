/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fetch engine: turns FETCH requests into cache-device data.
 *
 * A snapshot whose manifest is in the store (store.h) is fetched chunk by
 * chunk, each chunk from the first source that works, in this order:
 *   - a zero hash: zeros, never read from anywhere;
 *   - in place: the target cache device itself, when the store says it
 *     held a snapshot with the same hash at that chunk: read and verified,
 *     and then not written (it is already there);
 *   - a verified local copy of that hash (store.h's copies: origin
 *     images, then recorded cache devices), and the --origin image of the
 *     snapshot, if one is configured.
 * Every chunk read is verified against its hash (psd_chunkhash_verify())
 * before it is written to the cache device and before FETCH_DONE; a source
 * whose data does not match is counted and the next one tried; a chunk
 * with no source left fails the request with -EIO. Neighbouring chunks of
 * one source are read with one SQE.
 *
 * A snapshot without a manifest keeps the first backend: read its byte
 * range from the --origin image into an aligned buffer (zeros past the
 * image's end), unverified (the image is trusted local configuration).
 * Either way the buffer is written to the cache device at chunk *
 * chunk_sectors * 512 (O_DIRECT | O_DSYNC, so the data is durable when the
 * write completes), then FETCH_DONE status 0 is sent. Any failure answers
 * -errno (-ENOENT: neither a manifest nor an origin for that snapshot).
 *
 * Scheduling: at most max_inflight requests run at once and their buffers
 * fit in max_buffer_bytes; the others wait in one FIFO per priority
 * (demand, then write-hydrate, then prefetch). At most max_queued wait:
 * beyond that a FETCH is dropped unanswered (the kernel still holds it)
 * and the owner is told, so it can REGISTER again once the queue is empty
 * and have the kernel resend what was dropped. A request id already
 * queued or in flight is ignored (resends after REGISTER).
 */
#ifndef PSD_FETCH_H
#define PSD_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "loop.h"
#include "origin.h"
#include "proto.h"
#include "store.h"

struct psd_fetch_limits {
	unsigned int max_inflight;
	unsigned int max_queued;
	size_t max_buffer_bytes;
};

struct psd_fetch_ops {
	/* A request finished: send this FETCH_DONE. */
	void (*done)(void *ctx, const struct psd_fetch_done *done);
	/* A FETCH was dropped because the queue was full. */
	void (*overflow)(void *ctx);
	/* The queue became empty after psd_fetch_notify_when_empty(). */
	void (*queue_empty)(void *ctx);
	/* Draining and the last in-flight request finished. */
	void (*drained)(void *ctx);
};

struct psd_fetch_stats {
	uint64_t received;
	uint64_t duplicates;
	uint64_t dropped;	/* queue full: left to a later REGISTER */
	uint64_t ignored;	/* arrived while draining */
	uint64_t succeeded;
	uint64_t failed;
	uint64_t legacy;	/* FETCHes served by --origin, no manifest */
	/* Chunks of manifest-backed FETCHes and reads, by source. */
	uint64_t chunks_zero;		/* zero hash: nothing read */
	uint64_t chunks_in_place;	/* verified on the target, not written */
	uint64_t chunks_origin;		/* copied from an origin image */
	uint64_t chunks_cache;		/* copied from another cache place */
	uint64_t hash_mismatch;		/* a copy source held other data */
	uint64_t in_place_stale;	/* the target held other data */
	uint64_t source_errors;		/* a source failed to open or read */
	uint64_t no_source;		/* a chunk no source could serve */
	uint64_t chunks_peer;		/* received from a peer */
	uint64_t peer_errors;		/* a peer had it not, sent bad bytes,
					 * or could not be reached */
	uint64_t reads;			/* psd_fetch_read() completions */
	uint64_t reads_failed;
};

/* Where one request's bytes come from and go to. */
struct psd_fetch_plan {
	uint64_t offset;	/* in the image and on the cache device */
	uint64_t len;		/* bytes written to the cache device */
	uint64_t read_len;	/* bytes read from the image; rest is zeros */
};

/*
 * The plan for a validated request against an image of image_size bytes.
 * -EINVAL if the range overflows (psd_proto_fetch_parse() rules it out).
 */
int psd_fetch_plan(const struct psd_fetch_msg *m, uint64_t image_size,
		   struct psd_fetch_plan *ret);

struct psd_fetch;

/* store may be NULL (every snapshot takes the --origin path). */
int psd_fetch_init(struct psd_fetch **ret, struct psd_loop *loop,
		   struct psd_origins *origins, struct psd_cache *cache,
		   struct psd_store *store,
		   const struct psd_fetch_limits *limits,
		   const struct psd_fetch_ops *ops, void *ctx);
/*
 * Adds configured peers (swarm.h) as the last source of manifest-backed
 * chunks; NULL takes them away again, before the swarm is freed (its
 * requests' -ECANCELED then abandons their FETCHes unanswered: the kernel
 * resends them to the next agent).
 */
struct psd_swarm;
void psd_fetch_set_swarm(struct psd_fetch *f, struct psd_swarm *sw);

/* Frees everything; in-flight I/O must be quiesced first (loop.h).
 * Reads still queued or in flight are dropped without their cb. */
void psd_fetch_uninit(struct psd_fetch *f);

void psd_fetch_submit(struct psd_fetch *f, const struct psd_fetch_msg *m);

/*
 * Reading for `pull`: the verified data of chunks [first, first + count)
 * of snapshot id (a manifest in the store), into buf, without writing any
 * cache device. Same sources as a FETCH but in place; the last chunk is
 * zero-padded to the chunk size. Queued behind the kernel's FETCHes and
 * within the same limits.
 *
 * Returns 0 and *ret_id (for psd_fetch_read_cancel()), then calls cb
 * exactly once, never before psd_fetch_read() returns, with 0 (buf
 * filled), -EIO (a chunk had no source whose data matched its hash),
 * -ECANCELED (shutdown: psd_fetch_drain()) or another -errno. buf is
 * written only right before cb with status 0.
 * Errors at once: -ENOENT (no such manifest), -ERANGE (count 0, or past
 * the snapshot's last chunk), -E2BIG (more than PSD_FETCH_MAX_BYTES),
 * -ENOBUFS (len < count * chunk size), -EBUSY (max_queued waiting),
 * -ESHUTDOWN (draining), -ENOMEM.
 */
typedef void (*psd_fetch_read_fn)(void *ctx, int status);

int psd_fetch_read(struct psd_fetch *f, const uint8_t id[PSD_HASH_LEN],
		   uint64_t first, uint32_t count, void *buf, size_t len,
		   psd_fetch_read_fn cb, void *ctx, uint64_t *ret_id);

/* Forgets a read: cb is not called and buf not written. An unknown or
 * finished id is ignored. */
void psd_fetch_read_cancel(struct psd_fetch *f, uint64_t id);

/* Calls ops->queue_empty once the queue is (or now is) empty. */
void psd_fetch_notify_when_empty(struct psd_fetch *f);

/*
 * Shutdown, phase one: accept nothing more, forget the queue (the kernel
 * resends it to the next agent; queued reads get -ECANCELED), let
 * in-flight requests finish and answer; ops->drained follows when none is
 * left.
 */
void psd_fetch_drain(struct psd_fetch *f);

/*
 * The kernel module went away: forget every FETCH, queued or in flight,
 * without answering (their ids may recur in the next module instance, so
 * they must not suppress new requests as duplicates). In-flight I/O still
 * completes, silently. Reads (psd_fetch_read()) go on.
 */
void psd_fetch_forget(struct psd_fetch *f);

unsigned int psd_fetch_inflight(const struct psd_fetch *f);
unsigned int psd_fetch_queued(const struct psd_fetch *f);
const struct psd_fetch_stats *psd_fetch_get_stats(const struct psd_fetch *f);

#endif /* PSD_FETCH_H */
