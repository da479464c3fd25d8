// SPDX-License-Identifier: GPL-2.0
/*
 * Peer sessions and timers (peer.h): two nodes, A and B, wired back to
 * back through an in-test queue with a fixed one-way delay and a virtual
 * clock. The loop jumps the clock to the next delivery, the next peer
 * deadline or the next application send, whichever comes first, so every
 * timer fires exactly when the peer asked. A drop filter loses chosen
 * datagrams. Application data carries a sequence number and a pattern
 * that the receiver checks byte by byte.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "packet.h"
#include "peer.h"

#define SEC		1000000000ull
#define MS		1000000ull
#define DELAY		(10 * MS)	/* one way */
#define QUEUE_MAX	4096
#define DGRAM_MAX	1300
#define APP_LEN		1100
#define APP_MARK	0xd1
#define WALL_OFFSET	(1764300000ull * SEC)

struct net;

struct qdgram {
	uint64_t at;
	int to;
	size_t len;
	uint8_t d[DGRAM_MAX];
};

struct side {
	struct net *net;
	int idx;
	struct psd_identity id;
	struct psd_peer_node node;
	struct psd_peer peer;
	struct sockaddr_in addr;
	bool under_load;
	unsigned int events[3];
	uint64_t event_at[3];
	uint64_t app_sent, app_received, app_bad, keepalives_rx;
	uint64_t seal_failed;
	uint64_t last_data_sent_at, max_data_gap;
	unsigned int initiations_seen;	/* datagrams of type 1 it sent */
};

struct net {
	uint64_t now;
	struct side s[2];
	struct qdgram *q;
	size_t n_q;
	/* Drop datagrams from side `from`; NULL keeps everything. */
	bool (*drop)(struct net *n, int from, const uint8_t *d, size_t len);
	int dropped_initiations;
	uint64_t app_interval;		/* 0: no application traffic */
	uint64_t next_app;
	int rc_count[2][8];		/* receive results by kind */
};

static void q_push(struct net *n, int to, const uint8_t *d, size_t len)
{
	struct qdgram *q;

	if (n->n_q == QUEUE_MAX || len > DGRAM_MAX)
		abort();
	q = &n->q[n->n_q++];
	q->at = n->now + DELAY;
	q->to = to;
	q->len = len;
	memcpy(q->d, d, len);
}

static void cb_send(void *ctx, struct psd_peer *peer, const struct sockaddr *to,
		    socklen_t to_len, const uint8_t *d, size_t len)
{
	struct side *s = ctx;
	struct net *n = s->net;

	(void)peer;
	(void)to;
	(void)to_len;
	if (d[0] == PSD_MSG_INITIATION)
		s->initiations_seen++;
	if (d[0] >> 2 == PSD_PKT_TYPE_DATA) {
		if (s->last_data_sent_at &&
		    n->now - s->last_data_sent_at > s->max_data_gap)
			s->max_data_gap = n->now - s->last_data_sent_at;
		s->last_data_sent_at = n->now;
	}
	if (n->drop && n->drop(n, s->idx, d, len))
		return;
	q_push(n, 1 - s->idx, d, len);
}

static void cb_event(void *ctx, struct psd_peer *peer, enum psd_peer_event ev)
{
	struct side *s = ctx;

	(void)peer;
	s->events[ev]++;
	s->event_at[ev] = s->net->now;
}

static struct psd_peer *cb_by_static(void *ctx, const uint8_t *pub)
{
	struct side *s = ctx;

	if (s->peer.node &&
	    !memcmp(s->peer.noise.static_pub, pub, PSD_NOISE_KEY_LEN))
		return &s->peer;
	return NULL;
}

static struct psd_peer *cb_by_cid(void *ctx, const uint8_t *cid)
{
	struct side *s = ctx;

	return s->peer.node && psd_peer_owns_cid(&s->peer, cid) ? &s->peer
								  : NULL;
}

static const struct psd_peer_ops ops = {
	.send = cb_send,
	.event = cb_event,
	.by_static = cb_by_static,
	.by_cid = cb_by_cid,
};

