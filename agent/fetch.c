// SPDX-License-Identifier: GPL-2.0
/*
 * Fetch engine: see fetch.h.
 *
 * A request moves through:
 *
 *   queued --pump--> [origin read]* --> [cache write]* --> finished
 *
 * Each step is one SQE; a short read or write resubmits the remainder.
 * Reads of the image are buffered (an image may sit on any file system
 * and end at any byte); writes to the cache device are O_DIRECT.
 *
 * Durability: the cache device is opened O_DSYNC rather than followed by
 * an FSYNC SQE. On a block device an O_DSYNC direct write is issued with
 * REQ_FUA (block/fops.c), so exactly this request's data is forced to
 * stable storage as part of its own write, and the completion means
 * "durable". An FSYNC would flush the whole device cache once per request,
 * serialising with every other write in flight, and add a second SQE and
 * error path. Devices without FUA get a post-flush from the block layer,
 * which is what FSYNC would have cost anyway.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"
#include "fetch.h"
#include "log.h"

#define FETCH_MAX_FREE_BUFFERS	(64u << 20)
#define NR_QUEUES		__PEERSNAP_PRIO_MAX

struct fetch_req {
	struct psd_fetch_msg msg;
	struct fetch_req *hnext;	/* request id hash chain */
	struct fetch_req *qnext;	/* FIFO link while queued */
	struct psd_fetch_plan plan;
	void *buf;
	uint64_t done;			/* bytes of the current step */
	int origin_fd;
	int cache_fd;			/* -1: no cache reference held */
	uint32_t slot;
	bool forgotten;			/* finish without answering */
};

struct fetch_slot {
	struct fetch_req *req;		/* NULL: free */
	uint16_t gen;
};

struct fetch_fifo {
	struct fetch_req *head, *tail;
};

struct psd_fetch {
	struct psd_loop *loop;
	struct psd_origins *origins;
	struct psd_cache *cache;
	struct psd_bufpool *pool;
	struct psd_fetch_limits lim;
	const struct psd_fetch_ops *ops;
	void *ctx;

	struct fetch_req **hash;	/* every queued or in-flight request */
	unsigned int hash_bits;
	struct fetch_fifo queue[NR_QUEUES];
	unsigned int queued;
	struct fetch_slot *slots;
	uint32_t *free_slots;		/* stack of free slot indexes */
	unsigned int inflight;

	bool pumping, draining, drained_told, want_empty;
	struct psd_fetch_stats stats;
};

int psd_fetch_plan(const struct psd_fetch_msg *m, uint64_t image_size,
		   struct psd_fetch_plan *ret)
{
	uint64_t chunk_bytes = (uint64_t)m->chunk_sectors << PSD_SECTOR_SHIFT;
	uint64_t len = (uint64_t)m->chunk_count * chunk_bytes;
	struct psd_fetch_plan p;

	if (!chunk_bytes || m->first_chunk > UINT64_MAX / chunk_bytes)
		return -EINVAL;
	p.offset = m->first_chunk * chunk_bytes;
	if (p.offset + len < p.offset)
		return -EINVAL;
	p.len = len;
	if (image_size <= p.offset)
		p.read_len = 0;
	else if (image_size - p.offset < len)
		p.read_len = image_size - p.offset;
	else
		p.read_len = len;
	*ret = p;
	return 0;
}

/* ---- request id set ---------------------------------------------------- */

static struct fetch_req **hash_bucket(struct psd_fetch *f, uint64_t id)
{
	return &f->hash[(id * 0x9e3779b97f4a7c15ull) >> (64 - f->hash_bits)];
}

static struct fetch_req *hash_find(struct psd_fetch *f, uint64_t id)
{
	struct fetch_req *r;

	for (r = *hash_bucket(f, id); r; r = r->hnext)
		if (r->msg.request_id == id)
			return r;
	return NULL;
}

static void hash_add(struct psd_fetch *f, struct fetch_req *req)
{
	struct fetch_req **b = hash_bucket(f, req->msg.request_id);

	req->hnext = *b;
	*b = req;
}

static void hash_del(struct psd_fetch *f, struct fetch_req *req)
{
	struct fetch_req **p = hash_bucket(f, req->msg.request_id);

	while (*p && *p != req)
		p = &(*p)->hnext;
	if (*p)
		*p = req->hnext;
}

