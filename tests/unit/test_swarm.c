// SPDX-License-Identifier: GPL-2.0
/*
 * The transport endpoint (swarm.h) over real loopback UDP: two (or three)
 * swarms in one process share one io_uring loop, each with an identity of
 * its own, configured as each other's peers. A ticks-driven loop runs the
 * swarms' timers. Checked: the handshake and 20 chunks of 256 KiB fetched
 * by hash, every byte compared; NOT_FOUND for an unknown hash; the
 * serving swarm freed and recreated mid-transfer, after which every
 * pending request completes over the new session (with the default 25 s
 * idle timeout: within a few seconds, by the silence rule); a requester
 * restarted while the server holds its old connection is served at once;
 * a request for any peer that one peer does not hold is asked at the
 * next, and fails only once each was asked; a key that is not
 * configured never gets a session; no packet number is sealed twice
 * under one key; chunks of the scavenger class are served under the
 * serving connection's LEDBAT window, demand chunks never.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "swarm.h"

#define CHUNK		(256u << 10)
#define N_CHUNKS	20
#define TICK_NS		(1000 * 1000)

struct result {
	bool done;
	int err;
	uint64_t bad_bytes;
};

struct env {
	struct psd_loop *loop;
	struct psd_swarm *a, *b, *c;
	struct psd_identity ida, idb, idc;
	uint16_t b_port;
	int fd;
	uint8_t *data;
	uint8_t hashes[N_CHUNKS][PSD_HASH_LEN];
	struct result res[N_CHUNKS + 2];
	unsigned int n_done;
	unsigned int want;		/* stop once this many are done */
	unsigned int restart_at;	/* 0: never; else when n_done reaches it */
	unsigned int restarts;
	uint64_t stop_at;		/* ns: give up (or end a timed run) */
	uint64_t restarted_ns;		/* when B went */
	uint64_t all_done_ns;		/* when want were done */
	bool default_timers;		/* conn.h's idle, keepalive */
	bool timed_out;
	uint16_t gen;
	struct __kernel_timespec ts;
};

struct req_ctx {
	struct env *e;
	unsigned int i;
};

static struct req_ctx ctxs[N_CHUNKS + 2];

static int lookup(void *vctx, const uint8_t hash[PSD_OBJECT_ID_LEN],
		  struct psd_swarm_extent *ret)
{
	struct env *e = vctx;

	for (unsigned int i = 0; i < N_CHUNKS; i++)
		if (!memcmp(e->hashes[i], hash, PSD_HASH_LEN)) {
			*ret = (struct psd_swarm_extent){
				.fd = e->fd, .offset = (uint64_t)i * CHUNK,
				.len = CHUNK };
			return 0;
		}
	return -ENOENT;
}

static void on_done(void *vctx, int err, const uint8_t *bytes, size_t len)
{
	struct req_ctx *rc = vctx;
	struct env *e = rc->e;
	struct result *r = &e->res[rc->i];

	r->done = true;
	r->err = err;
	if (!err && rc->i < N_CHUNKS) {
		if (len != CHUNK)
			r->bad_bytes = CHUNK;
		else
			for (size_t j = 0; j < len; j++)
				if (bytes[j] != e->data[(size_t)rc->i * CHUNK + j])
					r->bad_bytes++;
	}
	if (++e->n_done == e->want)
		e->all_done_ns = psd_swarm_now();
}

static int new_swarm(struct env *e, const struct psd_identity *id,
		     uint16_t port, bool serves, struct psd_swarm **ret)
{
	struct psd_swarm_config cfg = {
		.loop = e->loop, .id = id, .listen = "::1", .port = port,
		.seed = 42 + port,
		.idle_timeout = e->default_timers ? 0 : PSD_NSEC,
		.keepalive = e->default_timers ? 0 : PSD_NSEC / 4,
		.lookup = serves ? lookup : NULL, .lookup_ctx = e,
	};
	char err[256];
	int r = psd_swarm_new(&cfg, ret, err, sizeof(err));

	if (r && r != -EADDRINUSE)	/* restart_b() retries that */
		fprintf(stderr, "# swarm: %s\n", err);
	return r;
}

static int add(struct psd_swarm *sw, const struct psd_identity *peer,
	       struct psd_swarm *at)
{
	struct sockaddr_in6 a;
	int r = psd_swarm_local(at, &a);

	return r ? r : psd_swarm_add_peer(sw, peer->pk,
					  (struct sockaddr *)&a, sizeof(a));
}

/*
 * The serving swarm goes away and comes back on its port. The old
 * socket's port is free only once the kernel dropped its last reference
 * (deferred), so binding is retried on the next ticks.
 */