static void make_side(struct net *n, int idx, uint8_t seed_byte)
{
	struct side *s = &n->s[idx];
	uint8_t seed[PSD_SEED_LEN];

	s->net = n;
	s->idx = idx;
	memset(seed, seed_byte, sizeof(seed));
	psd_identity_from_seed(seed, &s->id);
	if (psd_peer_node_init(&s->node, &s->id, &ops, s, 0, WALL_OFFSET))
		abort();
	s->addr.sin_family = AF_INET;
	s->addr.sin_addr.s_addr = htonl(0x0a000001 + idx);
	s->addr.sin_port = htons(7390);
}

static void link_sides(struct net *n)
{
	for (int i = 0; i < 2; i++) {
		struct side *s = &n->s[i], *o = &n->s[1 - i];

		if (psd_peer_init(&s->peer, &s->node, o->id.pk,
				  (const struct sockaddr *)&o->addr,
				  sizeof(o->addr), 100 + i))
			abort();
	}
}

static struct net *net_new(void)
{
	struct net *n = calloc(1, sizeof(*n));

	if (!n || psd_chunkhash_init())
		abort();
	n->q = calloc(QUEUE_MAX, sizeof(*n->q));
	if (!n->q)
		abort();
	n->now = 1000 * SEC;
	make_side(n, 0, 0xaa);
	make_side(n, 1, 0xbb);
	link_sides(n);
	return n;
}

static void net_free(struct net *n)
{
	for (int i = 0; i < 2; i++) {
		psd_peer_free(&n->s[i].peer);
		psd_peer_node_free(&n->s[i].node);
		psd_identity_wipe(&n->s[i].id);
	}
	free(n->q);
	free(n);
}

static int rc_kind(int rc)
{
	switch (rc) {
	case 1: return 0;
	case 0: return 1;
	case -ENOKEY: return 2;
	case -EKEYEXPIRED: return 3;
	case -EALREADY: return 4;
	case -EBUSY: return 5;
	case -EACCES: return 6;
	default: return 7;
	}
}

static void check_app(struct side *s, const uint8_t *p, size_t len)
{
	uint64_t seq;

	if (len == PSD_DGRAM_MIN - 1 - PSD_PKT_CID_LEN - 1 - PSD_AEAD_TAG_LEN ||
	    (len > 0 && p[0] == 0)) {
		for (size_t i = 0; i < len; i++)
			if (p[i])
				s->app_bad++;
		s->keepalives_rx++;
		return;
	}
	if (len != APP_LEN || p[0] != APP_MARK) {
		s->app_bad++;
		return;
	}
	memcpy(&seq, p + 1, sizeof(seq));
	if (seq != s->app_received)
		s->app_bad++;
	for (size_t i = 9; i < len; i++)
		if (p[i] != (uint8_t)(seq * 7 + i))
			s->app_bad++;
	s->app_received++;
}

/* Delivers one datagram; returns the receive result. */
static int deliver(struct net *n, const uint8_t *d, size_t len, int to)
{
	struct side *s = &n->s[to], *from = &n->s[1 - to];
	uint8_t out[DGRAM_MAX];
	struct psd_peer *peer = NULL;
	size_t out_len = 0;
	int rc;

	rc = psd_peer_node_receive(&s->node, d, len,
				   (const struct sockaddr *)&from->addr,
				   sizeof(from->addr), s->under_load, out,
				   sizeof(out), &out_len, &peer, n->now);
	n->rc_count[to][rc_kind(rc)]++;
	if (rc == 1) {
		if (peer != &s->peer)
			abort();
		check_app(s, out, out_len);
	}
	return rc;
}

static void app_send(struct net *n, struct side *s)
{
	uint8_t p[APP_LEN], d[DGRAM_MAX];
	uint64_t seq = s->app_sent;
	size_t len;

	if (!psd_peer_can_send(&s->peer, n->now))
		return;
	p[0] = APP_MARK;
	memcpy(p + 1, &seq, sizeof(seq));
	for (size_t i = 9; i < sizeof(p); i++)
		p[i] = (uint8_t)(seq * 7 + i);
	if (psd_peer_seal(&s->peer, p, sizeof(p), d, sizeof(d), &len,
			  n->now)) {
		s->seal_failed++;
		return;
	}
	s->app_sent++;
	cb_send(s, &s->peer, NULL, 0, d, len);
}

