// SPDX-License-Identifier: GPL-2.0
/*
 * The fetch engine: offset/length math with zero-fill past the image's
 * end, the buffer pool, and whole requests through io_uring from an image
 * file to a loop device (skipped without root / loop devices): first with
 * --origin images, then for snapshots with a manifest in the store
 * (verification, sources, in-place reuse, reads for pull).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "kselftest_harness.h"


#include "bufpool.h"
#include "fetch.h"
#include "loopdev.h"
#include "rmtree.h"
#include "snapbuild.h"

/* ---- plan math --------------------------------------------------------- */

static struct psd_fetch_msg req(uint64_t first, uint32_t count,
				uint32_t sectors)
{
	struct psd_fetch_msg m = {
		.request_id = 1, .first_chunk = first, .chunk_count = count,
		.chunk_sectors = sectors, .cache_dev = 1,
	};

	return m;
}

TEST(plan_inside_the_image)
{
	struct psd_fetch_msg m = req(3, 2, 128);	/* 64 KiB chunks */
	struct psd_fetch_plan p;

	ASSERT_EQ(0, psd_fetch_plan(&m, 1 << 30, &p));
	EXPECT_EQ(3 * 65536, p.offset);
	EXPECT_EQ(2 * 65536, p.len);
	EXPECT_EQ(2 * 65536, p.read_len);
}

TEST(plan_straddles_the_end)
{
	struct psd_fetch_msg m = req(1, 2, 8);		/* 4 KiB chunks */
	struct psd_fetch_plan p;

	ASSERT_EQ(0, psd_fetch_plan(&m, 4096 + 5000, &p));
	EXPECT_EQ(4096, p.offset);
	EXPECT_EQ(8192, p.len);
	EXPECT_EQ(5000, p.read_len);		/* then 3192 zeros */
}

TEST(plan_ends_exactly_at_the_end)
{
	struct psd_fetch_msg m = req(1, 1, 8);
	struct psd_fetch_plan p;

	ASSERT_EQ(0, psd_fetch_plan(&m, 8192, &p));
	EXPECT_EQ(4096, p.read_len);
}

TEST(plan_past_the_end_is_all_zeros)
{
	struct psd_fetch_msg m = req(2, 1, 8);
	struct psd_fetch_plan p;

	ASSERT_EQ(0, psd_fetch_plan(&m, 8192, &p));
	EXPECT_EQ(0, p.read_len);
	ASSERT_EQ(0, psd_fetch_plan(&m, 0, &p));
	EXPECT_EQ(0, p.read_len);
	EXPECT_EQ(4096, p.len);
}

TEST(plan_overflow)
{
	struct psd_fetch_msg m = req(UINT64_MAX / 4096, 1, 8);
	struct psd_fetch_plan p;

	EXPECT_EQ(-EINVAL, psd_fetch_plan(&m, 0, &p));
	m = req(UINT64_MAX / 4096 - 1, 2, 8);
	EXPECT_EQ(-EINVAL, psd_fetch_plan(&m, 0, &p));
	m = req(0, 1, 0);
	EXPECT_EQ(-EINVAL, psd_fetch_plan(&m, 0, &p));
}

/* ---- buffer pool ------------------------------------------------------- */

TEST(bufpool_classes)
{
	EXPECT_EQ(4096, psd_bufpool_class_size(1));
	EXPECT_EQ(4096, psd_bufpool_class_size(4096));
	EXPECT_EQ(8192, psd_bufpool_class_size(4097));
	EXPECT_EQ(4 << 20, psd_bufpool_class_size(3 << 20));
	EXPECT_EQ(64 << 20, psd_bufpool_class_size(64 << 20));
	EXPECT_EQ(0, psd_bufpool_class_size((64 << 20) + 1));
}

TEST(bufpool_budget_and_reuse)
{
	struct psd_bufpool *p;
	void *a, *b, *c;

	ASSERT_EQ(0, psd_bufpool_init(&p, 64 << 10, 1 << 20));
	ASSERT_EQ(0, psd_bufpool_get(p, 40000, &a));	/* 64 KiB class */
	EXPECT_EQ(0, (uintptr_t)a % 4096);
	EXPECT_FALSE(psd_bufpool_fits(p, 1));
	EXPECT_EQ(-ENOBUFS, psd_bufpool_get(p, 1, &b));
	EXPECT_EQ(-E2BIG, psd_bufpool_get(p, (64 << 20) + 1, &b));
	psd_bufpool_put(p, a, 40000);
	EXPECT_EQ(0, psd_bufpool_in_use(p));
	ASSERT_EQ(0, psd_bufpool_get(p, 65536, &b));
	EXPECT_EQ(a, b);				/* from the free list */
	psd_bufpool_put(p, b, 65536);
	ASSERT_EQ(0, psd_bufpool_get(p, 100, &c));
	EXPECT_EQ(0, (uintptr_t)c % 4096);
	psd_bufpool_put(p, c, 100);
	psd_bufpool_uninit(p);
}

