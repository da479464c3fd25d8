// SPDX-License-Identifier: GPL-2.0
/*
 * Peer sessions (peer.h) over the deterministic simulator's lossy links
 * (sim.h): the handshake completes under 30% bursty loss for every seed
 * tried (the application asks again if a round of 18 attempts fails), and a session carrying traffic both ways through 2% loss rekeys
 * twice in 300 s without a pause: every datagram the links delivered was
 * accepted, every application packet arrived at most once and in order.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "packet.h"
#include "peer.h"
#include "sim.h"

#define SEC		1000000000ull
#define MS		1000000ull
#define OUTBOX		256
#define APP_LEN		1000
#define WALL		(1764300000ull * SEC)

struct simpeer {
	struct psd_identity id;
	struct psd_peer_node node;
	struct psd_peer peer;
	struct sockaddr_in6 addr;
	struct simpeer *other;
	uint8_t out[OUTBOX][SIM_DGRAM_MAX];
	size_t out_len[OUTBOX], head, n_out;
	uint64_t app_interval, next_app;
	uint64_t app_sent, app_received, last_seq, bad, rejected, seal_failed;
	uint64_t outbox_full;
	bool gave_up;			/* PSD_PEER_UNREACHABLE came */
	unsigned int gave_up_count;
};

static void push(struct simpeer *p, const uint8_t *d, size_t len)
{
	size_t slot;

	if (p->n_out == OUTBOX || len > SIM_DGRAM_MAX) {
		p->outbox_full++;
		return;
	}
	slot = (p->head + p->n_out++) % OUTBOX;
	memcpy(p->out[slot], d, len);
	p->out_len[slot] = len;
}

static void ops_send(void *ctx, struct psd_peer *peer, const struct sockaddr *to,
		     socklen_t to_len, const uint8_t *d, size_t len)
{
	(void)peer;
	(void)to;
	(void)to_len;
	push(ctx, d, len);
}

static void ops_event(void *ctx, struct psd_peer *peer, enum psd_peer_event ev)
{
	struct simpeer *p = ctx;

	(void)peer;
	if (ev == PSD_PEER_UNREACHABLE) {
		p->gave_up = true;
		p->gave_up_count++;
	}
}

static struct psd_peer *ops_by_static(void *ctx, const uint8_t *pub)
{
	struct simpeer *p = ctx;

	return memcmp(p->peer.noise.static_pub, pub, PSD_NOISE_KEY_LEN) ?
		       NULL : &p->peer;
}

static struct psd_peer *ops_by_cid(void *ctx, const uint8_t *cid)
{
	struct simpeer *p = ctx;

	return psd_peer_owns_cid(&p->peer, cid) ? &p->peer : NULL;
}

static const struct psd_peer_ops ops = {
	.send = ops_send, .event = ops_event,
	.by_static = ops_by_static, .by_cid = ops_by_cid,
};

static void app_send(struct simpeer *p, uint64_t now)
{
	uint8_t payload[APP_LEN], d[SIM_DGRAM_MAX];
	size_t len;

	if (!psd_peer_can_send(&p->peer, now))
		return;
	memset(payload, (int)(p->app_sent & 0xff), sizeof(payload));
	payload[0] = 0xd1;
	memcpy(payload + 1, &p->app_sent, sizeof(p->app_sent));
	if (psd_peer_seal(&p->peer, payload, sizeof(payload), d, sizeof(d),
			  &len, now)) {
		p->seal_failed++;
		return;
	}
	p->app_sent++;
	push(p, d, len);
}

static void check_app(struct simpeer *p, const uint8_t *d, size_t len)
{
	uint64_t seq;

	if (len != APP_LEN || d[0] != 0xd1)
		return;		/* a keepalive */
	memcpy(&seq, d + 1, sizeof(seq));
	/* No reordering on these links: strictly increasing, no repeats. */
	if (p->app_received && seq <= p->last_seq)
		p->bad++;
	for (size_t i = 9; i < len; i++)
		if (d[i] != (uint8_t)(seq & 0xff))
			p->bad++;
	p->last_seq = seq;
	p->app_received++;
}