static uint64_t next_event(struct net *n)
{
	uint64_t t = UINT64_MAX;

	for (size_t i = 0; i < n->n_q; i++)
		if (n->q[i].at < t)
			t = n->q[i].at;
	for (int i = 0; i < 2; i++) {
		uint64_t d = psd_peer_next_deadline(&n->s[i].peer);

		if (d < t)
			t = d;
	}
	if (n->app_interval && n->next_app < t)
		t = n->next_app;
	return t;
}

/* Runs the network until `until` (absolute); bounded in steps. */
static void run_until(struct net *n, uint64_t until)
{
	for (unsigned long steps = 0; steps < 10000000; steps++) {
		uint64_t t = next_event(n);

		if (t > until) {
			n->now = until;
			return;
		}
		if (t > n->now)
			n->now = t;
		for (size_t i = 0; i < n->n_q;) {
			if (n->q[i].at > n->now) {
				i++;
				continue;
			}
			struct qdgram q = n->q[i];

			memmove(&n->q[i], &n->q[i + 1],
				(n->n_q - i - 1) * sizeof(*n->q));
			n->n_q--;
			deliver(n, q.d, q.len, q.to);
		}
		for (int i = 0; i < 2; i++)
			if (psd_peer_next_deadline(&n->s[i].peer) <= n->now)
				psd_peer_on_timer(&n->s[i].peer, n->now);
		if (n->app_interval && n->next_app <= n->now) {
			app_send(n, &n->s[0]);
			app_send(n, &n->s[1]);
			n->next_app = n->now + n->app_interval;
		}
	}
	abort();	/* no progress: a deadline that never moves */
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static bool session_wiped(const struct psd_peer *p)
{
	return all_zero(&p->hs, sizeof(p->hs)) &&
	       all_zero(&p->current, sizeof(p->current)) &&
	       all_zero(&p->previous, sizeof(p->previous)) &&
	       all_zero(&p->next, sizeof(p->next));
}

static bool same_key(const struct psd_aead_key *x, const struct psd_aead_key *y)
{
	return x->alg == y->alg && !memcmp(x->key, y->key, PSD_AEAD_KEY_LEN);
}

/* A's current keys are B's current keys, mirrored. */
static bool sessions_match(const struct net *n)
{
	const struct psd_keypair *a = &n->s[0].peer.current;
	const struct psd_keypair *b = &n->s[1].peer.current;

	return a->live && b->live && same_key(&a->keys.send, &b->keys.recv) &&
	       same_key(&a->keys.recv, &b->keys.send) &&
	       !memcmp(a->keys.local_cid, b->keys.remote_cid, PSD_CID_LEN) &&
	       !memcmp(a->keys.remote_cid, b->keys.local_cid, PSD_CID_LEN);
}

TEST(handshake_then_data_both_ways)
{
	struct net *n = net_new();
	uint64_t t0 = n->now;

	psd_peer_connect(&n->s[0].peer, n->now);
	EXPECT_EQ(1, n->s[0].initiations_seen);
	run_until(n, t0 + 100 * MS);
	EXPECT_TRUE(sessions_match(n));
	EXPECT_TRUE(n->s[0].peer.current.keys.initiator);
	EXPECT_FALSE(n->s[1].peer.current.keys.initiator);
	/* A had keys after one round trip; B after A's keepalive. */
	EXPECT_EQ(t0 + 2 * DELAY, n->s[0].event_at[PSD_PEER_KEYS_NEW]);
	EXPECT_EQ(t0 + 3 * DELAY, n->s[1].event_at[PSD_PEER_KEYS_NEW]);
	EXPECT_EQ(1, n->s[1].keepalives_rx);

	n->app_interval = 1 * MS;
	n->next_app = n->now;
	run_until(n, n->now + 1 * SEC);
	n->app_interval = 0;
	run_until(n, n->now + 100 * MS);
	EXPECT_GE(n->s[0].app_sent, 900);
	EXPECT_EQ(n->s[0].app_sent, n->s[1].app_received);
	EXPECT_EQ(n->s[1].app_sent, n->s[0].app_received);
	EXPECT_EQ(0, n->s[0].app_bad + n->s[1].app_bad);
	EXPECT_EQ(1, n->s[0].peer.stats.initiations_sent);
	EXPECT_EQ(1, n->s[1].peer.stats.responses_sent);
	net_free(n);
}

TEST(responder_does_not_seal_before_confirmation)
{
	struct net *n = net_new();
	uint8_t p[16] = { 1 }, d[DGRAM_MAX];
	size_t len;

	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, n->now + DELAY);	/* B consumed, responded */
	EXPECT_TRUE(n->s[1].peer.next.live);
	EXPECT_FALSE(n->s[1].peer.current.live);
	EXPECT_FALSE(psd_peer_can_send(&n->s[1].peer, n->now));
	EXPECT_EQ(-ENOTCONN, psd_peer_seal(&n->s[1].peer, p, sizeof(p), d,
					   sizeof(d), &len, n->now));
	/* Nor does it start a handshake across the one being confirmed. */
	EXPECT_EQ(0, n->s[1].initiations_seen);
	run_until(n, n->now + 2 * DELAY);
	EXPECT_TRUE(psd_peer_can_send(&n->s[1].peer, n->now));
	EXPECT_EQ(0, psd_peer_seal(&n->s[1].peer, p, sizeof(p), d, sizeof(d),
				   &len, n->now));
	EXPECT_EQ(0, n->s[1].initiations_seen);
	net_free(n);
}