/* ---- whole requests on a loop device ----------------------------------- */

#define CHUNK		65536u
#define SECTORS		(CHUNK / 512)
#define IMAGE_SIZE	(4 * CHUNK + 12345)	/* ends inside chunk 4 */
#define DEVICE_SIZE	(16 * CHUNK)
#define MAX_DONE	16

static const uint8_t snap[PEERSNAP_SNAPSHOT_ID_LEN] = { 0xab, 0xcd };

struct engine {
	struct loopdev ld;
	char image[64];
	struct psd_loop *loop;
	struct psd_origins *origins;
	struct psd_cache *cache;
	struct psd_store *store;	/* NULL: --origin only */
	struct psd_fetch *fetch;
	uint32_t dev;
	struct psd_fetch_done done[MAX_DONE];
	unsigned int n_done, want_done;
	unsigned int overflows, empties;
	bool drained;
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 12) + 1) | 1;	/* never 0 */
}

static void on_done(void *ctx, const struct psd_fetch_done *d)
{
	struct engine *e = ctx;

	if (e->n_done < MAX_DONE)
		e->done[e->n_done] = *d;
	if (++e->n_done == e->want_done)
		psd_loop_stop(e->loop);
}

static void on_overflow(void *ctx)
{
	((struct engine *)ctx)->overflows++;
}

static void on_empty(void *ctx)
{
	((struct engine *)ctx)->empties++;
}

static void on_drained(void *ctx)
{
	struct engine *e = ctx;

	e->drained = true;
	psd_loop_stop(e->loop);
}

static const struct psd_fetch_ops ops = {
	.done = on_done, .overflow = on_overflow,
	.queue_empty = on_empty, .drained = on_drained,
};

static int make_image(struct engine *e)
{
	uint8_t *buf = malloc(IMAGE_SIZE);
	uint64_t i;
	int fd;

	snprintf(e->image, sizeof(e->image), "/tmp/psd-image-XXXXXX");
	fd = mkstemp(e->image);
	if (fd < 0 || !buf)
		return -1;
	for (i = 0; i < IMAGE_SIZE; i++)
		buf[i] = pattern(i);
	if (write(fd, buf, IMAGE_SIZE) != IMAGE_SIZE)
		return -1;
	free(buf);
	return close(fd);
}

/* Fills the device with 0xee, so zero-fill is visible. */
static int poison_device(struct engine *e)
{
	uint8_t *buf = malloc(DEVICE_SIZE);
	int r;

	memset(buf, 0xee, DEVICE_SIZE);
	r = pwrite(e->ld.fd, buf, DEVICE_SIZE, 0) == DEVICE_SIZE ? 0 : -1;
	free(buf);
	return r ? r : fsync(e->ld.fd);
}

static int engine_start(struct engine *e, unsigned int inflight,
			unsigned int queued)
{
	struct psd_origin_entry oe = { .path = e->image };
	struct psd_fetch_limits lim = {
		.max_inflight = inflight, .max_queued = queued,
		.max_buffer_bytes = 64 << 20,
	};

	memcpy(oe.id, snap, sizeof(snap));
	if (make_image(e) || poison_device(e))
		return -1;
	e->dev = encode_dev(major(e->ld.rdev), minor(e->ld.rdev));
	if (psd_loop_init(&e->loop, 64) || psd_origins_init(&e->origins, &oe, 1) ||
	    psd_cache_init(&e->cache, "/tmp/psd-no-state-dir"))
		return -1;
	return psd_fetch_init(&e->fetch, e->loop, e->origins, e->cache,
			      e->store, &lim, &ops, e);
}

static void engine_stop(struct engine *e)
{
	psd_loop_quiesce(e->loop, 1000);
	psd_fetch_uninit(e->fetch);
	psd_cache_uninit(e->cache);
	psd_origins_uninit(e->origins);
	psd_loop_uninit(e->loop);
	unlink(e->image);
	loopdev_destroy(&e->ld);
}

static struct psd_fetch_msg fetch(struct engine *e, uint64_t id,
				  uint64_t first, uint32_t count, uint8_t prio)
{
	struct psd_fetch_msg m = {
		.request_id = id, .device_id = 3, .first_chunk = first,
		.chunk_count = count, .cache_dev = e->dev,
		.chunk_sectors = SECTORS, .priority = prio,
	};

	memcpy(m.snapshot_id, snap, sizeof(snap));
	return m;
}

/* Device bytes [off, off + len) hold the image's bytes, zeros beyond. */
static bool device_matches(struct engine *e, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len);
	bool ok = pread(e->ld.fd, buf, len, (off_t)off) == (ssize_t)len;
	uint64_t i;

	for (i = 0; ok && i < len; i++)
		ok = buf[i] == (off + i < IMAGE_SIZE ? pattern(off + i) : 0);
	free(buf);
	return ok;
}

