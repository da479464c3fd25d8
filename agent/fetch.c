// SPDX-License-Identifier: GPL-2.0
/*
 * Fetch engine: see fetch.h.
 *
 * A FETCH of a snapshot without a manifest (the --origin backend):
 *
 *   queued --pump--> [origin read]* --> [cache write]* --> finished
 *
 * With a manifest, per chunk (state in struct chunk):
 *
 *   queued --pump--> ( [run read]* --> verify each chunk )* -->
 *                    [write of a run of chunks to write]* --> finished
 *
 * A run is the longest stretch of unresolved chunks whose current
 * candidate sources (source.h) are consecutive places of one file or
 * device: one read. A chunk that fails verification moves to its next
 * candidate and the runs start again from the first unresolved chunk.
 * Chunks verified in place are not written; the rest (copies, zeros) are
 * written in runs of neighbours. A read (psd_fetch_read()) is the same
 * minus in place and the writes, into a pooled buffer copied out at the
 * end (O_DIRECT reads from devices need an aligned buffer).
 *
 * A peer source (swarm.h) is a run of one chunk: the request is asked
 * for by hash and its bytes land in the buffer like a read's, verified
 * the same way (the swarm checked them too: a bad sender is -EBADMSG).
 *
 * Each step is one SQE; a short read or write resubmits the remainder.
 * Reads of images are buffered (an image may sit on any file system and
 * end at any byte); reads of and writes to devices are O_DIRECT. Chunk
 * hashes are checked on the loop thread: BLAKE2b runs at about 1 GB/s,
 * so a 64 MiB request costs some 60 ms of it.
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
#include <unistd.h>

#include "bufpool.h"
#include "fetch.h"
#include "log.h"
#include "source.h"
#include "swarm.h"

#define FETCH_MAX_FREE_BUFFERS	(64u << 20)
/* One FIFO per kernel priority, then the reads of psd_fetch_read(). */
#define NR_PRIO_QUEUES		__PEERSNAP_PRIO_MAX
#define READ_QUEUE		NR_PRIO_QUEUES
#define NR_QUEUES		(NR_PRIO_QUEUES + 1)

enum chunk_state {
	CHUNK_PENDING,		/* needs a source */
	CHUNK_ZERO,		/* zeros in the buffer; to write */
	CHUNK_COPIED,		/* verified data in the buffer; to write */
	CHUNK_IN_PLACE,		/* verified on the target; nothing to do */
};

struct chunk {
	uint8_t hash[PSD_HASH_LEN];
	uint8_t state;
	uint8_t attempt;	/* index of the candidate to try next */
};

/* The current transfer of a manifest-backed request. */
struct run {
	struct psd_src src;
	int fd;
	bool own_fd;
	uint32_t first, count;	/* chunks, relative to the request */
	uint64_t read_len;	/* bytes that exist at the source */
};

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
	bool is_read;			/* psd_fetch_read(), not a FETCH */
	/* With a manifest: */
	const struct psd_store_snapshot *sn;
	struct chunk *chunks;		/* msg.chunk_count of them */
	uint32_t cursor;		/* chunks before it are resolved */
	uint64_t src_gen;		/* store generation of the attempts */
	struct run run;
	/* A read's caller: */
	void *out;
	psd_fetch_read_fn cb;
	void *cb_ctx;
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
	struct psd_store *store;
	struct psd_swarm *swarm;	/* NULL: no peers */
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

	bool pumping, draining, drained_told, want_empty, kick_armed;
	uint64_t next_read_id;
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

/* ---- finishing ---------------------------------------------------------- */

static uint32_t chunk_bytes(const struct fetch_req *req)
{
	return req->msg.chunk_sectors << PSD_SECTOR_SHIFT;
}

static void run_close(struct fetch_req *req)
{
	if (req->run.own_fd)
		close(req->run.fd);
	req->run.own_fd = false;
	req->run.fd = -1;
}

static void free_req(struct fetch_req *req)
{
	free(req->chunks);
	free(req);
}

