/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The io_uring event loop: one ring, one thread.
 *
 * Every SQE carries a typed user_data: the operation, a slot index and a
 * generation (so a completion for a slot that was reused is recognised).
 * Completions are reaped in batches and dispatched through a table indexed
 * by operation; each subsystem registers its handlers at init.
 *
 *   63      56 55            40 39    32 31                            0
 *   +---------+----------------+--------+------------------------------+
 *   |   op    |      gen       | (zero) |             idx              |
 *   +---------+----------------+--------+------------------------------+
 */
#ifndef PSD_LOOP_H
#define PSD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

enum psd_op {
	PSD_OP_NONE,		/* never submitted: user_data 0 is invalid */
	PSD_OP_SIGNAL,		/* read from the signalfd */
	PSD_OP_TIMER,		/* shutdown deadline */
	PSD_OP_NETLINK,		/* multishot poll on the netlink socket */
	PSD_OP_ORIGIN_READ,	/* fetch: read from a source (image, device) */
	PSD_OP_CACHE_WRITE,	/* fetch: write to the cache device */
	PSD_OP_FETCH_KICK,	/* fetch: start reads queued by psd_fetch_read */
	PSD_OP_CANCEL,		/* shutdown: cancel everything */
	PSD_OP_CONTROL_ACCEPT,	/* control socket: accept, retry timer */
	PSD_OP_CONTROL_IO,	/* control socket: a client's recv or send */
	PSD_OP_UDP_RECV,	/* udp: (multishot) recvmsg */
	PSD_OP_UDP_SEND,	/* udp: a batch slot's sendmsg */
	PSD_OP_SWARM_TIMER,	/* main: the swarm's next deadline (or its update) */
	__PSD_OP_MAX
};

#define PSD_UD_OP_SHIFT		56
#define PSD_UD_OP_BITS		8
#define PSD_UD_GEN_SHIFT	40
#define PSD_UD_GEN_BITS		16
#define PSD_UD_IDX_BITS		32

_Static_assert(PSD_UD_GEN_SHIFT + PSD_UD_GEN_BITS == PSD_UD_OP_SHIFT,
	       "gen sits right below op");
_Static_assert(PSD_UD_OP_SHIFT + PSD_UD_OP_BITS == 64, "op is the top byte");
_Static_assert(PSD_UD_IDX_BITS <= PSD_UD_GEN_SHIFT, "idx below gen");
_Static_assert(__PSD_OP_MAX <= (1u << PSD_UD_OP_BITS), "op fits its field");

struct psd_ud {
	enum psd_op op;
	uint16_t gen;
	uint32_t idx;
};

_Static_assert(sizeof(((struct psd_ud *)0)->gen) * 8 == PSD_UD_GEN_BITS,
	       "gen type matches its field");
_Static_assert(sizeof(((struct psd_ud *)0)->idx) * 8 == PSD_UD_IDX_BITS,
	       "idx type matches its field");

uint64_t psd_ud_encode(struct psd_ud ud);
/* An unknown op or set reserved bits decode to PSD_OP_NONE. */
struct psd_ud psd_ud_decode(uint64_t v);

struct psd_loop;

/*
 * A completion: res and flags as in the CQE. A handler must not assume
 * it runs inside the reaping loop's CQ iteration (it does not: the batch
 * is copied out first, so handlers may submit freely).
 */
typedef void (*psd_cqe_fn)(void *ctx, struct psd_ud ud, int res,
			   uint32_t flags);

/* entries: SQ size; the CQ gets twice that. */
int psd_loop_init(struct psd_loop **ret, unsigned int entries);
void psd_loop_uninit(struct psd_loop *loop);

void psd_loop_set_handler(struct psd_loop *loop, enum psd_op op,
			  psd_cqe_fn fn, void *ctx);

/*
 * Returns an SQE tagged with ud, submitting first if the SQ is full, or
 * NULL if even that fails (the ring is sized so that it cannot).
 * The caller must prep it before the next loop iteration; user_data is
 * set again by psd_loop_tag() after the prep helpers ran.
 */
struct io_uring_sqe *psd_loop_sqe(struct psd_loop *loop);
void psd_loop_tag(struct io_uring_sqe *sqe, struct psd_ud ud);

/*
 * Called after each batch of completions was dispatched, before the loop
 * waits again: for work that depends on what any handler did (the swarm's
 * next deadline moves with every datagram and request). NULL: none.
 */
typedef void (*psd_loop_idle_fn)(void *ctx);
void psd_loop_set_idle(struct psd_loop *loop, psd_loop_idle_fn fn, void *ctx);

/* Runs until psd_loop_stop(); returns 0 or a fatal -errno. */
int psd_loop_run(struct psd_loop *loop);
void psd_loop_stop(struct psd_loop *loop);

/*
 * Shutdown: cancels every outstanding operation and reaps completions
 * without dispatching them, for at most timeout_ms. Buffers that in-flight
 * I/O points into may be freed only after this returns true.
 */
bool psd_loop_quiesce(struct psd_loop *loop, unsigned int timeout_ms);

/* The ring itself, for registrations (buffer rings: udp.c). */
struct io_uring *psd_loop_ring(struct psd_loop *loop);

/* Ops submitted whose final CQE has not been reaped. */
unsigned int psd_loop_outstanding(const struct psd_loop *loop);

#endif /* PSD_LOOP_H */