static bool device_untouched(struct engine *e, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len);
	bool ok = pread(e->ld.fd, buf, len, (off_t)off) == (ssize_t)len;
	uint64_t i;

	for (i = 0; ok && i < len; i++)
		ok = buf[i] == 0xee;
	free(buf);
	return ok;
}

static const struct psd_fetch_done *done_for(struct engine *e, uint64_t id)
{
	unsigned int i;

	for (i = 0; i < e->n_done && i < MAX_DONE; i++)
		if (e->done[i].request_id == id)
			return &e->done[i];
	return NULL;
}

FIXTURE(engine) {
	struct engine e;
};

FIXTURE_SETUP(engine)
{
	memset(&self->e, 0, sizeof(self->e));
	if (loopdev_create(&self->e.ld, DEVICE_SIZE) < 0)
		SKIP_FROM_SETUP("no loop device: %s", strerror(errno));
}

FIXTURE_TEARDOWN(engine)
{
}

TEST_F(engine, copies_and_zero_fills)
{
	struct engine *e = &self->e;
	struct psd_fetch_msg m;

	ASSERT_EQ(0, engine_start(e, 64, 16));
	m = fetch(e, 1, 0, 2, PEERSNAP_PRIO_DEMAND);	/* inside */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 2, 3, 2, PEERSNAP_PRIO_DEMAND);	/* straddles end */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 3, 8, 3, PEERSNAP_PRIO_PREFETCH);	/* past the end */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 4, 12, 1, PEERSNAP_PRIO_DEMAND);
	m.snapshot_id[0] ^= 1;				/* no such origin */
	psd_fetch_submit(e->fetch, &m);
	e->want_done = 4;
	ASSERT_EQ(0, psd_loop_run(e->loop));

	ASSERT_EQ(4, e->n_done);
	EXPECT_EQ(0, done_for(e, 1)->status);
	EXPECT_EQ(0, done_for(e, 2)->status);
	EXPECT_EQ(0, done_for(e, 3)->status);
	EXPECT_EQ(-ENOENT, done_for(e, 4)->status);
	EXPECT_EQ(3, done_for(e, 2)->first_chunk);
	EXPECT_EQ(2, done_for(e, 2)->chunk_count);
	EXPECT_EQ(3, done_for(e, 2)->device_id);
	EXPECT_TRUE(device_matches(e, 0, 2 * CHUNK));
	EXPECT_TRUE(device_untouched(e, 2 * CHUNK, CHUNK));
	EXPECT_TRUE(device_matches(e, 3 * CHUNK, 2 * CHUNK));
	EXPECT_TRUE(device_untouched(e, 5 * CHUNK, 3 * CHUNK));
	EXPECT_TRUE(device_matches(e, 8 * CHUNK, 3 * CHUNK));
	EXPECT_TRUE(device_untouched(e, 11 * CHUNK, 5 * CHUNK));
	/* Every cache device reference was dropped. */
	EXPECT_EQ(0, psd_cache_open_count(e->cache));
	EXPECT_EQ(0, psd_fetch_inflight(e->fetch));
	engine_stop(e);
}

TEST_F(engine, demand_first_and_duplicates_ignored)
{
	struct engine *e = &self->e;
	struct psd_fetch_msg m;

	ASSERT_EQ(0, engine_start(e, 1, 16));
	m = fetch(e, 10, 0, 1, PEERSNAP_PRIO_PREFETCH);	/* starts at once */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 11, 1, 1, PEERSNAP_PRIO_PREFETCH);
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 12, 2, 1, PEERSNAP_PRIO_WRITE_HYDRATE);
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 13, 3, 1, PEERSNAP_PRIO_DEMAND);
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 11, 1, 1, PEERSNAP_PRIO_PREFETCH);	/* a resend */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 10, 0, 1, PEERSNAP_PRIO_PREFETCH);	/* in flight */
	psd_fetch_submit(e->fetch, &m);
	EXPECT_EQ(2, psd_fetch_get_stats(e->fetch)->duplicates);
	e->want_done = 4;
	ASSERT_EQ(0, psd_loop_run(e->loop));
	ASSERT_EQ(4, e->n_done);
	EXPECT_EQ(10, e->done[0].request_id);
	EXPECT_EQ(13, e->done[1].request_id);
	EXPECT_EQ(12, e->done[2].request_id);
	EXPECT_EQ(11, e->done[3].request_id);
	EXPECT_TRUE(device_matches(e, 0, 4 * CHUNK));
	engine_stop(e);
}

