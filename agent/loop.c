// SPDX-License-Identifier: GPL-2.0
/* The io_uring event loop: see loop.h. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "loop.h"

#define REAP_BATCH	256
#define UD_RESERVED_MASK	(((1ull << PSD_UD_GEN_SHIFT) - 1) & \
				 ~((1ull << PSD_UD_IDX_BITS) - 1))

struct psd_handler {
	psd_cqe_fn fn;
	void *ctx;
};

struct psd_loop {
	struct io_uring ring;
	struct psd_handler handlers[__PSD_OP_MAX];
	unsigned int outstanding;
	bool stop;
	psd_loop_idle_fn idle;
	void *idle_ctx;
};

struct psd_completion {
	uint64_t user_data;
	int res;
	uint32_t flags;
};

uint64_t psd_ud_encode(struct psd_ud ud)
{
	assert(ud.op > PSD_OP_NONE && ud.op < __PSD_OP_MAX);
	return (uint64_t)ud.op << PSD_UD_OP_SHIFT |
	       (uint64_t)ud.gen << PSD_UD_GEN_SHIFT | ud.idx;
}

struct psd_ud psd_ud_decode(uint64_t v)
{
	struct psd_ud ud = { .op = PSD_OP_NONE };
	uint64_t op = v >> PSD_UD_OP_SHIFT;

	if (op == PSD_OP_NONE || op >= __PSD_OP_MAX || (v & UD_RESERVED_MASK))
		return ud;
	ud.op = (enum psd_op)op;
	ud.gen = (uint16_t)(v >> PSD_UD_GEN_SHIFT);
	ud.idx = (uint32_t)v;
	return ud;
}

/*
 * SINGLE_ISSUER | DEFER_TASKRUN: completions run only when this thread
 * waits for them, which is the only place it would look anyway. Kernels
 * before 6.1 lack DEFER_TASKRUN: fall back to a plain ring.
 */
static int ring_init(struct io_uring *ring, unsigned int entries)
{
	struct io_uring_params p;
	int r;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
		  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = 2 * entries;
	r = io_uring_queue_init_params(entries, ring, &p);
	if (r != -EINVAL)
		return r;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * entries;
	return io_uring_queue_init_params(entries, ring, &p);
}

int psd_loop_init(struct psd_loop **ret, unsigned int entries)
{
	struct psd_loop *loop;
	int r;

	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	r = ring_init(&loop->ring, entries);
	if (r < 0) {
		free(loop);
		return r;
	}
	*ret = loop;
	return 0;
}

void psd_loop_uninit(struct psd_loop *loop)
{
	if (!loop)
		return;
	io_uring_queue_exit(&loop->ring);
	free(loop);
}

void psd_loop_set_handler(struct psd_loop *loop, enum psd_op op,
			  psd_cqe_fn fn, void *ctx)
{
	assert(op > PSD_OP_NONE && op < __PSD_OP_MAX);
	loop->handlers[op].fn = fn;
	loop->handlers[op].ctx = ctx;
}

struct io_uring_sqe *psd_loop_sqe(struct psd_loop *loop)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);

	if (!sqe) {
		/* SQ full: hand what we have to the kernel to make room. */
		io_uring_submit(&loop->ring);
		sqe = io_uring_get_sqe(&loop->ring);
	}
	if (sqe)
		loop->outstanding++;
	return sqe;
}

void psd_loop_tag(struct io_uring_sqe *sqe, struct psd_ud ud)
{
	io_uring_sqe_set_data64(sqe, psd_ud_encode(ud));
}

struct io_uring *psd_loop_ring(struct psd_loop *loop)
{
	return &loop->ring;
}

unsigned int psd_loop_outstanding(const struct psd_loop *loop)
{
	return loop->outstanding;
}

/* The final CQE of an operation has no F_MORE (multishot ends there). */
static void account(struct psd_loop *loop, uint32_t flags)
{
	if (!(flags & IORING_CQE_F_MORE) && loop->outstanding)
		loop->outstanding--;
}

static void dispatch(struct psd_loop *loop, const struct psd_completion *c)
{
	struct psd_ud ud = psd_ud_decode(c->user_data);
	const struct psd_handler *h = &loop->handlers[ud.op];

	account(loop, c->flags);
	if (ud.op == PSD_OP_NONE || !h->fn) {
		psd_warn("completion with unknown user_data %#llx (res %d)",
			 (unsigned long long)c->user_data, c->res);
		return;
	}
	h->fn(h->ctx, ud, c->res, c->flags);
}

/*
 * Copies a batch out and advances the CQ once, then dispatches: handlers
 * submit new work, and the CQ space is already free for its completions.
 */
static unsigned int reap_batch(struct psd_loop *loop, bool run_handlers)
{
	struct psd_completion batch[REAP_BATCH];
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0, i;

	io_uring_for_each_cqe(&loop->ring, head, cqe) {
		batch[n].user_data = cqe->user_data;
		batch[n].res = cqe->res;
		batch[n].flags = cqe->flags;
		if (++n == REAP_BATCH)
			break;
	}
	io_uring_cq_advance(&loop->ring, n);
	for (i = 0; i < n; i++) {
		if (run_handlers)
			dispatch(loop, &batch[i]);
		else
			account(loop, batch[i].flags);
	}
	return n;
}

static void reap(struct psd_loop *loop, bool run_handlers)
{
	while (reap_batch(loop, run_handlers) == REAP_BATCH)
		;
}

void psd_loop_set_idle(struct psd_loop *loop, psd_loop_idle_fn fn, void *ctx)
{
	loop->idle = fn;
	loop->idle_ctx = ctx;
}

int psd_loop_run(struct psd_loop *loop)
{
	int r;

	loop->stop = false;
	while (!loop->stop) {
		/* The only wait: in the kernel, for at least one completion. */
		r = io_uring_submit_and_wait(&loop->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY &&
		    r != -ETIME)
			return r;
		reap(loop, true);
		if (loop->idle && !loop->stop)
			loop->idle(loop->idle_ctx);
	}
	/* Hand over what the last handlers queued (FETCH_DONE is not here). */
	io_uring_submit(&loop->ring);
	return 0;
}

void psd_loop_stop(struct psd_loop *loop)
{
	loop->stop = true;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool psd_loop_quiesce(struct psd_loop *loop, unsigned int timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct io_uring_sqe *sqe;

	sqe = psd_loop_sqe(loop);
	if (sqe) {
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_CANCEL });
	}
	io_uring_submit(&loop->ring);
	while (loop->outstanding) {
		uint64_t now = now_ms();
		struct __kernel_timespec ts;
		struct io_uring_cqe *cqe;

		if (now >= deadline)
			break;
		ts.tv_sec = (long long)((deadline - now) / 1000);
		ts.tv_nsec = (long long)((deadline - now) % 1000) * 1000000;
		io_uring_wait_cqe_timeout(&loop->ring, &cqe, &ts);
		reap(loop, false);
	}
	return loop->outstanding == 0;
}