static void count_finish(struct psd_fetch *f, const struct fetch_req *req,
			 int status)
{
	if (req->is_read) {
		f->stats.reads++;
		f->stats.reads_failed += status != 0;
	} else if (status == 0) {
		f->stats.succeeded++;
	} else {
		f->stats.failed++;
	}
	if (status)
		psd_dbg("%s %llu failed: %s", req->is_read ? "read" : "request",
			(unsigned long long)req->msg.request_id,
			strerror(-status));
}

/*
 * Ends a request that holds a slot. The cache device reference goes first,
 * so by the time the kernel reads FETCH_DONE, the agent no longer holds
 * the device open on this request's behalf (see cache.h).
 */
static void finish(struct psd_fetch *f, struct fetch_req *req, int status)
{
	struct psd_fetch_done done = psd_proto_done_for(&req->msg, status);
	bool answer = !req->forgotten;

	if (req->is_read && answer && status == 0)
		memcpy(req->out, req->buf, req->plan.len);
	run_close(req);
	if (req->buf)
		psd_bufpool_put(f->pool, req->buf, req->plan.len);
	if (req->cache_fd >= 0)
		psd_cache_put(f->cache, req->msg.cache_dev);
	if (answer && !req->is_read)
		hash_del(f, req);
	slot_release(f, req);
	if (answer)
		count_finish(f, req, status);
	if (answer && req->is_read)
		req->cb(req->cb_ctx, status);
	else if (answer)
		f->ops->done(f->ctx, &done);
	free_req(req);
}

/* ---- I/O ----------------------------------------------------------------- */

/* The current transfer of op: whole for --origin requests, a run else. */
static void io_args(const struct fetch_req *req, int op, int *fd,
		    char **buf, uint64_t *len, uint64_t *off)
{
	uint64_t cs = chunk_bytes(req);
	bool write = op == PSD_OP_CACHE_WRITE;

	if (!req->sn) {
		*fd = write ? req->cache_fd : req->origin_fd;
		*buf = req->buf;
		*len = write ? req->plan.len : req->plan.read_len;
		*off = req->plan.offset;
		return;
	}
	*buf = (char *)req->buf + req->run.first * cs;
	if (write) {
		*fd = req->cache_fd;
		*len = req->run.count * cs;
		*off = req->plan.offset + req->run.first * cs;
	} else {
		*fd = req->run.fd;
		*len = req->run.read_len;
		*off = req->run.src.offset;
	}
}

/*
 * Queues the rest of the current read (op PSD_OP_ORIGIN_READ) or cache
 * write (PSD_OP_CACHE_WRITE): short transfers resume at req->done.
 */
static void submit_rw(struct psd_fetch *f, struct fetch_req *req, int op)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(f->loop);
	uint64_t len, off;
	char *buf;
	int fd;

	if (!sqe) {
		finish(f, req, -EBUSY);
		return;
	}
	io_args(req, op, &fd, &buf, &len, &off);
	if (op == PSD_OP_CACHE_WRITE)
		io_uring_prep_write(sqe, fd, buf + req->done,
				    (unsigned int)(len - req->done),
				    off + req->done);
	else
		io_uring_prep_read(sqe, fd, buf + req->done,
				   (unsigned int)(len - req->done),
				   off + req->done);
	psd_loop_tag(sqe, slot_ud(f, req, op));
}

/* ---- FETCH without a manifest: the --origin image, unverified ------------ */

/* The read part is in the buffer: zero the tail, start writing. */
static void origin_write(struct psd_fetch *f, struct fetch_req *req)
{
	memset((char *)req->buf + req->plan.read_len, 0,
	       req->plan.len - req->plan.read_len);
	req->done = 0;
	submit_rw(f, req, PSD_OP_CACHE_WRITE);
}

/* Acquires what the request needs; any failure is its FETCH_DONE status. */
static int origin_prepare(struct psd_fetch *f, struct fetch_req *req)
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

static void origin_start(struct psd_fetch *f, struct fetch_req *req)
{
	int r = origin_prepare(f, req);

	if (r < 0) {
		finish(f, req, r);
		return;
	}
	f->stats.legacy++;
	req->done = 0;
	if (req->plan.read_len)
		submit_rw(f, req, PSD_OP_ORIGIN_READ);
	else
		origin_write(f, req);
}