static bool drop_first_initiation(struct net *n, int from, const uint8_t *d,
				  size_t len)
{
	(void)from;
	(void)len;
	if (d[0] != PSD_MSG_INITIATION || n->dropped_initiations)
		return false;
	n->dropped_initiations++;
	return true;
}

TEST(retry_after_lost_initiation)
{
	struct net *n = net_new();
	uint64_t t0 = n->now, at;

	n->drop = drop_first_initiation;
	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 5 * SEC - 1);
	EXPECT_EQ(1, n->s[0].initiations_seen);
	EXPECT_FALSE(n->s[0].peer.current.live);
	run_until(n, t0 + 6 * SEC);
	EXPECT_EQ(2, n->s[0].initiations_seen);
	EXPECT_TRUE(sessions_match(n));
	at = n->s[0].event_at[PSD_PEER_KEYS_NEW];
	EXPECT_GE(at, t0 + PSD_REKEY_TIMEOUT + 2 * DELAY);
	EXPECT_LT(at, t0 + PSD_REKEY_TIMEOUT + PSD_PEER_RETRY_JITTER +
		  2 * DELAY);
	net_free(n);
}

TEST(crossing_initiations_settle_in_one_round_trip)
{
	struct net *n = net_new();
	uint64_t t0 = n->now;
	int low = memcmp(n->s[0].node.noise.static_pub,
			 n->s[1].node.noise.static_pub, PSD_NOISE_KEY_LEN) < 0
			  ? 0 : 1;

	psd_peer_connect(&n->s[0].peer, n->now);
	psd_peer_connect(&n->s[1].peer, n->now);
	run_until(n, t0 + 100 * MS);
	EXPECT_TRUE(sessions_match(n));
	/* The lower key stayed initiator and dropped the other's. */
	EXPECT_EQ(1, n->s[low].node.stats.crossing_dropped);
	EXPECT_EQ(0, n->s[1 - low].node.stats.crossing_dropped);
	EXPECT_TRUE(n->s[low].peer.current.keys.initiator);
	EXPECT_EQ(1, n->s[1 - low].peer.stats.responses_sent);
	EXPECT_EQ(0, n->s[low].peer.stats.responses_sent);
	EXPECT_EQ(1, n->s[0].peer.stats.sessions);
	EXPECT_EQ(1, n->s[1].peer.stats.sessions);
	/* No retry is left pending: 10 s later nobody initiated again. */
	run_until(n, t0 + 10 * SEC);
	EXPECT_EQ(1, n->s[0].initiations_seen);
	EXPECT_EQ(1, n->s[1].initiations_seen);
	net_free(n);
}