/* ---- queues and slots -------------------------------------------------- */

static void enqueue(struct psd_fetch *f, struct fetch_req *req)
{
	struct fetch_fifo *q = &f->queue[req->msg.priority];

	req->qnext = NULL;
	if (q->tail)
		q->tail->qnext = req;
	else
		q->head = req;
	q->tail = req;
	f->queued++;
}

/* Highest-priority FIFO with work, or NULL. */
static struct fetch_fifo *next_queue(struct psd_fetch *f)
{
	unsigned int i;

	for (i = 0; i < NR_QUEUES; i++)
		if (f->queue[i].head)
			return &f->queue[i];
	return NULL;
}

static struct fetch_req *dequeue(struct psd_fetch *f, struct fetch_fifo *q)
{
	struct fetch_req *req = q->head;

	q->head = req->qnext;
	if (!q->head)
		q->tail = NULL;
	f->queued--;
	return req;
}

static void slot_take(struct psd_fetch *f, struct fetch_req *req)
{
	uint32_t idx = f->free_slots[f->lim.max_inflight - f->inflight - 1];

	f->inflight++;
	f->slots[idx].req = req;
	f->slots[idx].gen++;
	req->slot = idx;
}

static void slot_release(struct psd_fetch *f, struct fetch_req *req)
{
	f->slots[req->slot].req = NULL;
	f->inflight--;
	f->free_slots[f->lim.max_inflight - f->inflight - 1] = req->slot;
}

/* The request a completion belongs to, or NULL if the slot moved on. */
static struct fetch_req *slot_req(struct psd_fetch *f, struct psd_ud ud)
{
	if (ud.idx >= f->lim.max_inflight || f->slots[ud.idx].gen != ud.gen)
		return NULL;
	return f->slots[ud.idx].req;
}

static struct psd_ud slot_ud(struct psd_fetch *f, struct fetch_req *req,
			     enum psd_op op)
{
	struct psd_ud ud = {
		.op = op,
		.gen = f->slots[req->slot].gen,
		.idx = req->slot,
	};

	return ud;
}

/* ---- one request ------------------------------------------------------- */

/*
 * Ends a request that holds a slot. The cache device reference goes first,
 * so by the time the kernel reads FETCH_DONE, the agent no longer holds
 * the device open on this request's behalf (see cache.h).
 */
static void finish(struct psd_fetch *f, struct fetch_req *req, int status)
{
	struct psd_fetch_done done = psd_proto_done_for(&req->msg, status);

	if (req->buf)
		psd_bufpool_put(f->pool, req->buf, req->plan.len);
	if (req->cache_fd >= 0)
		psd_cache_put(f->cache, req->msg.cache_dev);
	if (!req->forgotten)
		hash_del(f, req);
	slot_release(f, req);
	if (req->forgotten) {
		free(req);
		return;
	}
	if (status == 0) {
		f->stats.succeeded++;
	} else {
		f->stats.failed++;
		psd_dbg("request %llu failed: %s",
			(unsigned long long)req->msg.request_id,
			strerror(-status));
	}
	free(req);
	f->ops->done(f->ctx, &done);
}

/*
 * Queues the rest of the request's origin read (op PSD_OP_ORIGIN_READ) or
 * cache write (PSD_OP_CACHE_WRITE): short transfers resume at req->done.
 */
static void submit_rw(struct psd_fetch *f, struct fetch_req *req, int op)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(f->loop);
	bool write = op == PSD_OP_CACHE_WRITE;
	size_t len = write ? req->plan.len : req->plan.read_len;

	if (!sqe) {
		finish(f, req, -EBUSY);
		return;
	}
	if (write)
		io_uring_prep_write(sqe, req->cache_fd,
				    (char *)req->buf + req->done,
				    (unsigned int)(len - req->done),
				    req->plan.offset + req->done);
	else
		io_uring_prep_read(sqe, req->origin_fd,
				   (char *)req->buf + req->done,
				   (unsigned int)(len - req->done),
				   req->plan.offset + req->done);
	psd_loop_tag(sqe, slot_ud(f, req, op));
}