static void origin_read_done(struct psd_fetch *f, struct fetch_req *req,
			     int res)
{
	if (res < 0) {
		finish(f, req, res);
		return;
	}
	/* 0: the image ended early; the rest reads as zeros. */
	if (res == 0)
		req->plan.read_len = req->done;
	req->done += (uint64_t)res;
	if (req->done < req->plan.read_len)
		submit_rw(f, req, PSD_OP_ORIGIN_READ);
	else
		origin_write(f, req);
}

/* ---- with a manifest: per-chunk sources, verified ------------------------ */

/* Chunk c's current candidate source; false if none is left. */
static bool candidate(struct psd_fetch *f, const struct fetch_req *req,
		      uint32_t c, struct psd_src *ret)
{
	struct psd_src list[PSD_SRC_MAX];
	struct psd_src_want w = {
		.sn = req->sn,
		.chunk = req->msg.first_chunk + c,
		.hash = req->chunks[c].hash,
		.target_dev = req->is_read ? 0 : req->msg.cache_dev,
		.peers = f->swarm != NULL,
	};
	unsigned int n = psd_src_list(f->store, f->origins, &w, list);

	if (req->chunks[c].attempt >= n)
		return false;
	*ret = list[req->chunks[c].attempt];
	return true;
}

static void count_source(struct psd_fetch *f, enum psd_src_kind kind,
			 bool matched)
{
	if (!matched && kind == PSD_SRC_IN_PLACE)
		f->stats.in_place_stale++;
	else if (!matched)
		f->stats.hash_mismatch++;
	else if (kind == PSD_SRC_IN_PLACE)
		f->stats.chunks_in_place++;
	else if (kind == PSD_SRC_CACHE)
		f->stats.chunks_cache++;
	else if (kind == PSD_SRC_PEER)
		f->stats.chunks_peer++;
	else
		f->stats.chunks_origin++;
}

/* The run's bytes are in the buffer: check each chunk against its hash. */
static void run_verify(struct psd_fetch *f, struct fetch_req *req)
{
	size_t cs = chunk_bytes(req), i;
	char *base = (char *)req->buf + req->run.first * cs;
	enum psd_src_kind kind = req->run.src.kind;

	memset(base + req->run.read_len, 0,
	       req->run.count * cs - req->run.read_len);
	for (i = 0; i < req->run.count; i++) {
		struct chunk *ch = &req->chunks[req->run.first + i];
		bool ok = psd_chunkhash_verify(base + i * cs, cs,
					       ch->hash) == 0;

		count_source(f, kind, ok);
		if (ok)
			ch->state = kind == PSD_SRC_IN_PLACE ? CHUNK_IN_PLACE
							     : CHUNK_COPIED;
		else
			ch->attempt++;
	}
	run_close(req);
	req->cursor = req->run.first;
}

/* The run's source failed to open or read: its chunks move on. */
static void run_failed(struct psd_fetch *f, struct fetch_req *req, int err)
{
	uint32_t i;

	psd_dbg("request %llu: source of chunk %llu: %s",
		(unsigned long long)req->msg.request_id,
		(unsigned long long)(req->msg.first_chunk + req->run.first),
		strerror(-err));
	f->stats.source_errors++;
	for (i = 0; i < req->run.count; i++)
		req->chunks[req->run.first + i].attempt++;
	run_close(req);
	req->cursor = req->run.first;
}

/* ---- a chunk from a peer ------------------------------------------------ */

#define RUN_ASKED	1

/* Who a peer's answer is for: the slot may have moved on by then. */
struct peer_wait {
	struct psd_fetch *f;
	uint32_t slot;
	uint16_t gen;
};

static void manifest_step(struct psd_fetch *f, struct fetch_req *req);
static void pump(struct psd_fetch *f);