TEST_F(engine, full_queue_drops_and_reports)
{
	struct engine *e = &self->e;
	struct psd_fetch_msg m;

	ASSERT_EQ(0, engine_start(e, 1, 1));
	m = fetch(e, 20, 0, 1, PEERSNAP_PRIO_DEMAND);	/* in flight */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 21, 1, 1, PEERSNAP_PRIO_DEMAND);	/* queued */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 22, 2, 1, PEERSNAP_PRIO_DEMAND);	/* dropped */
	psd_fetch_submit(e->fetch, &m);
	EXPECT_EQ(1, e->overflows);
	EXPECT_EQ(1, psd_fetch_get_stats(e->fetch)->dropped);
	EXPECT_EQ(1, psd_fetch_queued(e->fetch));
	psd_fetch_notify_when_empty(e->fetch);
	EXPECT_EQ(0, e->empties);
	e->want_done = 2;
	ASSERT_EQ(0, psd_loop_run(e->loop));
	EXPECT_EQ(1, e->empties);
	EXPECT_EQ(NULL, done_for(e, 22));
	/* After the owner's REGISTER, the kernel resends it. */
	psd_fetch_submit(e->fetch, &m);
	e->want_done = 3;
	ASSERT_EQ(0, psd_loop_run(e->loop));
	EXPECT_EQ(0, done_for(e, 22)->status);
	engine_stop(e);
}

TEST_F(engine, drain_finishes_inflight_and_forgets_queue)
{
	struct engine *e = &self->e;
	struct psd_fetch_msg m;

	ASSERT_EQ(0, engine_start(e, 1, 16));
	m = fetch(e, 30, 0, 1, PEERSNAP_PRIO_DEMAND);
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 31, 1, 1, PEERSNAP_PRIO_DEMAND);
	psd_fetch_submit(e->fetch, &m);
	psd_fetch_drain(e->fetch);
	EXPECT_EQ(0, psd_fetch_queued(e->fetch));
	m = fetch(e, 32, 2, 1, PEERSNAP_PRIO_DEMAND);
	psd_fetch_submit(e->fetch, &m);			/* ignored */
	ASSERT_EQ(0, psd_loop_run(e->loop));
	EXPECT_TRUE(e->drained);
	ASSERT_EQ(1, e->n_done);
	EXPECT_EQ(30, e->done[0].request_id);
	EXPECT_EQ(0, e->done[0].status);
	EXPECT_EQ(1, psd_fetch_get_stats(e->fetch)->ignored);
	engine_stop(e);
}

TEST_F(engine, bad_cache_device_fails_the_request)
{
	struct engine *e = &self->e;
	struct psd_fetch_msg m;

	ASSERT_EQ(0, engine_start(e, 4, 16));
	m = fetch(e, 40, 0, 1, PEERSNAP_PRIO_DEMAND);
	m.cache_dev = encode_dev(4095, 1048575);
	psd_fetch_submit(e->fetch, &m);
	/* Past the end of the 1 MiB device: the write fails. */
	m = fetch(e, 41, 4096, 1, PEERSNAP_PRIO_DEMAND);
	psd_fetch_submit(e->fetch, &m);
	e->want_done = 2;
	ASSERT_EQ(0, psd_loop_run(e->loop));
	EXPECT_EQ(-ENODEV, done_for(e, 40)->status);
	EXPECT_GT(0, done_for(e, 41)->status);
	EXPECT_EQ(0, psd_cache_open_count(e->cache));
	engine_stop(e);
}

/* Module reload: old requests finish silently, their ids may recur. */
TEST_F(engine, forget_after_module_unload)
{
	struct engine *e = &self->e;
	struct psd_fetch_msg m;

	ASSERT_EQ(0, engine_start(e, 1, 16));
	m = fetch(e, 50, 0, 1, PEERSNAP_PRIO_DEMAND);	/* in flight */
	psd_fetch_submit(e->fetch, &m);
	m = fetch(e, 51, 1, 1, PEERSNAP_PRIO_DEMAND);	/* queued */
	psd_fetch_submit(e->fetch, &m);
	psd_fetch_forget(e->fetch);
	EXPECT_EQ(0, psd_fetch_queued(e->fetch));
	EXPECT_EQ(1, psd_fetch_inflight(e->fetch));
	/* The next module instance reuses id 50 for another range. */
	m = fetch(e, 50, 2, 1, PEERSNAP_PRIO_DEMAND);
	psd_fetch_submit(e->fetch, &m);
	EXPECT_EQ(0, psd_fetch_get_stats(e->fetch)->duplicates);
	e->want_done = 1;
	ASSERT_EQ(0, psd_loop_run(e->loop));
	ASSERT_EQ(1, e->n_done);
	EXPECT_EQ(50, e->done[0].request_id);
	EXPECT_EQ(2, e->done[0].first_chunk);
	EXPECT_EQ(0, psd_fetch_inflight(e->fetch));
	EXPECT_TRUE(device_untouched(e, CHUNK, CHUNK));
	EXPECT_TRUE(device_matches(e, 2 * CHUNK, CHUNK));
	engine_stop(e);
}

/* ---- snapshots with a manifest ----------------------------------------- */

#define MCHUNKS		12		/* chunks of a manifest-backed image */
#define MSIZE		((uint64_t)MCHUNKS * CHUNK - 777)