TEST(rekey_at_120s_under_traffic_loses_nothing)
{
	struct net *n = net_new();
	uint64_t t0 = n->now;
	uint8_t first_cid[PSD_CID_LEN];

	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 100 * MS);
	ASSERT_TRUE(sessions_match(n));
	memcpy(first_cid, n->s[0].peer.current.keys.local_cid, PSD_CID_LEN);
	for (int i = 0; i < 2; i++)
		n->s[i].last_data_sent_at = 0;
	n->app_interval = 5 * MS;
	n->next_app = n->now;
	run_until(n, t0 + 119 * SEC);
	EXPECT_EQ(0, n->s[0].peer.stats.rekeys_started);
	run_until(n, t0 + 300 * SEC);
	n->app_interval = 0;
	run_until(n, n->now + 1 * SEC);

	/* Rekeyed at 120 s and 240 s, by A (the initiator) only. */
	EXPECT_EQ(2, n->s[0].peer.stats.rekeys_started);
	EXPECT_EQ(0, n->s[1].peer.stats.rekeys_started);
	EXPECT_EQ(3, n->s[0].peer.stats.sessions);
	EXPECT_EQ(3, n->s[1].peer.stats.sessions);
	EXPECT_TRUE(sessions_match(n));
	EXPECT_NE(0, memcmp(first_cid, n->s[0].peer.current.keys.local_cid,
			    PSD_CID_LEN));
	/* Traffic never stopped and every packet arrived, in order. */
	EXPECT_EQ(0, n->s[0].seal_failed + n->s[1].seal_failed);
	EXPECT_GE(n->s[0].app_sent, 59000);
	EXPECT_EQ(n->s[0].app_sent, n->s[1].app_received);
	EXPECT_EQ(n->s[1].app_sent, n->s[0].app_received);
	EXPECT_EQ(0, n->s[0].app_bad + n->s[1].app_bad);
	EXPECT_LE(n->s[0].max_data_gap, 5 * MS);
	EXPECT_LE(n->s[1].max_data_gap, 5 * MS);
	for (int i = 0; i < 2; i++)
		for (int k = 2; k < 8; k++)
			EXPECT_EQ(0, n->rc_count[i][k]);
	net_free(n);
}

/* Seals one application packet on s without sending it. */
static size_t capture(struct net *n, struct side *s, uint8_t *d)
{
	uint8_t p[APP_LEN];
	size_t len = 0;

	memset(p, 0, sizeof(p));
	p[0] = APP_MARK;
	if (psd_peer_seal(&s->peer, p, sizeof(p), d, DGRAM_MAX, &len, n->now))
		abort();
	return len;
}

TEST(old_keys_open_until_reject_time_then_refused)
{
	struct net *n = net_new();
	uint8_t p1[DGRAM_MAX], p2[DGRAM_MAX];
	uint64_t t0 = n->now, born;
	size_t l1, l2;

	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 100 * MS);
	ASSERT_TRUE(sessions_match(n));
	born = n->s[1].peer.current.usage.birth_ns;
	l1 = capture(n, &n->s[0], p1);
	l2 = capture(n, &n->s[0], p2);

	/* Keepalives keep the session up; A rekeys at 120 s. */
	run_until(n, t0 + 130 * SEC);
	EXPECT_EQ(2, n->s[1].peer.stats.sessions);
	EXPECT_TRUE(n->s[1].peer.previous.live);
	EXPECT_EQ(1, deliver(n, p1, l1, 1));	/* previous still opens */
	EXPECT_EQ(-EALREADY, deliver(n, p1, l1, 1));	/* replay */

	run_until(n, born + PSD_REJECT_AFTER_TIME);
	EXPECT_FALSE(n->s[1].peer.previous.live);
	EXPECT_TRUE(all_zero(&n->s[1].peer.previous,
			     sizeof(n->s[1].peer.previous)));
	EXPECT_EQ(-ENOKEY, deliver(n, p2, l2, 1));
	EXPECT_TRUE(sessions_match(n));
	net_free(n);
}

TEST(rejected_keys_are_refused_even_before_the_timer)
{
	struct net *n = net_new();
	uint8_t p[DGRAM_MAX];
	uint64_t t0 = n->now;
	size_t l;

	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 100 * MS);
	l = capture(n, &n->s[0], p);
	/* Time jumps without B's timers running (a stalled loop). */
	n->now = n->s[1].peer.current.usage.birth_ns + PSD_REJECT_AFTER_TIME;
	EXPECT_EQ(-EKEYEXPIRED, deliver(n, p, l, 1));
	EXPECT_FALSE(psd_peer_can_send(&n->s[1].peer, n->now));
	net_free(n);
}