static void restart_b(struct env *e)
{
	if (e->b) {
		psd_swarm_free(e->b);
		e->b = NULL;
		e->restarts++;
		e->restarted_ns = psd_swarm_now();
	}
	if (new_swarm(e, &e->idb, e->b_port, true, &e->b))
		return;
	if (add(e->b, &e->ida, e->a)) {
		e->timed_out = true;	/* fails the test's checks */
		psd_loop_stop(e->loop);
	}
}

static void arm_tick(struct env *e)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(e->loop);

	if (!sqe)
		return;
	e->ts = (struct __kernel_timespec){ .tv_nsec = TICK_NS };
	io_uring_prep_timeout(sqe, &e->ts, 0, 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_TIMER, .gen = e->gen });
}

static void tick_swarm(struct psd_swarm *sw, uint64_t now)
{
	if (sw && psd_swarm_next_deadline(sw) <= now)
		psd_swarm_on_timer(sw);
}

static void on_tick(void *vctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct env *e = vctx;
	uint64_t now = psd_swarm_now();

	(void)res;
	(void)flags;
	if (ud.gen != e->gen)
		return;		/* a finished run's tick */
	tick_swarm(e->a, now);
	tick_swarm(e->b, now);
	tick_swarm(e->c, now);
	if (e->restart_at && e->n_done >= e->restart_at &&
	    (!e->restarts || !e->b))
		restart_b(e);
	if (e->n_done >= e->want) {
		psd_loop_stop(e->loop);
		return;
	}
	if (now >= e->stop_at) {
		e->timed_out = true;
		psd_loop_stop(e->loop);
		return;
	}
	arm_tick(e);
}

/* Runs until want requests are done or seconds passed. */
static int run(struct env *e, unsigned int want, double seconds)
{
	e->want = want;
	e->timed_out = false;
	e->stop_at = psd_swarm_now() + (uint64_t)(seconds * PSD_NSEC);
	e->gen++;
	arm_tick(e);
	return psd_loop_run(e->loop);
}

static int setup_timers(struct env *e, bool default_timers)
{
	int r;

	memset(e, 0, sizeof(*e));
	e->default_timers = default_timers;
	if (psd_chunkhash_init())
		return -EIO;
	psd_identity_generate(&e->ida);
	psd_identity_generate(&e->idb);
	psd_identity_generate(&e->idc);
	e->fd = memfd_create("chunks", 0);
	if (e->fd < 0)
		return -errno;
	e->data = malloc((size_t)N_CHUNKS * CHUNK);
	if (!e->data)
		return -ENOMEM;
	randombytes_buf(e->data, (size_t)N_CHUNKS * CHUNK);
	if (pwrite(e->fd, e->data, (size_t)N_CHUNKS * CHUNK, 0) !=
	    (ssize_t)N_CHUNKS * CHUNK)
		return -EIO;
	for (unsigned int i = 0; i < N_CHUNKS; i++)
		psd_chunkhash(e->data + (size_t)i * CHUNK, CHUNK, e->hashes[i]);
	r = psd_loop_init(&e->loop, 256);
	if (r)
		return r;
	psd_loop_set_handler(e->loop, PSD_OP_TIMER, on_tick, e);
	r = new_swarm(e, &e->ida, 0, false, &e->a);
	if (!r)
		r = new_swarm(e, &e->idb, 0, true, &e->b);
	if (r)
		return r;
	{
		struct sockaddr_in6 bl;

		r = psd_swarm_local(e->b, &bl);
		e->b_port = ntohs(bl.sin6_port);
	}
	if (!r)
		r = add(e->a, &e->idb, e->b);
	if (!r)
		r = add(e->b, &e->ida, e->a);
	return r;
}

static int setup(struct env *e)
{
	return setup_timers(e, false);
}

static void teardown(struct env *e)
{
	psd_swarm_free(e->a);
	psd_swarm_free(e->b);
	psd_swarm_free(e->c);
	psd_loop_quiesce(e->loop, 2000);
	psd_loop_uninit(e->loop);
	if (e->fd >= 0)
		close(e->fd);
	free(e->data);
}

static int request_class(struct env *e, struct psd_swarm *sw,
			 const uint8_t *key, unsigned int i,
			 const uint8_t hash[PSD_HASH_LEN],
			 enum psd_swarm_class cls)
{
	ctxs[i] = (struct req_ctx){ .e = e, .i = i };
	return psd_swarm_request(sw, key, hash, CHUNK, cls, on_done, &ctxs[i]);
}