/* The peer could not deliver the run's chunk: it moves on. */
static void peer_failed(struct psd_fetch *f, struct fetch_req *req, int err)
{
	psd_dbg("request %llu: chunk %llu from a peer: %s",
		(unsigned long long)req->msg.request_id,
		(unsigned long long)(req->msg.first_chunk + req->run.first),
		strerror(-err));
	f->stats.peer_errors++;
	req->chunks[req->run.first].attempt++;
	req->cursor = req->run.first;
}

/* Shutdown took the swarm away: leave the FETCH to the next agent. */
static void peer_abandon(struct psd_fetch *f, struct fetch_req *req)
{
	if (!req->is_read && !req->forgotten) {
		hash_del(f, req);
		req->forgotten = true;
	}
	finish(f, req, -ECANCELED);
}

static void peer_done(void *ctx, int err, const uint8_t *bytes, size_t len)
{
	struct peer_wait *w = ctx;
	struct psd_fetch *f = w->f;
	struct fetch_req *req = slot_req(f, (struct psd_ud){
		.op = PSD_OP_ORIGIN_READ, .gen = w->gen, .idx = w->slot });
	uint64_t cs;

	free(w);
	if (!req)
		return;
	if (err == -ECANCELED) {
		peer_abandon(f, req);
		return;
	}
	cs = chunk_bytes(req);
	if (err == 0 && len != cs)
		err = -EBADMSG;
	if (err) {
		peer_failed(f, req, err);
	} else {
		memcpy((char *)req->buf + req->run.first * cs, bytes, len);
		req->run.read_len = len;
		run_verify(f, req);
	}
	manifest_step(f, req);
	pump(f);
}

/* Asks any peer for the run's one chunk; prefetches yield to demand. */
static int peer_ask(struct psd_fetch *f, struct fetch_req *req)
{
	enum psd_swarm_class cls =
		req->msg.priority == PEERSNAP_PRIO_PREFETCH && !req->is_read ?
		PSD_SWARM_SCAVENGER : PSD_SWARM_DEMAND;
	struct peer_wait *w = malloc(sizeof(*w));
	int r;

	req->run.fd = -1;
	req->run.own_fd = false;
	if (!w) {
		r = -ENOMEM;
	} else {
		*w = (struct peer_wait){ f, req->slot, f->slots[req->slot].gen };
		r = psd_swarm_request(f->swarm, NULL,
				      req->chunks[req->run.first].hash,
				      chunk_bytes(req), cls, peer_done, w);
	}
	if (r < 0) {
		free(w);
		peer_failed(f, req, r);
		return -EAGAIN;
	}
	return RUN_ASKED;
}

/*
 * Plans the run that starts at unresolved chunk c: opens its source and
 * extends it over the following chunks whose candidates continue it.
 * -EAGAIN: the source failed, c moved on; -EIO: c has no source left;
 * RUN_ASKED: a peer was asked for c, peer_done() goes on.
 */
static int run_plan(struct psd_fetch *f, struct fetch_req *req, uint32_t c)
{
	struct run *run = &req->run;
	uint64_t cs = chunk_bytes(req), size, len;
	struct psd_src next;
	int r;

	if (!candidate(f, req, c, &run->src)) {
		f->stats.no_source++;
		return -EIO;
	}
	run->first = c;
	run->count = 1;
	if (run->src.kind == PSD_SRC_PEER)
		return peer_ask(f, req);
	r = psd_src_open(&run->src, f->origins, req->msg.snapshot_id,
			 req->cache_fd, &run->fd, &run->own_fd, &size);
	if (r < 0) {
		run_failed(f, req, r);
		return -EAGAIN;
	}
	while (c + run->count < req->msg.chunk_count &&
	       req->chunks[c + run->count].state == CHUNK_PENDING &&
	       candidate(f, req, c + run->count, &next) &&
	       psd_src_follows(&run->src, &next, run->count * cs))
		run->count++;
	len = run->count * cs;
	if (size <= run->src.offset)
		run->read_len = 0;
	else
		run->read_len = size - run->src.offset < len ?
				size - run->src.offset : len;
	return 0;
}

static bool to_write(const struct chunk *ch)
{
	return ch->state == CHUNK_ZERO || ch->state == CHUNK_COPIED;
}