static struct psd_identity alice;
static uint8_t alice_key[1][PSD_PUBKEY_LEN];
static const struct psd_trust trust_alice = { alice_key, 1 };

/* A published image: its bytes, origin file and manifest. */
struct published {
	uint8_t *data;
	char path[96];
	struct snapbuild sb;
};

struct mengine {
	struct engine e;		/* its loop device is the target */
	char dir[64];			/* the store */
	struct published v1, v2;
	const struct psd_fetch_stats *st;
	int read_status;
	unsigned int reads_done;
};

/* Chunks 5 and 6 are zeros: never read from anywhere. */
static uint8_t mpattern(uint64_t off, unsigned int version)
{
	if (off / CHUNK == 5 || off / CHUNK == 6)
		return 0;
	return (uint8_t)(off * 13 + (off >> 16) * version + 1) | 1;
}

/* version 2 differs from 1 in chunks 3 and 8 only. */
static int publish(struct mengine *me, struct published *p,
		   unsigned int version, const char *name)
{
	uint64_t i;
	int fd;

	p->data = malloc(MSIZE);
	if (!p->data)
		return -1;
	for (i = 0; i < MSIZE; i++)
		p->data[i] = mpattern(i, version == 2 && (i / CHUNK == 3 ||
							  i / CHUNK == 8) ? 2 : 1);
	if (snapbuild(&p->sb, p->data, MSIZE, CHUNK, 0, name, version,
		      &alice) < 0 ||
	    psd_store_add(me->e.store, p->sb.manifest, p->sb.len, p->sb.blobs,
			  p->sb.geo.index_count, NULL, NULL, NULL) < 0)
		return -1;
	snprintf(p->path, sizeof(p->path), "%s/%s.img", me->dir, name);
	fd = open(p->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, p->data, MSIZE) != (ssize_t)MSIZE)
		return -1;
	return close(fd);
}

static int set_origin(struct mengine *me, struct published *p)
{
	char err[256];

	return psd_store_set_origin(me->e.store, p->sb.id, p->path, err,
				    sizeof(err));
}

/* Overwrites chunk c of an origin file with other bytes. */
static int corrupt_origin(struct published *p, uint64_t c, uint8_t v)
{
	uint8_t *buf = malloc(CHUNK);
	int fd = open(p->path, O_WRONLY), r;

	memset(buf, v, CHUNK);
	r = fd >= 0 && pwrite(fd, buf, CHUNK, (off_t)(c * CHUNK)) == CHUNK;
	free(buf);
	if (fd >= 0)
		close(fd);
	return r ? 0 : -1;
}

static int mengine_start(struct mengine *me)
{
	struct engine *e = &me->e;
	struct psd_fetch_limits lim = {
		.max_inflight = 8, .max_queued = 64,
		.max_buffer_bytes = 64 << 20,
	};
	char err[256];

	if (psd_chunkhash_init())
		return -1;
	memset(alice_key, 0x3c, sizeof(alice_key));
	psd_identity_from_seed(alice_key[0], &alice);
	memcpy(alice_key[0], alice.pk, PSD_PUBKEY_LEN);
	snprintf(me->dir, sizeof(me->dir), "/tmp/psd-fstore-XXXXXX");
	if (!mkdtemp(me->dir) || poison_device(e) ||
	    psd_store_open(&e->store, me->dir, &trust_alice, err, sizeof(err)))
		return -1;
	if (publish(me, &me->v1, 1, "v1") || publish(me, &me->v2, 2, "v2"))
		return -1;
	e->dev = encode_dev(major(e->ld.rdev), minor(e->ld.rdev));
	if (psd_loop_init(&e->loop, 64) || psd_origins_init(&e->origins, NULL, 0) ||
	    psd_cache_init(&e->cache, "/tmp/psd-no-state-dir") ||
	    psd_fetch_init(&e->fetch, e->loop, e->origins, e->cache, e->store,
			   &lim, &ops, e))
		return -1;
	me->st = psd_fetch_get_stats(e->fetch);
	return 0;
}

static void mengine_stop(struct mengine *me)
{
	struct engine *e = &me->e;

	psd_loop_quiesce(e->loop, 1000);
	psd_fetch_uninit(e->fetch);
	psd_cache_uninit(e->cache);
	psd_origins_uninit(e->origins);
	psd_store_close(e->store);
	psd_loop_uninit(e->loop);
	loopdev_destroy(&e->ld);
	snapbuild_free(&me->v1.sb);
	snapbuild_free(&me->v2.sb);
	free(me->v1.data);
	free(me->v2.data);
	rmtree(me->dir);
}