static int request(struct env *e, struct psd_swarm *sw, const uint8_t *key,
		   unsigned int i, const uint8_t hash[PSD_HASH_LEN])
{
	return request_class(e, sw, key, i, hash, PSD_SWARM_DEMAND);
}

static uint64_t total_bad(const struct env *e)
{
	uint64_t bad = 0;

	for (unsigned int i = 0; i < N_CHUNKS; i++)
		bad += e->res[i].bad_bytes + !e->res[i].done +
		       (e->res[i].err != 0);
	return bad;
}

TEST(twenty_chunks_by_hash_and_not_found)
{
	static struct env e;
	uint8_t unknown[PSD_HASH_LEN];
	struct psd_peer *pb;
	uint64_t sent;

	ASSERT_EQ(0, setup(&e));
	for (unsigned int i = 0; i < N_CHUNKS; i++)
		ASSERT_EQ(0, request(&e, e.a, e.idb.pk, i, e.hashes[i]));
	memset(unknown, 0xab, sizeof(unknown));
	ASSERT_EQ(0, request(&e, e.a, NULL, N_CHUNKS, unknown));
	ASSERT_EQ(0, run(&e, N_CHUNKS + 1, 20));
	EXPECT_FALSE(e.timed_out);
	EXPECT_EQ(0, total_bad(&e));
	EXPECT_TRUE(e.res[N_CHUNKS].done);
	EXPECT_EQ(-ENOENT, e.res[N_CHUNKS].err);
	EXPECT_EQ(1, psd_swarm_stats(e.a)->conns_opened);
	EXPECT_EQ(0, psd_swarm_stats(e.a)->conns_closed);
	EXPECT_EQ(N_CHUNKS, psd_swarm_stats(e.b)->served);
	EXPECT_EQ(1, psd_swarm_stats(e.b)->not_found_sent);

	/*
	 * Nonce uniqueness: every packet the connection sent went through
	 * the session's floor (its last number + 1 is the key's count), and
	 * a number already sealed under the key is refused.
	 */
	pb = psd_peers_by_key(psd_swarm_peers(e.a), e.idb.pk);
	ASSERT_NE(NULL, pb);
	sent = pb->current.usage.sent;
	EXPECT_EQ(psd_conn_stats(psd_swarm_conn(e.a, e.idb.pk))->last_pn + 1,
		  sent);
	{
		uint8_t p[64] = { 1 }, out[256];
		size_t n;
		uint64_t now = psd_swarm_now();

		EXPECT_EQ(-EALREADY, psd_peer_seal_pn(pb, 0, 0, false, p,
						      sizeof(p), out,
						      sizeof(out), &n, now));
		EXPECT_EQ(-EALREADY, psd_peer_seal_pn(pb, sent - 1, 0, false,
						      p, sizeof(p), out,
						      sizeof(out), &n, now));
		EXPECT_EQ(sent, pb->current.usage.sent);
	}
	teardown(&e);
}

/*
 * The scavenger class end to end: chunks asked for as hydration travel as
 * background requests, and the serving side sends them under its LEDBAT
 * window (conn.h, "The scavenger limit"); demand chunks after them are
 * served by the full controller only.
 */
TEST(scavenger_class_served_under_the_scavenger_limit)
{
	static struct env e;
	const struct psd_conn_stats *served, *asked;
	uint64_t after_background;
	unsigned int i, half = N_CHUNKS / 2;

	ASSERT_EQ(0, setup(&e));
	for (i = 0; i < half; i++)
		ASSERT_EQ(0, request_class(&e, e.a, e.idb.pk, i, e.hashes[i],
					   PSD_SWARM_SCAVENGER));
	ASSERT_EQ(0, run(&e, half, 20));
	EXPECT_FALSE(e.timed_out);
	served = psd_conn_stats(psd_swarm_conn(e.b, e.ida.pk));
	asked = psd_conn_stats(psd_swarm_conn(e.a, e.idb.pk));
	after_background = served->tx_scavenger;
	TH_LOG("background: %llu of %llu packets under the limit",
	       (unsigned long long)after_background,
	       (unsigned long long)served->tx_packets);
	/* 10 x 256 KiB is over 2000 packets of DATA. */
	EXPECT_GE(after_background, half * CHUNK / 1500);
	EXPECT_EQ(0, asked->tx_scavenger);	/* it served nothing */
	for (; i < N_CHUNKS; i++)
		ASSERT_EQ(0, request(&e, e.a, e.idb.pk, i, e.hashes[i]));
	ASSERT_EQ(0, run(&e, N_CHUNKS, 20));
	EXPECT_FALSE(e.timed_out);
	EXPECT_EQ(0, total_bad(&e));
	EXPECT_EQ(N_CHUNKS, psd_swarm_stats(e.b)->served);
	EXPECT_EQ(0, psd_swarm_stats(e.a)->conns_closed);
	served = psd_conn_stats(psd_swarm_conn(e.b, e.ida.pk));
	EXPECT_EQ(after_background, served->tx_scavenger);
	teardown(&e);
}