/* Writes the next run of chunks that are not on the device yet. */
static void write_step(struct psd_fetch *f, struct fetch_req *req)
{
	uint32_t n = req->msg.chunk_count, e;

	while (req->cursor < n && !to_write(&req->chunks[req->cursor]))
		req->cursor++;
	if (req->cursor == n) {
		finish(f, req, 0);
		return;
	}
	for (e = req->cursor; e < n && to_write(&req->chunks[e]); e++)
		;
	req->run.first = req->cursor;
	req->run.count = e - req->cursor;
	req->cursor = e;
	req->done = 0;
	submit_rw(f, req, PSD_OP_CACHE_WRITE);
}

/*
 * A chunk's attempt indexes its candidate list, which the store computes
 * anew each time: once the store's records changed (a control request
 * between two reads), the list may have shifted, and an index would skip
 * a source never tried. Unresolved chunks then start their lists over.
 */
static void restart_if_sources_changed(struct psd_fetch *f,
				       struct fetch_req *req)
{
	uint64_t gen = psd_store_generation(f->store);
	uint32_t c;

	if (gen == req->src_gen)
		return;
	req->src_gen = gen;
	for (c = req->cursor; c < req->msg.chunk_count; c++)
		if (req->chunks[c].state == CHUNK_PENDING)
			req->chunks[c].attempt = 0;
}

/* Reads the next run, or, once every chunk is resolved, writes. */
static void manifest_step(struct psd_fetch *f, struct fetch_req *req)
{
	uint32_t n = req->msg.chunk_count;
	int r;

	for (;;) {
		while (req->cursor < n &&
		       req->chunks[req->cursor].state != CHUNK_PENDING)
			req->cursor++;
		if (req->cursor == n)
			break;
		restart_if_sources_changed(f, req);
		r = run_plan(f, req, req->cursor);
		if (r == -EAGAIN)
			continue;
		if (r < 0) {
			finish(f, req, r);
			return;
		}
		if (r == RUN_ASKED)
			return;
		req->done = 0;
		if (req->run.read_len) {
			submit_rw(f, req, PSD_OP_ORIGIN_READ);
			return;
		}
		run_verify(f, req);	/* nothing there: zeros, no match */
	}
	if (req->is_read) {
		finish(f, req, 0);
		return;
	}
	req->cursor = 0;
	write_step(f, req);
}

static void run_read_done(struct psd_fetch *f, struct fetch_req *req,
			  int res)
{
	if (res < 0) {
		run_failed(f, req, res);
		manifest_step(f, req);
		return;
	}
	if (res == 0)
		req->run.read_len = req->done;	/* a file ended early */
	req->done += (uint64_t)res;
	if (req->done < req->run.read_len) {
		submit_rw(f, req, PSD_OP_ORIGIN_READ);
		return;
	}
	run_verify(f, req);
	manifest_step(f, req);
}

/* Hash of chunk c; zeros need no source (nor chunks past the end). */
static int chunk_init(struct psd_fetch *f, struct fetch_req *req, uint32_t c)
{
	const struct psd_manifest *m = psd_store_manifest(req->sn);
	struct chunk *ch = &req->chunks[c];
	uint64_t i = req->msg.first_chunk + c;
	int r;

	if (i < m->geo.chunk_count) {
		r = psd_store_chunk_hash(f->store, req->sn, i, ch->hash);
		if (r < 0)
			return r == -EBADMSG ? -EIO : r;
	}
	if (!psd_hash_is_zero(ch->hash))
		return 0;
	ch->state = CHUNK_ZERO;
	memset((char *)req->buf + (size_t)c * chunk_bytes(req), 0,
	       chunk_bytes(req));
	f->stats.chunks_zero++;
	return 0;
}