static size_t node_send(void *ctx, uint8_t *buf, size_t cap, uint64_t now)
{
	struct simpeer *p = ctx;
	size_t len;

	(void)now;
	if (!p->n_out)
		return 0;
	len = p->out_len[p->head];
	if (len > cap)
		abort();
	memcpy(buf, p->out[p->head], len);
	p->head = (p->head + 1) % OUTBOX;
	p->n_out--;
	return len;
}

static void node_recv(void *ctx, const uint8_t *d, size_t len, uint64_t now)
{
	struct simpeer *p = ctx;
	uint8_t out[SIM_DGRAM_MAX];
	struct psd_peer *peer;
	size_t out_len;
	int rc;

	rc = psd_peer_node_receive(&p->node, d, len,
				   (const struct sockaddr *)&p->other->addr,
				   sizeof(p->other->addr), false, out,
				   sizeof(out), &out_len, &peer, now);
	if (rc == 1)
		check_app(p, out, out_len);
	else if (rc < 0)
		p->rejected++;
}

static uint64_t node_timeout(void *ctx, uint64_t now)
{
	struct simpeer *p = ctx;
	uint64_t t = psd_peer_next_deadline(&p->peer);

	(void)now;
	if (p->app_interval && p->next_app < t)
		t = p->next_app;
	return t;
}

static void node_on_timeout(void *ctx, uint64_t now)
{
	struct simpeer *p = ctx;

	if (psd_peer_next_deadline(&p->peer) <= now)
		psd_peer_on_timer(&p->peer, now);
	if (p->gave_up) {
		/* An application that still needs the peer asks again. */
		p->gave_up = false;
		psd_peer_connect(&p->peer, now);
	}
	if (p->app_interval && p->next_app <= now) {
		app_send(p, now);
		p->next_app = now + p->app_interval;
	}
}

static void make(struct simpeer *p, struct simpeer *other, uint8_t seed_byte,
		 uint64_t seed)
{
	uint8_t seed_bytes[PSD_SEED_LEN];

	p->other = other;
	memset(seed_bytes, seed_byte, sizeof(seed_bytes));
	psd_identity_from_seed(seed_bytes, &p->id);
	if (psd_peer_node_init(&p->node, &p->id, &ops, p, 0, WALL))
		abort();
	p->addr.sin6_family = AF_INET6;
	p->addr.sin6_addr.s6_addr[15] = seed_byte;
	p->addr.sin6_port = htons(7390);
	(void)seed;
}

struct pair {
	struct sim sim;
	struct simpeer a, b;
};

static struct pair *pair_new(uint64_t seed, const struct sim_link_cfg *link)
{
	struct pair *t = calloc(1, sizeof(*t));

	if (!t || psd_chunkhash_init())
		abort();
	make(&t->a, &t->b, 0xaa, seed);
	make(&t->b, &t->a, 0xbb, seed);
	if (psd_peer_init(&t->a.peer, &t->a.node, t->b.id.pk,
			  (struct sockaddr *)&t->b.addr, sizeof(t->b.addr),
			  seed) ||
	    psd_peer_init(&t->b.peer, &t->b.node, t->a.id.pk,
			  (struct sockaddr *)&t->a.addr, sizeof(t->a.addr),
			  seed + 1) ||
	    sim_init(&t->sim, seed, link, link))
		abort();
	t->sim.now = 1000 * SEC;
	t->sim.node[0] = (struct sim_node){ .send = node_send,
		.recv = node_recv, .timeout = node_timeout,
		.on_timeout = node_on_timeout, .ctx = &t->a };
	t->sim.node[1] = (struct sim_node){ .send = node_send,
		.recv = node_recv, .timeout = node_timeout,
		.on_timeout = node_on_timeout, .ctx = &t->b };
	return t;
}

static void pair_free(struct pair *t)
{
	sim_free(&t->sim);
	psd_peer_free(&t->a.peer);
	psd_peer_free(&t->b.peer);
	psd_peer_node_free(&t->a.node);
	psd_peer_node_free(&t->b.node);
	free(t);
}