TEST(cookie_under_load_then_retry_with_mac2)
{
	struct net *n = net_new();
	uint64_t t0 = n->now;

	n->s[1].under_load = true;
	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 100 * MS);
	EXPECT_EQ(1, n->s[1].node.stats.cookies_sent);
	EXPECT_EQ(1, n->s[0].peer.stats.cookies_received);
	EXPECT_EQ(0, n->s[1].peer.stats.responses_sent);
	EXPECT_FALSE(n->s[0].peer.current.live);
	EXPECT_TRUE(n->s[0].peer.cookie.have_cookie);

	run_until(n, t0 + 6 * SEC);
	EXPECT_EQ(2, n->s[0].initiations_seen);
	EXPECT_EQ(1, n->s[1].node.stats.cookies_sent);
	EXPECT_TRUE(sessions_match(n));
	net_free(n);
}

TEST(untrusted_initiator_gets_nothing)
{
	struct net *n = net_new();
	struct side *b = &n->s[1];
	struct psd_peer_node cnode;
	struct psd_peer cpeer;
	struct psd_identity cid;
	uint8_t seed[PSD_SEED_LEN];
	uint64_t t0 = n->now;

	/* C knows B's key, B does not know C's: B must not answer. */
	memset(seed, 0xcc, sizeof(seed));
	psd_identity_from_seed(seed, &cid);
	ASSERT_EQ(0, psd_peer_node_init(&cnode, &cid, &ops, &n->s[0], 0,
					WALL_OFFSET));
	ASSERT_EQ(0, psd_peer_init(&cpeer, &cnode, b->id.pk,
				   (const struct sockaddr *)&b->addr,
				   sizeof(b->addr), 7));
	psd_peer_connect(&cpeer, n->now);
	ASSERT_EQ(1, n->n_q);
	n->now += DELAY;
	n->n_q = 0;
	EXPECT_EQ(-ENOKEY, deliver(n, n->q[0].d, n->q[0].len, 1));
	EXPECT_EQ(0, n->n_q);
	EXPECT_EQ(1, b->node.stats.handshake_refused);
	EXPECT_EQ(0, b->peer.stats.responses_sent);
	(void)t0;
	psd_peer_free(&cpeer);
	psd_peer_node_free(&cnode);
	psd_identity_wipe(&cid);
	net_free(n);
}

TEST(keepalive_when_idle)
{
	struct net *n = net_new();
	uint64_t t0 = n->now;

	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 100 * SEC);
	/* Both ends speak at least every 25 s, though nobody sends data. */
	EXPECT_GE(n->s[0].peer.stats.keepalives_sent, 4);
	EXPECT_GE(n->s[1].peer.stats.keepalives_sent, 3);
	EXPECT_LE(n->s[0].max_data_gap, PSD_PEER_KEEPALIVE);
	EXPECT_LE(n->s[1].max_data_gap, PSD_PEER_KEEPALIVE);
	EXPECT_GE(n->s[1].max_data_gap, PSD_PEER_KEEPALIVE - 2 * DELAY);
	EXPECT_GE(n->s[1].keepalives_rx, 4);
	EXPECT_EQ(0, n->s[0].app_bad + n->s[1].app_bad);
	EXPECT_EQ(0, n->s[0].events[PSD_PEER_DEAD]);
	EXPECT_EQ(0, n->s[1].events[PSD_PEER_DEAD]);
	EXPECT_TRUE(sessions_match(n));
	net_free(n);
}

static bool drop_from_b(struct net *n, int from, const uint8_t *d, size_t len)
{
	(void)n;
	(void)d;
	(void)len;
	return from == 1;
}