static int manifest_prepare(struct psd_fetch *f, struct fetch_req *req)
{
	const struct psd_manifest *m = psd_store_manifest(req->sn);
	uint32_t c;
	int r;

	if (chunk_bytes(req) != m->geo.chunk_size)
		return -EINVAL;
	req->plan.offset = req->msg.first_chunk * m->geo.chunk_size;
	req->plan.len = psd_fetch_bytes(&req->msg);
	req->plan.read_len = 0;
	req->src_gen = psd_store_generation(f->store);
	if (!req->is_read) {
		r = psd_cache_get(f->cache, req->msg.cache_dev,
				  &req->cache_fd);
		if (r < 0)
			return r;
	}
	r = psd_bufpool_get(f->pool, req->plan.len, &req->buf);
	if (r < 0)
		return r;
	req->chunks = calloc(req->msg.chunk_count, sizeof(*req->chunks));
	if (!req->chunks)
		return -ENOMEM;
	for (c = 0; c < req->msg.chunk_count; c++) {
		r = chunk_init(f, req, c);
		if (r < 0)
			return r;
	}
	return 0;
}

static void start(struct psd_fetch *f, struct fetch_req *req)
{
	int r;

	if (!req->is_read)
		req->sn = f->store ? psd_store_get(f->store,
						   req->msg.snapshot_id)
				   : NULL;
	if (!req->sn) {
		origin_start(f, req);
		return;
	}
	r = manifest_prepare(f, req);
	if (r < 0) {
		finish(f, req, r);
		return;
	}
	manifest_step(f, req);
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
	if (res == -EAGAIN || res == -EINTR)
		submit_rw(f, req, PSD_OP_ORIGIN_READ);
	else if (req->sn)
		run_read_done(f, req, res);
	else
		origin_read_done(f, req, res);
	pump(f);
}

static void on_write(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_fetch *f = ctx;
	struct fetch_req *req = slot_req(f, ud);
	uint64_t len;

	(void)flags;
	if (!req)
		return;
	len = req->sn ? (uint64_t)req->run.count * chunk_bytes(req)
		      : req->plan.len;
	if (res == -EAGAIN || res == -EINTR) {
		submit_rw(f, req, PSD_OP_CACHE_WRITE);
	} else if (res <= 0) {
		finish(f, req, res < 0 ? res : -EIO);
	} else {
		req->done += (uint64_t)res;
		if (req->done < len)
			submit_rw(f, req, PSD_OP_CACHE_WRITE);
		else if (req->sn)
			write_step(f, req);
		else
			finish(f, req, 0);
	}
	pump(f);
}

/* psd_fetch_read() queues without starting: this starts from the loop. */
static void on_kick(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_fetch *f = ctx;

	(void)ud;
	(void)res;
	(void)flags;
	f->kick_armed = false;
	pump(f);
}

static int arm_kick(struct psd_fetch *f)
{
	struct io_uring_sqe *sqe;

	if (f->kick_armed)
		return 0;
	sqe = psd_loop_sqe(f->loop);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_nop(sqe);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_FETCH_KICK });
	f->kick_armed = true;
	return 0;
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
	req->run.fd = -1;
	hash_add(f, req);
	enqueue(f, req);
	pump(f);
}

int psd_fetch_read(struct psd_fetch *f, const uint8_t id[PSD_HASH_LEN],
		   uint64_t first, uint32_t count, void *buf, size_t len,
		   psd_fetch_read_fn cb, void *ctx, uint64_t *ret_id)
{
	const struct psd_store_snapshot *sn;
	const struct psd_manifest *m;
	struct fetch_req *req;
	uint64_t bytes;
	int r;

	if (f->draining)
		return -ESHUTDOWN;
	sn = f->store ? psd_store_get(f->store, id) : NULL;
	if (!sn)
		return -ENOENT;
	m = psd_store_manifest(sn);
	if (!count || first >= m->geo.chunk_count ||
	    count > m->geo.chunk_count - first)
		return -ERANGE;
	bytes = (uint64_t)count * m->geo.chunk_size;
	if (bytes > PSD_FETCH_MAX_BYTES)
		return -E2BIG;
	if (len < bytes)
		return -ENOBUFS;
	if (f->queued >= f->lim.max_queued)
		return -EBUSY;
	req = calloc(1, sizeof(*req));
	if (!req)
		return -ENOMEM;
	r = arm_kick(f);
	if (r < 0) {
		free(req);
		return r;
	}
	*req = (struct fetch_req){
		.msg = { .request_id = ++f->next_read_id, .first_chunk = first,
			 .chunk_count = count,
			 .chunk_sectors = m->geo.chunk_size >> PSD_SECTOR_SHIFT,
			 .priority = READ_QUEUE },
		.cache_fd = -1, .run.fd = -1, .is_read = true, .sn = sn,
		.out = buf, .cb = cb, .cb_ctx = ctx,
	};
	memcpy(req->msg.snapshot_id, id, PSD_HASH_LEN);
	enqueue(f, req);
	*ret_id = req->msg.request_id;
	return 0;
}