/* Both ends seal, with mirrored keys. */
static bool established(void *ctx, uint64_t now)
{
	struct pair *t = ctx;
	const struct psd_keypair *a = &t->a.peer.current, *b = &t->b.peer.current;

	return psd_peer_can_send(&t->a.peer, now) &&
	       psd_peer_can_send(&t->b.peer, now) &&
	       !memcmp(a->keys.send.key, b->keys.recv.key, PSD_AEAD_KEY_LEN) &&
	       !memcmp(a->keys.local_cid, b->keys.remote_cid, PSD_CID_LEN);
}

static bool never(void *ctx, uint64_t now)
{
	(void)ctx;
	(void)now;
	return false;
}

TEST(handshake_under_30pct_bursty_loss)
{
	/* Gilbert-Elliott: bad 30% of the time, everything lost when bad. */
	struct sim_link_cfg link = { .delay = 20 * MS, .ge_p_bg = 0.3,
				     .ge_p_gb = 0.3 * 0.3 / 0.7,
				     .ge_loss_bad = 1.0 };
	uint64_t worst = 0, lost = 0, gave_up = 0;

	for (uint64_t seed = 1; seed <= 20; seed++) {
		struct pair *t = pair_new(seed, &link);
		uint64_t t0 = t->sim.now;

		t->a.app_interval = 100 * MS;	/* confirms B's keys */
		t->a.next_app = t0;
		psd_peer_connect(&t->a.peer, t0);
		ASSERT_EQ(0, sim_run(&t->sim, t0 + 300 * SEC, established, t))
			TH_LOG("seed %llu", (unsigned long long)seed);
		gave_up += t->a.gave_up_count;
		if (t->sim.now - t0 > worst)
			worst = t->sim.now - t0;
		lost += t->sim.link[0].st.lost + t->sim.link[1].st.lost;
		EXPECT_EQ(0, t->a.bad + t->b.bad);
		pair_free(t);
	}
	TH_LOG("20 seeds: slowest handshake %llu ms, %llu datagrams lost, "
	       "%llu rounds given up", (unsigned long long)(worst / MS),
	       (unsigned long long)lost, (unsigned long long)gave_up);
	EXPECT_GT(lost, 0);
}

TEST(rekeys_under_2pct_loss_without_a_pause)
{
	struct sim_link_cfg link = { .delay = 25 * MS, .loss = 0.02,
				     .rate_bps = 100000000 };
	struct pair *t = pair_new(7, &link);
	uint64_t t0 = t->sim.now, delivered;

	psd_peer_connect(&t->a.peer, t0);
	ASSERT_EQ(0, sim_run(&t->sim, t0 + 60 * SEC, established, t));
	t->a.app_interval = t->b.app_interval = 10 * MS;
	t->a.next_app = t->b.next_app = t->sim.now;
	EXPECT_EQ(-ETIMEDOUT, sim_run(&t->sim, t0 + 300 * SEC, never, t));
	t->a.app_interval = t->b.app_interval = 0;	/* let the links drain */
	EXPECT_EQ(-ETIMEDOUT, sim_run(&t->sim, t->sim.now + SEC, never, t));

	EXPECT_GE(t->a.peer.stats.sessions, 3);
	EXPECT_EQ(t->a.peer.stats.sessions, t->b.peer.stats.sessions);
	EXPECT_TRUE(established(t, t->sim.now));
	/* Sealing never had to wait for keys. */
	EXPECT_EQ(0, t->a.seal_failed + t->b.seal_failed);
	EXPECT_GE(t->a.app_sent, 29000);
	/* Every delivered datagram was accepted: none under a stale key. */
	EXPECT_EQ(0, t->a.rejected + t->b.rejected);
	EXPECT_EQ(0, t->a.bad + t->b.bad);
	EXPECT_EQ(0, t->a.outbox_full + t->b.outbox_full);
	/* What the link lost is the only loss. */
	delivered = t->b.app_received;
	EXPECT_GT(t->sim.link[0].st.lost, 0);
	EXPECT_GE(delivered + t->sim.link[0].st.lost, t->a.app_sent);
	EXPECT_GE(delivered, t->a.app_sent * 95 / 100);
	pair_free(t);
}

TEST_HARNESS_MAIN