/* The read part is in the buffer: zero the tail, start writing. */
static void start_write(struct psd_fetch *f, struct fetch_req *req)
{
	memset((char *)req->buf + req->plan.read_len, 0,
	       req->plan.len - req->plan.read_len);
	req->done = 0;
	submit_rw(f, req, PSD_OP_CACHE_WRITE);
}

/* Acquires what the request needs; any failure is its FETCH_DONE status. */
static int prepare(struct psd_fetch *f, struct fetch_req *req)
{
	uint64_t size;
	int r;

	r = psd_origins_open(f->origins, req->msg.snapshot_id,
			     &req->origin_fd, &size);
	if (r < 0)
		return r;
	r = psd_fetch_plan(&req->msg, size, &req->plan);
	if (r < 0)
		return r;
	r = psd_cache_get(f->cache, req->msg.cache_dev, &req->cache_fd);
	if (r < 0)
		return r;
	return psd_bufpool_get(f->pool, req->plan.len, &req->buf);
}

static void start(struct psd_fetch *f, struct fetch_req *req)
{
	int r = prepare(f, req);

	if (r < 0) {
		finish(f, req, r);
		return;
	}
	req->done = 0;
	if (req->plan.read_len)
		submit_rw(f, req, PSD_OP_ORIGIN_READ);
	else
		start_write(f, req);
}


/* ---- scheduling -------------------------------------------------------- */

static void notify(struct psd_fetch *f)
{
	if (f->want_empty && f->queued == 0) {
		f->want_empty = false;
		f->ops->queue_empty(f->ctx);
	}
	if (f->draining && f->inflight == 0 && !f->drained_told) {
		f->drained_told = true;
		f->ops->drained(f->ctx);
	}
}

/*
 * Starts queued requests while slots and buffer budget allow. A request
 * that fails to start finishes at once, so this loops instead of
 * recursing through finish(). Not reentrant: ops callbacks may submit.
 */
static void pump(struct psd_fetch *f)
{
	struct fetch_req *req;
	struct fetch_fifo *q;

	if (f->pumping)
		return;
	f->pumping = true;
	while (!f->draining && f->inflight < f->lim.max_inflight) {
		q = next_queue(f);
		if (!q)
			break;
		/* Budget: wait for buffers, unless nothing runs to free any. */
		if (f->inflight &&
		    !psd_bufpool_fits(f->pool, psd_fetch_bytes(&q->head->msg)))
			break;
		req = dequeue(f, q);
		slot_take(f, req);
		start(f, req);
	}
	f->pumping = false;
	notify(f);
}

static void on_read(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_fetch *f = ctx;
	struct fetch_req *req = slot_req(f, ud);

	(void)flags;
	if (!req)
		return;
	if (res == -EAGAIN || res == -EINTR) {
		submit_rw(f, req, PSD_OP_ORIGIN_READ);
	} else if (res < 0) {
		finish(f, req, res);
	} else {
		/* 0: the image ended early; the rest reads as zeros. */
		if (res == 0)
			req->plan.read_len = req->done;
		req->done += (uint64_t)res;
		if (req->done < req->plan.read_len)
			submit_rw(f, req, PSD_OP_ORIGIN_READ);
		else
			start_write(f, req);
	}
	pump(f);
}

static void on_write(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_fetch *f = ctx;
	struct fetch_req *req = slot_req(f, ud);

	(void)flags;
	if (!req)
		return;
	if (res == -EAGAIN || res == -EINTR) {
		submit_rw(f, req, PSD_OP_CACHE_WRITE);
	} else if (res <= 0) {
		finish(f, req, res < 0 ? res : -EIO);
	} else {
		req->done += (uint64_t)res;
		if (req->done < req->plan.len)
			submit_rw(f, req, PSD_OP_CACHE_WRITE);
		else
			finish(f, req, 0);
	}
	pump(f);
}

void psd_fetch_submit(struct psd_fetch *f, const struct psd_fetch_msg *m)
{
	struct fetch_req *req;

	f->stats.received++;
	if (f->draining) {
		f->stats.ignored++;
		return;
	}
	if (hash_find(f, m->request_id)) {
		f->stats.duplicates++;
		return;
	}
	req = f->queued < f->lim.max_queued ? calloc(1, sizeof(*req)) : NULL;
	if (!req) {
		f->stats.dropped++;
		f->ops->overflow(f->ctx);
		return;
	}
	req->msg = *m;
	req->cache_fd = -1;
	hash_add(f, req);
	enqueue(f, req);
	pump(f);
}