void psd_fetch_read_cancel(struct psd_fetch *f, uint64_t id)
{
	struct fetch_fifo *q = &f->queue[READ_QUEUE];
	struct fetch_req **pp, *prev = NULL, *req;
	unsigned int i;

	for (pp = &q->head; *pp; prev = *pp, pp = &(*pp)->qnext) {
		req = *pp;
		if (req->msg.request_id != id)
			continue;
		*pp = req->qnext;
		if (q->tail == req)
			q->tail = prev;
		f->queued--;
		free_req(req);
		return;
	}
	for (i = 0; i < f->lim.max_inflight; i++) {
		req = f->slots[i].req;
		if (req && req->is_read && req->msg.request_id == id)
			req->forgotten = true;
	}
}

void psd_fetch_notify_when_empty(struct psd_fetch *f)
{
	f->want_empty = true;
	if (!f->pumping)
		notify(f);
}

/* Forgets queued FETCHes unanswered: the kernel still holds them. */
static void drop_fetches(struct psd_fetch *f)
{
	unsigned int i;

	for (i = 0; i < NR_PRIO_QUEUES; i++) {
		while (f->queue[i].head) {
			struct fetch_req *req = dequeue(f, &f->queue[i]);

			hash_del(f, req);
			free_req(req);
		}
	}
}

/* Drops queued reads, telling their callers (tell) or not. */
static void drop_reads(struct psd_fetch *f, bool tell)
{
	while (f->queue[READ_QUEUE].head) {
		struct fetch_req *req = dequeue(f, &f->queue[READ_QUEUE]);

		if (tell) {
			f->stats.reads++;
			f->stats.reads_failed++;
			req->cb(req->cb_ctx, -ECANCELED);
		}
		free_req(req);
	}
}

void psd_fetch_drain(struct psd_fetch *f)
{
	f->draining = true;
	drop_fetches(f);
	drop_reads(f, true);
	if (!f->pumping)
		notify(f);
}

void psd_fetch_forget(struct psd_fetch *f)
{
	unsigned int i;

	drop_fetches(f);
	for (i = 0; i < f->lim.max_inflight; i++) {
		struct fetch_req *req = f->slots[i].req;

		if (req && !req->forgotten && !req->is_read) {
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

void psd_fetch_set_swarm(struct psd_fetch *f, struct psd_swarm *sw)
{
	f->swarm = sw;
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
		   struct psd_store *store,
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
				 .cache = cache, .store = store,
				 .lim = *limits, .ops = ops, .ctx = ctx };
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
	psd_loop_set_handler(loop, PSD_OP_FETCH_KICK, on_kick, f);
	*ret = f;
	return 0;
}

/* Abandons whatever is left: no FETCH_DONE, the kernel resends it. */
void psd_fetch_uninit(struct psd_fetch *f)
{
	unsigned int i;

	if (!f)
		return;
	drop_fetches(f);
	drop_reads(f, false);
	for (i = 0; f->slots && i < f->lim.max_inflight; i++) {
		struct fetch_req *req = f->slots[i].req;

		if (!req)
			continue;
		run_close(req);
		if (req->buf)
			psd_bufpool_put(f->pool, req->buf, req->plan.len);
		if (req->cache_fd >= 0)
			psd_cache_put(f->cache, req->msg.cache_dev);
		free_req(req);
	}
	psd_bufpool_uninit(f->pool);
	free(f->hash);
	free(f->slots);
	free(f->free_slots);
	free(f);
}
