/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fetch engine: turns FETCH requests into cache-device data.
 *
 * One request: read its byte range from the origin image into an aligned
 * buffer (zeros past the image's end), write the buffer to the cache
 * device at chunk * chunk_sectors * 512 (O_DIRECT | O_DSYNC, so the data
 * is durable when the write completes), then answer FETCH_DONE status 0.
 * Any failure answers -errno (-ENOENT: no origin for that snapshot).
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

int psd_fetch_init(struct psd_fetch **ret, struct psd_loop *loop,
		   struct psd_origins *origins, struct psd_cache *cache,
		   const struct psd_fetch_limits *limits,
		   const struct psd_fetch_ops *ops, void *ctx);
/* Frees everything; in-flight I/O must be quiesced first (loop.h). */
void psd_fetch_uninit(struct psd_fetch *f);

void psd_fetch_submit(struct psd_fetch *f, const struct psd_fetch_msg *m);

/* Calls ops->queue_empty once the queue is (or now is) empty. */
void psd_fetch_notify_when_empty(struct psd_fetch *f);

/*
 * Shutdown, phase one: accept nothing more, forget the queue (the kernel
 * resends it to the next agent), let in-flight requests finish and answer;
 * ops->drained follows when none is left.
 */
void psd_fetch_drain(struct psd_fetch *f);

/*
 * The kernel module went away: forget every request, queued or in flight,
 * without answering (their ids may recur in the next module instance, so
 * they must not suppress new requests as duplicates). In-flight I/O still
 * completes, silently.
 */
void psd_fetch_forget(struct psd_fetch *f);

unsigned int psd_fetch_inflight(const struct psd_fetch *f);
unsigned int psd_fetch_queued(const struct psd_fetch *f);
const struct psd_fetch_stats *psd_fetch_get_stats(const struct psd_fetch *f);

#endif /* PSD_FETCH_H */