/* A asks B for every chunk; B is freed and made again once 5 are done:
 * every chunk arrives, exact, within limit_s seconds. */
static void run_across_restart(struct __test_metadata *_metadata,
			       struct env *e, unsigned int limit_s)
{
	e->restart_at = 5;
	for (unsigned int i = 0; i < N_CHUNKS; i++)
		ASSERT_EQ(0, request(e, e->a, e->idb.pk, i, e->hashes[i]));
	ASSERT_EQ(0, run(e, N_CHUNKS, limit_s));
	EXPECT_FALSE(e->timed_out);
	EXPECT_EQ(1, e->restarts);
	EXPECT_EQ(0, total_bad(e));
}

TEST(server_restart_mid_transfer)
{
	static struct env e;

	ASSERT_EQ(0, setup(&e));
	run_across_restart(_metadata, &e, 30);
	/* The old connection ended and a second one carried the rest. */
	EXPECT_EQ(2, psd_swarm_stats(e.a)->conns_opened);
	EXPECT_EQ(1, psd_swarm_stats(e.a)->conns_closed);
	EXPECT_LT(0, psd_swarm_stats(e.a)->requests_retried);
	EXPECT_LT(0, psd_swarm_stats(e.b)->served);
	teardown(&e);
}

/*
 * The same with conn.h's default timers: the requester must not wait for
 * its 25 s idle timeout. It hears nothing for four PTOs (at least 2 s),
 * handshakes again at once and moves the requests to a new connection.
 */
TEST(server_restart_recovers_before_the_idle_timeout)
{
	static struct env e;
	const struct psd_swarm_stats *sa;

	ASSERT_EQ(0, setup_timers(&e, true));
	run_across_restart(_metadata, &e, 20);
	ASSERT_NE(0, e.all_done_ns);
	TH_LOG("done %llu ms after the restart", (unsigned long long)
	       ((e.all_done_ns - e.restarted_ns) / PSD_MSEC));
	EXPECT_LT(e.all_done_ns - e.restarted_ns, 8 * PSD_NSEC);
	sa = psd_swarm_stats(e.a);
	EXPECT_EQ(1, sa->sessions_renewed);
	EXPECT_EQ(2, sa->conns_opened);
	EXPECT_EQ(1, sa->conns_closed);
	EXPECT_LT(0, sa->requests_retried);
	EXPECT_EQ(1, psd_swarm_stats(e.b)->conns_opened);
	teardown(&e);
}

/*
 * The requester restarts (on another port) while the server holds the
 * old connection: the server answers the new handshake, sees from the
 * first packet under the new keys that the requester numbers from
 * scratch, and serves it over a new connection at once.
 */
TEST(requester_restart_is_served_at_once)
{
	static struct env e;
	const struct psd_swarm_stats *sb;
	uint64_t t0;

	ASSERT_EQ(0, setup_timers(&e, true));
	for (unsigned int i = 0; i < 5; i++)
		ASSERT_EQ(0, request(&e, e.a, e.idb.pk, i, e.hashes[i]));
	ASSERT_EQ(0, run(&e, 5, 10));
	ASSERT_FALSE(e.timed_out);
	ASSERT_NE(NULL, psd_swarm_conn(e.b, e.ida.pk));

	psd_swarm_free(e.a);
	ASSERT_EQ(0, new_swarm(&e, &e.ida, 0, false, &e.a));
	ASSERT_EQ(0, add(e.a, &e.idb, e.b));
	t0 = psd_swarm_now();
	for (unsigned int i = 5; i < N_CHUNKS; i++)
		ASSERT_EQ(0, request(&e, e.a, e.idb.pk, i, e.hashes[i]));
	ASSERT_EQ(0, run(&e, N_CHUNKS, 20));
	EXPECT_FALSE(e.timed_out);
	EXPECT_EQ(0, total_bad(&e));
	ASSERT_NE(0, e.all_done_ns);
	TH_LOG("served %llu ms after the restart", (unsigned long long)
	       ((e.all_done_ns - t0) / PSD_MSEC));
	EXPECT_LT(e.all_done_ns - t0, 5 * PSD_NSEC);
	sb = psd_swarm_stats(e.b);
	EXPECT_EQ(2, sb->conns_opened);
	EXPECT_EQ(1, sb->conns_closed);
	EXPECT_EQ(N_CHUNKS, sb->served);
	EXPECT_EQ(1, psd_swarm_stats(e.a)->conns_opened);
	EXPECT_EQ(0, psd_swarm_stats(e.a)->sessions_renewed);
	teardown(&e);
}