void psd_fetch_notify_when_empty(struct psd_fetch *f)
{
	f->want_empty = true;
	if (!f->pumping)
		notify(f);
}

/* Forgets queued requests unanswered: the kernel still holds them. */
static void drop_queue(struct psd_fetch *f)
{
	struct fetch_fifo *q;

	while ((q = next_queue(f))) {
		struct fetch_req *req = dequeue(f, q);

		hash_del(f, req);
		free(req);
	}
}

void psd_fetch_drain(struct psd_fetch *f)
{
	f->draining = true;
	drop_queue(f);
	if (!f->pumping)
		notify(f);
}

void psd_fetch_forget(struct psd_fetch *f)
{
	unsigned int i;

	drop_queue(f);
	for (i = 0; i < f->lim.max_inflight; i++) {
		struct fetch_req *req = f->slots[i].req;

		if (req && !req->forgotten) {
			hash_del(f, req);
			req->forgotten = true;
		}
	}
}

unsigned int psd_fetch_inflight(const struct psd_fetch *f)
{
	return f->inflight;
}

unsigned int psd_fetch_queued(const struct psd_fetch *f)
{
	return f->queued;
}

const struct psd_fetch_stats *psd_fetch_get_stats(const struct psd_fetch *f)
{
	return &f->stats;
}

/* ---- setup ------------------------------------------------------------- */

static unsigned int hash_bits_for(unsigned int n)
{
	unsigned int bits = 6;

	while (bits < 20 && (1u << bits) < n / 2)
		bits++;
	return bits;
}

static int alloc_tables(struct psd_fetch *f)
{
	unsigned int i;

	f->hash_bits = hash_bits_for(f->lim.max_inflight + f->lim.max_queued);
	f->hash = calloc((size_t)1 << f->hash_bits, sizeof(*f->hash));
	f->slots = calloc(f->lim.max_inflight, sizeof(*f->slots));
	f->free_slots = calloc(f->lim.max_inflight, sizeof(*f->free_slots));
	if (!f->hash || !f->slots || !f->free_slots)
		return -ENOMEM;
	for (i = 0; i < f->lim.max_inflight; i++)
		f->free_slots[i] = i;
	return 0;
}

int psd_fetch_init(struct psd_fetch **ret, struct psd_loop *loop,
		   struct psd_origins *origins, struct psd_cache *cache,
		   const struct psd_fetch_limits *limits,
		   const struct psd_fetch_ops *ops, void *ctx)
{
	struct psd_fetch *f;
	int r;

	if (!limits->max_inflight || !limits->max_queued ||
	    limits->max_buffer_bytes < PSD_FETCH_MAX_BYTES)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	*f = (struct psd_fetch){ .loop = loop, .origins = origins,
				 .cache = cache, .lim = *limits,
				 .ops = ops, .ctx = ctx };
	r = alloc_tables(f);
	if (r == 0)
		r = psd_bufpool_init(&f->pool, limits->max_buffer_bytes,
				     FETCH_MAX_FREE_BUFFERS);
	if (r < 0) {
		psd_fetch_uninit(f);
		return r;
	}
	psd_loop_set_handler(loop, PSD_OP_ORIGIN_READ, on_read, f);
	psd_loop_set_handler(loop, PSD_OP_CACHE_WRITE, on_write, f);
	*ret = f;
	return 0;
}

/* Abandons whatever is left: no FETCH_DONE, the kernel resends it. */
void psd_fetch_uninit(struct psd_fetch *f)
{
	unsigned int i;

	if (!f)
		return;
	drop_queue(f);
	for (i = 0; f->slots && i < f->lim.max_inflight; i++) {
		struct fetch_req *req = f->slots[i].req;

		if (!req)
			continue;
		if (req->buf)
			psd_bufpool_put(f->pool, req->buf, req->plan.len);
		if (req->cache_fd >= 0)
			psd_cache_put(f->cache, req->msg.cache_dev);
		free(req);
	}
	psd_bufpool_uninit(f->pool);
	free(f->hash);
	free(f->slots);
	free(f->free_slots);
	free(f);
}