/* Runs one FETCH of [first, first + count) of p to completion. */
static int run_fetch(struct mengine *me, const struct published *p,
		     uint64_t id, uint64_t first, uint32_t count)
{
	struct engine *e = &me->e;
	struct psd_fetch_msg m = fetch(e, id, first, count,
				       PEERSNAP_PRIO_DEMAND);

	memcpy(m.snapshot_id, p->sb.id, PSD_HASH_LEN);
	e->n_done = 0;
	e->want_done = 1;
	psd_fetch_submit(e->fetch, &m);
	/* A request may fail before any I/O, inside the submit. */
	if (!e->n_done && psd_loop_run(e->loop))
		return -999;
	return e->n_done == 1 ? e->done[0].status : -999;
}

/* Device chunks [first, first + n) hold p's data (zeros past its end). */
static bool device_holds(struct mengine *me, const struct published *p,
			uint64_t first, uint64_t n)
{
	uint64_t len = n * CHUNK, off = first * CHUNK, i;
	uint8_t *buf = malloc(len);
	bool ok = pread(me->e.ld.fd, buf, len, (off_t)off) == (ssize_t)len;

	for (i = 0; ok && i < len; i++)
		ok = buf[i] == (off + i < MSIZE ? p->data[off + i] : 0);
	free(buf);
	return ok;
}

FIXTURE(mengine) {
	struct mengine me;
};

FIXTURE_SETUP(mengine)
{
	memset(&self->me, 0, sizeof(self->me));
	if (loopdev_create(&self->me.e.ld, DEVICE_SIZE) < 0)
		SKIP_FROM_SETUP("no loop device: %s", strerror(errno));
	ASSERT_EQ(0, mengine_start(&self->me));
}

FIXTURE_TEARDOWN(mengine)
{
	if (self->me.e.loop)
		mengine_stop(&self->me);
}

TEST_F(mengine, writes_verified_data_and_never_reads_zero_chunks)
{
	struct mengine *me = &self->me;

	ASSERT_EQ(0, set_origin(me, &me->v1));
	/* The origin's zero chunks hold garbage: reading them would fail. */
	ASSERT_EQ(0, corrupt_origin(&me->v1, 5, 0xab));
	ASSERT_EQ(0, run_fetch(me, &me->v1, 1, 0, MCHUNKS));
	EXPECT_TRUE(device_holds(me, &me->v1, 0, MCHUNKS));
	EXPECT_TRUE(device_untouched(&me->e, MCHUNKS * CHUNK, CHUNK));
	EXPECT_EQ(10, me->st->chunks_origin);
	EXPECT_EQ(2, me->st->chunks_zero);
	EXPECT_EQ(0, me->st->hash_mismatch);
	EXPECT_EQ(0, me->st->chunks_in_place);
	EXPECT_EQ(0, me->st->legacy);
	EXPECT_EQ(0, psd_cache_open_count(me->e.cache));
	/* A FETCH whose chunk size is not the manifest's. */
	{
		struct psd_fetch_msg m = fetch(&me->e, 2, 0, 1,
					       PEERSNAP_PRIO_DEMAND);

		memcpy(m.snapshot_id, me->v1.sb.id, PSD_HASH_LEN);
		m.chunk_sectors /= 2;
		me->e.n_done = 0;
		psd_fetch_submit(me->e.fetch, &m);
		ASSERT_EQ(1, me->e.n_done);
		EXPECT_EQ(-EINVAL, me->e.done[0].status);
	}
}

TEST_F(mengine, corrupt_origin_chunk_fails_with_eio)
{
	struct mengine *me = &self->me;

	ASSERT_EQ(0, set_origin(me, &me->v1));
	ASSERT_EQ(0, corrupt_origin(&me->v1, 2, 0x5a));
	EXPECT_EQ(-EIO, run_fetch(me, &me->v1, 1, 1, 3));
	EXPECT_EQ(1, me->st->hash_mismatch);
	EXPECT_EQ(1, me->st->no_source);
	EXPECT_EQ(1, me->st->failed);
	/* Nothing was written, not even the good chunks around it. */
	EXPECT_TRUE(device_untouched(&me->e, CHUNK, 3 * CHUNK));
	EXPECT_EQ(0, run_fetch(me, &me->v1, 2, 0, 1));
	EXPECT_TRUE(device_holds(me, &me->v1, 0, 1));
	/* No source at all: v2 has no origin, and its chunk 3 is its own. */
	EXPECT_EQ(-EIO, run_fetch(me, &me->v2, 3, 3, 1));
	EXPECT_EQ(2, me->st->no_source);
}