/*
 * Three swarms: A asks for "any" peer; C holds nothing, B holds the
 * chunks. With only C's connection open, C answers NOT_FOUND, and the
 * request goes on to B (a handshake first). A hash nobody holds is asked
 * at each peer once and then fails with -ENOENT.
 */
TEST(not_found_at_one_peer_is_asked_at_another)
{
	static struct env e;
	uint8_t unknown[PSD_HASH_LEN];
	const struct psd_swarm_stats *sa, *sb, *sc;

	ASSERT_EQ(0, setup(&e));
	ASSERT_EQ(0, new_swarm(&e, &e.idc, 0, false, &e.c));
	ASSERT_EQ(0, add(e.a, &e.idc, e.c));
	ASSERT_EQ(0, add(e.c, &e.ida, e.a));
	memset(unknown, 0xcd, sizeof(unknown));
	/* Opens A-C only: a pinned request C cannot answer. */
	ASSERT_EQ(0, request(&e, e.a, e.idc.pk, N_CHUNKS, unknown));
	ASSERT_EQ(0, run(&e, 1, 10));
	ASSERT_EQ(-ENOENT, e.res[N_CHUNKS].err);
	ASSERT_EQ(NULL, psd_swarm_conn(e.a, e.idb.pk));

	ASSERT_EQ(0, request(&e, e.a, NULL, 0, e.hashes[0]));
	ASSERT_EQ(0, run(&e, 2, 10));
	EXPECT_FALSE(e.timed_out);
	EXPECT_TRUE(e.res[0].done);
	EXPECT_EQ(0, e.res[0].err);
	EXPECT_EQ(0, e.res[0].bad_bytes);
	sa = psd_swarm_stats(e.a);
	sb = psd_swarm_stats(e.b);
	sc = psd_swarm_stats(e.c);
	EXPECT_EQ(2, sc->not_found_sent);
	EXPECT_EQ(0, sc->served);
	EXPECT_EQ(1, sb->served);
	EXPECT_EQ(1, sa->requests_rerouted);

	/* Both open now; neither holds it: each is asked once. */
	ASSERT_EQ(0, request(&e, e.a, NULL, N_CHUNKS + 1, unknown));
	ASSERT_EQ(0, run(&e, 3, 10));
	EXPECT_FALSE(e.timed_out);
	EXPECT_TRUE(e.res[N_CHUNKS + 1].done);
	EXPECT_EQ(-ENOENT, e.res[N_CHUNKS + 1].err);
	EXPECT_EQ(1, sb->not_found_sent);
	EXPECT_EQ(3, sc->not_found_sent);
	EXPECT_EQ(2, sa->requests_rerouted);
	EXPECT_EQ(1, sa->requests_done);
	EXPECT_EQ(2, sa->requests_failed);
	teardown(&e);
}

TEST(unconfigured_key_gets_no_session)
{
	static struct env e;
	struct psd_peer *pc;

	ASSERT_EQ(0, setup(&e));
	/* C knows B; B does not know C. */
	ASSERT_EQ(0, new_swarm(&e, &e.idc, 0, false, &e.c));
	ASSERT_EQ(0, add(e.c, &e.idb, e.b));
	ASSERT_EQ(0, request(&e, e.c, e.idb.pk, 0, e.hashes[0]));
	ASSERT_EQ(0, run(&e, 1, 1.0));
	EXPECT_TRUE(e.timed_out);
	EXPECT_FALSE(e.res[0].done);
	EXPECT_LT(0, psd_swarm_peers(e.b)->node.stats.handshake_refused);
	pc = psd_peers_by_key(psd_swarm_peers(e.c), e.idb.pk);
	ASSERT_NE(NULL, pc);
	EXPECT_FALSE(pc->current.live);
	EXPECT_EQ(NULL, psd_swarm_conn(e.c, e.idb.pk));
	EXPECT_EQ(0, psd_swarm_stats(e.b)->conns_opened);
	EXPECT_EQ(0, psd_swarm_stats(e.b)->served);
	/* Freeing C ends its request cleanly. */
	psd_swarm_free(e.c);
	e.c = NULL;
	EXPECT_TRUE(e.res[0].done);
	EXPECT_EQ(-ECANCELED, e.res[0].err);
	teardown(&e);
}

TEST_HARNESS_MAIN