TEST(dead_peer_after_silence_wipes_keys)
{
	struct net *n = net_new();
	uint64_t t0 = n->now, last_rx;

	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 1 * SEC);
	ASSERT_TRUE(sessions_match(n));
	n->drop = drop_from_b;		/* B goes silent */
	last_rx = n->s[0].peer.last_rx_ns;
	run_until(n, last_rx + PSD_PEER_DEAD_AFTER - 1);
	EXPECT_EQ(0, n->s[0].events[PSD_PEER_DEAD]);
	run_until(n, last_rx + PSD_PEER_DEAD_AFTER);
	EXPECT_EQ(1, n->s[0].events[PSD_PEER_DEAD]);
	EXPECT_EQ(last_rx + PSD_PEER_DEAD_AFTER,
		  n->s[0].event_at[PSD_PEER_DEAD]);
	EXPECT_TRUE(session_wiped(&n->s[0].peer));
	EXPECT_EQ(UINT64_MAX, psd_peer_next_deadline(&n->s[0].peer));
	net_free(n);
}

static bool drop_all(struct net *n, int from, const uint8_t *d, size_t len)
{
	(void)n;
	(void)from;
	(void)d;
	(void)len;
	return true;
}

TEST(unreachable_after_bounded_attempts)
{
	struct net *n = net_new();
	uint64_t t0 = n->now, at;

	n->drop = drop_all;
	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 200 * SEC);
	EXPECT_EQ(PSD_PEER_HANDSHAKE_ATTEMPTS, n->s[0].initiations_seen);
	EXPECT_EQ(1, n->s[0].events[PSD_PEER_UNREACHABLE]);
	at = n->s[0].event_at[PSD_PEER_UNREACHABLE] - t0;
	EXPECT_GE(at, PSD_PEER_HANDSHAKE_ATTEMPTS * PSD_REKEY_TIMEOUT);
	EXPECT_LE(at, PSD_PEER_HANDSHAKE_ATTEMPTS *
		  (PSD_REKEY_TIMEOUT + PSD_PEER_RETRY_JITTER));
	EXPECT_TRUE(session_wiped(&n->s[0].peer));
	EXPECT_EQ(UINT64_MAX, psd_peer_next_deadline(&n->s[0].peer));
	net_free(n);
}

TEST(every_secret_wiped_on_drop_and_free)
{
	struct net *n = net_new();
	uint64_t t0 = n->now;

	psd_peer_connect(&n->s[0].peer, n->now);
	n->app_interval = 10 * MS;
	n->next_app = n->now;
	run_until(n, t0 + 125 * SEC);	/* current, previous and a handshake */
	ASSERT_TRUE(n->s[0].peer.previous.live);
	ASSERT_FALSE(session_wiped(&n->s[0].peer));
	psd_peer_drop_session(&n->s[0].peer);
	EXPECT_TRUE(session_wiped(&n->s[0].peer));
	EXPECT_FALSE(psd_peer_can_send(&n->s[0].peer, n->now));

	psd_peer_free(&n->s[1].peer);
	EXPECT_TRUE(all_zero(&n->s[1].peer, sizeof(n->s[1].peer)));
	psd_peer_node_free(&n->s[1].node);
	EXPECT_TRUE(all_zero(&n->s[1].node, sizeof(n->s[1].node)));
	net_free(n);
}

TEST(garbage_and_forgeries_are_dropped)
{
	struct net *n = net_new();
	uint8_t p[DGRAM_MAX], junk[PSD_HANDSHAKE_LEN];
	uint64_t t0 = n->now;
	size_t l;

	psd_peer_connect(&n->s[0].peer, n->now);
	run_until(n, t0 + 100 * MS);
	l = capture(n, &n->s[0], p);
	p[l - 1] ^= 1;
	EXPECT_EQ(-EBADMSG, deliver(n, p, l, 1));
	EXPECT_EQ(1, n->s[1].peer.current.usage.failed_opens);
	p[l - 1] ^= 1;
	EXPECT_EQ(1, deliver(n, p, l, 1));
	memset(junk, 0, sizeof(junk));
	junk[0] = PSD_MSG_INITIATION;
	EXPECT_EQ(-EACCES, deliver(n, junk, sizeof(junk), 1));
	junk[0] = 0x7f;
	EXPECT_EQ(-EPROTO, deliver(n, junk, sizeof(junk), 1));
	EXPECT_EQ(-EBADMSG, deliver(n, junk, 0, 1));
	net_free(n);
}

TEST_HARNESS_MAIN