/* The device held v1; v2 reuses it in place but for its changed chunks. */
TEST_F(mengine, in_place_reuse_copies_only_changed_chunks)
{
	struct mengine *me = &self->me;
	char err[256];

	ASSERT_EQ(0, set_origin(me, &me->v1));
	ASSERT_EQ(0, set_origin(me, &me->v2));
	ASSERT_EQ(0, run_fetch(me, &me->v1, 1, 0, MCHUNKS));
	ASSERT_EQ(0, psd_store_set_cache(me->e.store, me->v1.sb.id,
					 me->e.ld.node, "vol-v1", NULL, 0, err,
					 sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, psd_store_cache_detached(me->e.store, "vol-v1"));
	ASSERT_EQ(0, psd_store_set_cache(me->e.store, me->v2.sb.id,
					 me->e.ld.node, "vol-v2", NULL, 0, err,
					 sizeof(err)));
	/* Two FETCHes, as the kernel may split them. */
	ASSERT_EQ(0, run_fetch(me, &me->v2, 2, 0, 7));
	ASSERT_EQ(0, run_fetch(me, &me->v2, 3, 7, MCHUNKS - 7));
	EXPECT_TRUE(device_holds(me, &me->v2, 0, MCHUNKS));
	EXPECT_EQ(10 + 2, me->st->chunks_origin);	/* v1's 10, v2's 2 */
	EXPECT_EQ(8, me->st->chunks_in_place);
	EXPECT_EQ(2 + 2, me->st->chunks_zero);
	EXPECT_EQ(0, me->st->hash_mismatch);
	EXPECT_EQ(0, me->st->in_place_stale);
	EXPECT_EQ(0, me->st->chunks_cache);
}

/* A stale in-place record costs a verification, never data. */
TEST_F(mengine, stale_in_place_record_falls_back)
{
	struct mengine *me = &self->me;
	char err[256];

	ASSERT_EQ(0, set_origin(me, &me->v2));
	/* Recorded as holding v1, but the device holds 0xee. */
	ASSERT_EQ(0, psd_store_set_cache(me->e.store, me->v1.sb.id,
					 me->e.ld.node, NULL, NULL, 0, err,
					 sizeof(err)));
	ASSERT_EQ(0, run_fetch(me, &me->v2, 1, 0, 3));
	EXPECT_TRUE(device_holds(me, &me->v2, 0, 3));
	EXPECT_EQ(3, me->st->in_place_stale);	/* v1 == v2 there */
	EXPECT_EQ(3, me->st->chunks_origin);
	EXPECT_EQ(0, me->st->chunks_in_place);
}

/*
 * The store changes while a chunk's source is being read: the in-place
 * record is replaced (its chunks no longer present) before the in-place
 * read completes. The chunk's next candidate is then the origin, the
 * first of its new list, not the second of it (which does not exist).
 */
TEST_F(mengine, store_change_mid_fetch_keeps_every_source)
{
	struct mengine *me = &self->me;
	struct engine *e = &me->e;
	struct psd_fetch_msg m = fetch(e, 1, 0, 3, PEERSNAP_PRIO_DEMAND);
	const uint8_t all[2] = { 0xff, 0x0f }, none[2] = { 0, 0 };
	char err[256];

	ASSERT_EQ(0, set_origin(me, &me->v2));
	/* Recorded as holding v1's chunks 0..11, but the device holds 0xee. */
	ASSERT_EQ(0, psd_store_set_cache(e->store, me->v1.sb.id, e->ld.node,
					 NULL, all, sizeof(all), err,
					 sizeof(err))) TH_LOG("%s", err);
	memcpy(m.snapshot_id, me->v2.sb.id, PSD_HASH_LEN);
	e->n_done = 0;
	e->want_done = 1;
	psd_fetch_submit(e->fetch, &m);
	ASSERT_EQ(0, e->n_done);	/* the in-place read is queued */
	ASSERT_EQ(0, psd_store_set_cache(e->store, me->v1.sb.id, e->ld.node,
					 NULL, none, sizeof(none), err,
					 sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, psd_loop_run(e->loop));
	ASSERT_EQ(1, e->n_done);
	EXPECT_EQ(0, e->done[0].status);
	EXPECT_TRUE(device_holds(me, &me->v2, 0, 3));
	EXPECT_EQ(3, me->st->in_place_stale);
	EXPECT_EQ(3, me->st->chunks_origin);
	EXPECT_EQ(0, me->st->no_source);
}

static void on_read_done(void *ctx, int status)
{
	struct mengine *me = ctx;

	me->read_status = status;
	me->reads_done++;
	psd_loop_stop(me->e.loop);
}

TEST_F(mengine, read_for_pull)
{
	struct mengine *me = &self->me;
	size_t len = (size_t)MCHUNKS * CHUNK;
	uint8_t *buf = calloc(1, len + 1), *want = calloc(1, len);
	uint64_t id;

	ASSERT_EQ(0, set_origin(me, &me->v1));
	memcpy(want, me->v1.data, MSIZE);
	ASSERT_EQ(0, psd_fetch_read(me->e.fetch, me->v1.sb.id, 0, MCHUNKS,
				    buf + 1, len, on_read_done, me, &id));
	EXPECT_EQ(0, me->reads_done);		/* never before returning */
	ASSERT_EQ(0, psd_loop_run(me->e.loop));
	ASSERT_EQ(1, me->reads_done);
	EXPECT_EQ(0, me->read_status);
	EXPECT_EQ(0, memcmp(buf + 1, want, len));	/* unaligned is fine */
	EXPECT_EQ(1, me->st->reads);
	EXPECT_TRUE(device_untouched(&me->e, 0, DEVICE_SIZE));

	/* Refused at once. */
	EXPECT_EQ(-ENOENT, psd_fetch_read(me->e.fetch, me->v1.sb.index_hashes[0],
					  0, 1, buf, len, on_read_done, me, &id));
	EXPECT_EQ(-ERANGE, psd_fetch_read(me->e.fetch, me->v1.sb.id, 11, 2,
					  buf, len, on_read_done, me, &id));
	EXPECT_EQ(-ERANGE, psd_fetch_read(me->e.fetch, me->v1.sb.id, 0, 0,
					  buf, len, on_read_done, me, &id));
	EXPECT_EQ(-ENOBUFS, psd_fetch_read(me->e.fetch, me->v1.sb.id, 0, 2,
					   buf, CHUNK, on_read_done, me, &id));

	/* A corrupt chunk fails the read; the buffer is left alone. */
	ASSERT_EQ(0, corrupt_origin(&me->v1, 4, 0x11));
	memset(buf, 0x77, len);
	ASSERT_EQ(0, psd_fetch_read(me->e.fetch, me->v1.sb.id, 3, 2, buf, len,
				    on_read_done, me, &id));
	ASSERT_EQ(0, psd_loop_run(me->e.loop));
	EXPECT_EQ(-EIO, me->read_status);
	EXPECT_EQ(0x77, buf[0]);
	EXPECT_EQ(1, me->st->reads_failed);

	/* A cancelled read never calls back. */
	ASSERT_EQ(0, psd_fetch_read(me->e.fetch, me->v1.sb.id, 0, 1, buf, len,
				    on_read_done, me, &id));
	psd_fetch_read_cancel(me->e.fetch, id);
	ASSERT_EQ(0, run_fetch(me, &me->v1, 9, 0, 1));
	EXPECT_EQ(2, me->reads_done);
	free(buf);
	free(want);
}

/* Shutdown: a read still queued is told, not dropped silently. */
TEST_F(mengine, drain_cancels_queued_reads)
{
	struct mengine *me = &self->me;
	uint8_t *buf = malloc(CHUNK);
	uint64_t id;

	ASSERT_EQ(0, set_origin(me, &me->v1));
	ASSERT_EQ(0, psd_fetch_read(me->e.fetch, me->v1.sb.id, 0, 1, buf,
				    CHUNK, on_read_done, me, &id));
	psd_fetch_drain(me->e.fetch);
	EXPECT_EQ(1, me->reads_done);
	EXPECT_EQ(-ECANCELED, me->read_status);
	EXPECT_TRUE(me->e.drained);
	EXPECT_EQ(-ESHUTDOWN, psd_fetch_read(me->e.fetch, me->v1.sb.id, 0, 1,
					     buf, CHUNK, on_read_done, me,
					     &id));
	free(buf);
}

/* Dedup: a snapshot with no origin is served from another's device. */
TEST_F(mengine, copies_from_a_recorded_cache_device)
{
	struct mengine *me = &self->me;
	struct published twin = { 0 };
	struct loopdev other;
	char err[256];
	uint32_t dev = me->e.dev;

	if (loopdev_create(&other, DEVICE_SIZE) < 0)
		SKIP(return, "no second loop device");
	ASSERT_EQ(0, set_origin(me, &me->v1));
	ASSERT_EQ(0, run_fetch(me, &me->v1, 1, 0, MCHUNKS));
	ASSERT_EQ(0, psd_store_set_cache(me->e.store, me->v1.sb.id,
					 me->e.ld.node, "a", NULL, 0, err,
					 sizeof(err)));
	/* The same bytes under another name: another id, no origin. */
	ASSERT_EQ(0, publish(me, &twin, 1, "twin"));
	/* v1's origin is gone: its record is stale, the device serves. */
	ASSERT_EQ(0, unlink(me->v1.path));
	me->e.dev = encode_dev(major(other.rdev), minor(other.rdev));
	ASSERT_EQ(0, run_fetch(me, &twin, 2, 0, MCHUNKS));
	EXPECT_EQ(10, me->st->chunks_cache);
	EXPECT_LE(1, me->st->source_errors);
	EXPECT_EQ(0, me->st->hash_mismatch);
	{
		uint8_t *buf = malloc(MCHUNKS * CHUNK);

		ASSERT_EQ(MCHUNKS * CHUNK,
			  pread(other.fd, buf, MCHUNKS * CHUNK, 0));
		EXPECT_EQ(0, memcmp(buf, me->v1.data, MSIZE));
		free(buf);
	}
	me->e.dev = dev;
	loopdev_destroy(&other);
	snapbuild_free(&twin.sb);
	free(twin.data);
}

TEST_HARNESS_MAIN
