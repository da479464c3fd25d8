// SPDX-License-Identifier: GPL-2.0
/*
 * Peer sessions (peer.h) over the deterministic simulator's lossy links
 * (sim.h): the handshake completes under 30% bursty loss for every seed
 * tried (the application asks again if a round of 18 attempts fails), and a session carrying traffic both ways through 2% loss rekeys
 * twice in 300 s without a pause: every datagram the links delivered was
 * accepted, every application packet arrived at most once and in order.
 * A connection over a session survives the requester's address changing
 * mid-transfer (rebinding): exact bytes, the server's datagrams follow
 * the first authentic packet from the new address, and a replayed or
 * forged packet does not move them back. A connection goes on across a
 * rekey mid-transfer, a restarted requester gets a new one from the
 * server that still held the old one (psd_peer_conn_starts_over), and a
 * requester whose server restarted renews the session after 2 s of
 * silence (psd_peer_renew) instead of waiting for its idle timeout.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "conn.h"
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

/*
 * ---- a session carrying a connection, as swarm.c arranges them ----
 *
 * Each end runs a peer's session and, once its keys exist, a connection
 * that seals through it (psd_peer_seal_pn) and gets the packets it opens.
 * A datagram goes to the sender's idea of the other end's address (the
 * peer's endpoint); one for an address the other end no longer has is
 * lost, as behind a NAT whose old mapping is gone.
 */
#define OBJ_LEN		(6u << 20)
#define N_REQS		6
#define REQ_LEN		(OBJ_LEN / N_REQS)
#define END_OUTBOX	16
/* An end's addresses: before its link rebinds, after, and an attacker's. */
#define ADDR_OLD	0
#define ADDR_NEW	1
#define ADDR_ATTACKER	2

struct end {
	struct psd_identity id;
	struct psd_peer_node node;
	struct psd_peer peer;
	struct psd_conn *conn;
	struct end *other;
	struct sockaddr_in6 addrs[3];
	uint64_t rebound_at;		/* at addrs[ADDR_NEW] from; 0 never */
	uint64_t now;			/* of the call (events have none) */
	bool serves;
	/* Handshake messages waiting to go out, and where to. */
	uint8_t out[END_OUTBOX][SIM_DGRAM_MAX];
	size_t out_len[END_OUTBOX], head, n_out;
	struct sockaddr_in6 out_to[END_OUTBOX];
	/* The requester's side. */
	uint64_t req_ids[N_REQS];
	bool got[N_REQS];
	bool requested, closed;
	unsigned int responses;
	uint64_t bad_bytes;
	unsigned int conns, replaced;	/* opened; replaced by new keys */
	/* As swarm.c: silence with requests out renews the session. */
	uint64_t silence;		/* 0: never */
	bool renewing;
	unsigned int renewals;
	/* The server's side: what it sent where, what it heard from where. */
	uint64_t to_stale;		/* lost: to the other's old address */
	uint64_t to_stale_late;		/* ... after first_new_rx: 0 */
	uint64_t first_new_rx;		/* 1st authentic from ADDR_NEW */
	uint8_t old_pkt[SIM_DGRAM_MAX];	/* last authentic, ADDR_OLD */
	size_t old_pkt_len;
	uint8_t initiation[SIM_DGRAM_MAX];
	size_t initiation_len;
};

static uint8_t object[OBJ_LEN];

static bool same_addr(const struct sockaddr_in6 *a,
		      const struct sockaddr_in6 *b)
{
	return a->sin6_port == b->sin6_port &&
	       !memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(b->sin6_addr));
}

/* True if e's session sends to addr. */
static bool endpoint_is(const struct end *e, const struct sockaddr_in6 *addr)
{
	return same_addr((const struct sockaddr_in6 *)&e->peer.endpoint, addr);
}

/* Where e can be reached at now. */
static const struct sockaddr_in6 *current_addr(const struct end *e,
					       uint64_t now)
{
	return e->rebound_at && now >= e->rebound_at ? &e->addrs[ADDR_NEW] :
						       &e->addrs[ADDR_OLD];
}

static void end_push(struct end *e, const struct sockaddr *to,
		     socklen_t to_len, const uint8_t *d, size_t len)
{
	size_t slot;

	if (e->n_out == END_OUTBOX || len > SIM_DGRAM_MAX ||
	    to_len != sizeof(struct sockaddr_in6))
		abort();	/* a handshake's few messages always fit */
	slot = (e->head + e->n_out++) % END_OUTBOX;
	memcpy(e->out[slot], d, len);
	e->out_len[slot] = len;
	memcpy(&e->out_to[slot], to, sizeof(e->out_to[slot]));
}

static void end_ops_send(void *ctx, struct psd_peer *peer,
			 const struct sockaddr *to, socklen_t to_len,
			 const uint8_t *d, size_t len)
{
	(void)peer;
	end_push(ctx, to, to_len, d, len);
}

static int end_seal(void *ctx, uint64_t pn, uint64_t largest_acked,
		    bool any_acked, const uint8_t *payload, size_t len,
		    uint8_t *out, size_t cap, size_t *ret_len, uint64_t now)
{
	struct end *e = ctx;

	return psd_peer_seal_pn(&e->peer, pn, largest_acked, any_acked,
				payload, len, out, cap, ret_len, now);
}

static void end_keepalive(void *ctx, struct psd_peer *peer)
{
	struct end *e = ctx;

	(void)peer;
	psd_conn_ping(e->conn);
}

static void end_on_response(void *ctx, uint64_t id, const uint8_t *bytes,
			    size_t len)
{
	struct end *e = ctx;

	for (size_t i = 0; i < N_REQS; i++) {
		if (e->got[i] || e->req_ids[i] != id)
			continue;
		if (len != REQ_LEN || memcmp(bytes, object + i * REQ_LEN, len))
			e->bad_bytes += REQ_LEN;
		e->got[i] = true;
		e->responses++;
	}
}

static void end_on_not_found(void *ctx, uint64_t id)
{
	struct end *e = ctx;

	(void)id;
	e->bad_bytes += REQ_LEN;
}

static int end_on_request(void *ctx, const struct psd_frame_request *req)
{
	(void)ctx;
	return req->offset <= OBJ_LEN && req->length <= OBJ_LEN - req->offset ?
		       0 : -ENOENT;
}

static int end_read(void *ctx, const struct psd_frame_request *req,
		    uint64_t offset, uint8_t *buf, size_t len)
{
	(void)ctx;
	(void)req;
	if (offset > OBJ_LEN || len > OBJ_LEN - offset)
		return -EIO;
	memcpy(buf, object + offset, len);
	return 0;
}

static void end_on_close(void *ctx, bool by_peer, uint64_t code,
			 const char *reason)
{
	struct end *e = ctx;

	(void)by_peer;
	(void)code;
	(void)reason;
	e->closed = true;
}

static const struct psd_conn_app end_app = {
	.on_response = end_on_response, .on_not_found = end_on_not_found,
	.on_request = end_on_request, .read = end_read,
	.on_close = end_on_close,
};

static void end_open_conn(struct end *e)
{
	struct psd_conn_config cfg = {
		.server = e->serves, .address_validated = true,
		.seal = end_seal, .seal_ctx = e, .seed = e->id.pk[0] + e->conns,
		.app = &end_app, .app_ctx = e,
	};

	if (psd_conn_new(&cfg, e->now, &e->conn))
		abort();
	e->conns++;
	e->peer.keepalive_hook = end_keepalive;
	e->peer.keepalive_ctx = e;
}

/* As swarm.c: new keys keep the connection unless they start over. */
static void end_ops_event(void *ctx, struct psd_peer *peer,
			  enum psd_peer_event ev)
{
	struct end *e = ctx;
	const struct psd_conn_stats *st;

	bool renewed;

	(void)peer;
	if (ev != PSD_PEER_KEYS_NEW)
		return;
	renewed = e->renewing && e->peer.current.keys.initiator;
	e->renewing = false;
	if (e->conn) {
		st = psd_conn_stats(e->conn);
		if (!renewed &&
		    !psd_peer_conn_starts_over(&e->peer, st->tx_packets ?
					       st->last_pn + 1 : 0))
			return;
		psd_conn_free(e->conn);
		psd_peer_forget_previous(&e->peer);
		e->replaced++;
		e->requested = false;	/* ask again what is missing */
	}
	end_open_conn(e);
}

static struct psd_peer *end_ops_by_static(void *ctx, const uint8_t *pub)
{
	struct end *e = ctx;

	return memcmp(e->peer.noise.static_pub, pub, PSD_NOISE_KEY_LEN) ?
		       NULL : &e->peer;
}

static struct psd_peer *end_ops_by_cid(void *ctx, const uint8_t *cid)
{
	struct end *e = ctx;

	return psd_peer_owns_cid(&e->peer, cid) ? &e->peer : NULL;
}

static const struct psd_peer_ops end_ops = {
	.send = end_ops_send, .event = end_ops_event,
	.by_static = end_ops_by_static, .by_cid = end_ops_by_cid,
};

/* The next datagram e sends, from its outbox or its connection. */
static size_t end_next(struct end *e, uint8_t *buf, size_t cap,
		       struct sockaddr_in6 *ret_to, uint64_t now)
{
	size_t len;

	if (e->n_out) {
		len = e->out_len[e->head];
		memcpy(buf, e->out[e->head], len);
		*ret_to = e->out_to[e->head];
		e->head = (e->head + 1) % END_OUTBOX;
		e->n_out--;
		return len;
	}
	if (!e->conn)
		return 0;
	memcpy(ret_to, &e->peer.endpoint, sizeof(*ret_to));
	return psd_conn_send(e->conn, buf, cap, now);
}

static size_t end_send(void *ctx, uint8_t *buf, size_t cap, uint64_t now)
{
	struct end *e = ctx;
	struct sockaddr_in6 to;
	size_t len;

	e->now = now;
	while ((len = end_next(e, buf, cap, &to, now))) {
		if (same_addr(&to, current_addr(e->other, now)))
			return len;
		e->to_stale++;		/* the old mapping is gone */
		if (e->first_new_rx)
			e->to_stale_late++;
	}
	return 0;
}

/* d from the other end's address src: psd_peer_node_receive's verdict. */
static int end_receive(struct end *e, const uint8_t *d, size_t len,
		       unsigned int src, uint64_t now)
{
	const struct sockaddr_in6 *from = &e->other->addrs[src];
	uint8_t out[SIM_DGRAM_MAX];
	struct psd_peer *peer;
	size_t out_len;
	int rc;

	e->now = now;
	rc = psd_peer_node_receive(&e->node, d, len,
				   (const struct sockaddr *)from, sizeof(*from),
				   false, out, sizeof(out), &out_len, &peer,
				   now);
	/* As swarm.c: a session's all-PADDING keepalive is no conn packet. */
	if (rc == 1 && e->conn && !psd_chunk_is_zero(out, out_len))
		psd_conn_recv_opened(e->conn, peer->last_rx_pn, out, out_len,
				     len, now);
	return rc;
}

static void end_recv_from(void *ctx, const uint8_t *d, size_t len,
			  unsigned int src, uint64_t now)
{
	struct end *e = ctx;
	int rc = end_receive(e, d, len, src, now);

	if (len && d[0] == PSD_MSG_INITIATION && !e->initiation_len) {
		memcpy(e->initiation, d, len);
		e->initiation_len = len;
	}
	if (rc == 1 && src == ADDR_OLD) {
		memcpy(e->old_pkt, d, len);
		e->old_pkt_len = len;
	}
	if (rc == 1 && src == ADDR_NEW && !e->first_new_rx)
		e->first_new_rx = now;
}

/* When a requester waiting for responses gives the session up. */
static uint64_t end_silent_at(const struct end *e)
{
	if (!e->silence || !e->conn || e->renewing || !e->requested ||
	    e->responses == N_REQS)
		return UINT64_MAX;
	return e->peer.last_rx_ns + e->silence;
}

static uint64_t end_timeout(void *ctx, uint64_t now)
{
	struct end *e = ctx;
	uint64_t t = psd_peer_next_deadline(&e->peer), c;

	if (e->conn && (c = psd_conn_timeout(e->conn, now)) < t)
		t = c;
	return end_silent_at(e) < t ? end_silent_at(e) : t;
}

static void end_on_timeout(void *ctx, uint64_t now)
{
	struct end *e = ctx;

	e->now = now;
	if (psd_peer_next_deadline(&e->peer) <= now)
		psd_peer_on_timer(&e->peer, now);
	if (e->conn && psd_conn_timeout(e->conn, now) <= now)
		psd_conn_on_timeout(e->conn, now);
	if (end_silent_at(e) <= now) {
		e->renewing = true;
		e->renewals++;
		psd_peer_renew(&e->peer, now);
	}
}

struct roam {
	struct sim sim;
	struct end a, b;		/* requester, server */
	bool rebind_seen, attacked;
	unsigned int responses_at_rebind;
	int rc_replay, rc_forged, rc_initiation;
	unsigned int endpoint_kept;	/* after each attack */
};

static void end_make(struct end *e, struct end *other, uint8_t seed_byte)
{
	uint8_t seed_bytes[PSD_SEED_LEN];

	e->other = other;
	memset(seed_bytes, seed_byte, sizeof(seed_bytes));
	psd_identity_from_seed(seed_bytes, &e->id);
	if (psd_peer_node_init(&e->node, &e->id, &end_ops, e, 0, WALL))
		abort();
	for (unsigned int i = 0; i < 3; i++) {
		e->addrs[i].sin6_family = AF_INET6;
		e->addrs[i].sin6_addr.s6_addr[14] = (uint8_t)i;
		e->addrs[i].sin6_addr.s6_addr[15] = seed_byte;
		e->addrs[i].sin6_port = htons((uint16_t)(7390 + 1000 * i));
	}
}

static struct roam *roam_new(uint64_t seed, const struct sim_link_cfg *up,
			     const struct sim_link_cfg *down)
{
	struct roam *t = calloc(1, sizeof(*t));

	if (!t || psd_chunkhash_init())
		abort();
	for (size_t i = 0; i < OBJ_LEN; i++)
		object[i] = (uint8_t)((i * 2654435761u) >> 13);
	end_make(&t->a, &t->b, 0xaa);
	end_make(&t->b, &t->a, 0xbb);
	t->b.serves = true;
	t->a.rebound_at = up->rebind_at;
	t->b.rebound_at = down->rebind_at;
	if (psd_peer_init(&t->a.peer, &t->a.node, t->b.id.pk,
			  (struct sockaddr *)&t->b.addrs[ADDR_OLD],
			  sizeof(t->b.addrs[0]), seed) ||
	    psd_peer_init(&t->b.peer, &t->b.node, t->a.id.pk,
			  (struct sockaddr *)&t->a.addrs[ADDR_OLD],
			  sizeof(t->a.addrs[0]), seed + 1) ||
	    sim_init(&t->sim, seed, up, down))
		abort();
	t->sim.now = 1000 * SEC;
	t->sim.node[0] = (struct sim_node){ .send = end_send,
		.recv_from = end_recv_from, .timeout = end_timeout,
		.on_timeout = end_on_timeout, .ctx = &t->a };
	t->sim.node[1] = (struct sim_node){ .send = end_send,
		.recv_from = end_recv_from, .timeout = end_timeout,
		.on_timeout = end_on_timeout, .ctx = &t->b };
	return t;
}

static void end_free(struct end *e)
{
	psd_conn_free(e->conn);
	psd_peer_free(&e->peer);
	psd_peer_node_free(&e->node);
}

/* e keeps its identity, addresses and role, and forgets everything else. */
static void end_restart(struct end *e)
{
	static struct end fresh;

	fresh = (struct end){ .id = e->id, .other = e->other,
			      .rebound_at = e->rebound_at, .serves = e->serves,
			      .silence = e->silence };
	memcpy(fresh.addrs, e->addrs, sizeof(fresh.addrs));
	end_free(e);
	*e = fresh;
	sodium_memzero(&fresh, sizeof(fresh));
	if (psd_peer_node_init(&e->node, &e->id, &end_ops, e, 0, WALL))
		abort();
}

static void roam_free(struct roam *t)
{
	sim_free(&t->sim);
	end_free(&t->a);
	end_free(&t->b);
	free(t);
}

/*
 * Once the server heard the requester's new address: an old packet
 * replayed from the old address, a forged one from a third, and the
 * first initiation replayed must each be refused and leave the server's
 * endpoint where it is.
 */
static void attack(struct roam *t, uint64_t now)
{
	struct end *b = &t->b;
	uint8_t forged[SIM_DGRAM_MAX];

	t->attacked = true;
	t->rc_replay = end_receive(b, b->old_pkt, b->old_pkt_len, ADDR_OLD,
				   now);
	t->endpoint_kept += endpoint_is(b, &t->a.addrs[ADDR_NEW]);
	memcpy(forged, b->old_pkt, b->old_pkt_len);
	forged[b->old_pkt_len - 1] ^= 0x40;	/* in the tag */
	t->rc_forged = end_receive(b, forged, b->old_pkt_len, ADDR_ATTACKER,
				   now);
	t->endpoint_kept += endpoint_is(b, &t->a.addrs[ADDR_NEW]);
	t->rc_initiation = end_receive(b, b->initiation, b->initiation_len,
				       ADDR_OLD, now);
	t->endpoint_kept += endpoint_is(b, &t->a.addrs[ADDR_NEW]);
}

/* The requester asks for every piece it lacks once a connection is up. */
static void end_request_missing(struct end *a)
{
	if (!a->conn || a->requested)
		return;
	a->requested = true;
	for (size_t i = 0; i < N_REQS; i++)
		if (!a->got[i] &&
		    psd_conn_request(a->conn, PSD_REQ_CHUNK, object, 0,
				     i * REQ_LEN, REQ_LEN, PSD_PRIO_DEMAND,
				     &a->req_ids[i]))
			abort();
}

static bool roam_step(void *ctx, uint64_t now)
{
	struct roam *t = ctx;
	struct end *a = &t->a;

	end_request_missing(a);
	if (!t->rebind_seen && now >= a->rebound_at) {
		t->rebind_seen = true;
		t->responses_at_rebind = a->responses;
	}
	if (t->b.first_new_rx && !t->attacked)
		attack(t, now);
	return a->responses == N_REQS;
}

TEST(rebinding_mid_transfer)
{
	const uint64_t t0 = 1000 * SEC;
	struct sim_link_cfg up = { .delay = 20 * MS, .rate_bps = 40000000,
				   .rebind_at = t0 + 700 * MS };
	struct sim_link_cfg down = { .delay = 20 * MS, .rate_bps = 40000000 };
	struct roam *t = roam_new(11, &up, &down);

	psd_peer_connect(&t->a.peer, t0);
	ASSERT_EQ(0, sim_run(&t->sim, t0 + 60 * SEC, roam_step, t));
	TH_LOG("done at %llu ms; %u of %u responses before the rebinding "
	       "at 700 ms; %llu datagrams lost to the old address",
	       (unsigned long long)((t->sim.now - t0) / MS),
	       t->responses_at_rebind, N_REQS,
	       (unsigned long long)t->b.to_stale);
	/* Every byte, and the rebinding came mid-transfer. */
	EXPECT_EQ(N_REQS, t->a.responses);
	EXPECT_EQ(0, t->a.bad_bytes);
	EXPECT_LT(t->responses_at_rebind, N_REQS);
	EXPECT_GT(t->sim.link[0].st.rebound, 0);
	EXPECT_FALSE(t->a.closed || t->b.closed);
	/* The server follows the new address from its first authentic
	 * packet on: nothing to the old one after that. */
	ASSERT_NE(0, t->b.first_new_rx);
	EXPECT_TRUE(endpoint_is(&t->b, &t->a.addrs[ADDR_NEW]));
	EXPECT_GT(t->b.to_stale, 0);
	EXPECT_EQ(0, t->b.to_stale_late);
	/* Replays and forgeries do not move it back. */
	ASSERT_TRUE(t->attacked);
	EXPECT_EQ(-EALREADY, t->rc_replay);
	EXPECT_EQ(-EBADMSG, t->rc_forged);
	EXPECT_GT(0, t->rc_initiation);
	EXPECT_EQ(3, t->endpoint_kept);
	EXPECT_EQ(1, t->b.peer.stats.rx_replayed);
	roam_free(t);
}

/* Until the requester has every piece. */
static bool all_received(void *ctx, uint64_t now)
{
	struct roam *t = ctx;

	(void)now;
	end_request_missing(&t->a);
	return t->a.responses == N_REQS;
}

/*
 * A transfer slow enough to span the 120 s rekey: both ends change keys
 * under the connection and keep it (its numbers go on), and every byte
 * arrives.
 */
TEST(rekey_mid_transfer_keeps_the_connection)
{
	const uint64_t t0 = 1000 * SEC;
	struct sim_link_cfg link = { .delay = 30 * MS, .rate_bps = 300000,
				     .loss = 0.01 };
	struct roam *t = roam_new(5, &link, &link);

	psd_peer_connect(&t->a.peer, t0);
	ASSERT_EQ(0, sim_run(&t->sim, t0 + 600 * SEC, all_received, t));
	TH_LOG("done at %llu s, %llu sessions",
	       (unsigned long long)((t->sim.now - t0) / SEC),
	       (unsigned long long)t->a.peer.stats.sessions);
	EXPECT_GT(t->sim.now - t0, PSD_REKEY_AFTER_TIME);
	EXPECT_EQ(0, t->a.bad_bytes);
	EXPECT_GE(t->a.peer.stats.sessions, 2);
	EXPECT_EQ(t->a.peer.stats.sessions, t->b.peer.stats.sessions);
	EXPECT_EQ(1, t->a.conns);
	EXPECT_EQ(1, t->b.conns);
	EXPECT_EQ(0, t->a.replaced + t->b.replaced);
	EXPECT_FALSE(t->a.closed || t->b.closed);
	roam_free(t);
}

/*
 * The requester restarts mid-transfer (keys, connection, everything
 * gone) while the server still holds its connection: the server answers
 * the new handshake, sees from the first packet under the new keys that
 * the requester numbers from scratch, and serves it over a new
 * connection at once.
 */
TEST(requester_restart_gets_a_new_connection)
{
	const uint64_t t0 = 1000 * SEC;
	struct sim_link_cfg link = { .delay = 20 * MS, .rate_bps = 40000000 };
	struct roam *t = roam_new(9, &link, &link);
	uint64_t restart;

	psd_peer_connect(&t->a.peer, t0);
	ASSERT_EQ(-ETIMEDOUT, sim_run(&t->sim, t0 + 500 * MS, all_received,
				      t));
	ASSERT_NE(NULL, t->b.conn);
	ASSERT_LT(t->a.responses, N_REQS);

	restart = t->sim.now;
	end_restart(&t->a);
	ASSERT_EQ(0, psd_peer_init(&t->a.peer, &t->a.node, t->b.id.pk,
				   (struct sockaddr *)&t->b.addrs[ADDR_OLD],
				   sizeof(t->b.addrs[0]), 77));
	psd_peer_connect(&t->a.peer, restart);
	ASSERT_EQ(0, sim_run(&t->sim, restart + 60 * SEC, all_received, t));
	TH_LOG("served again in %llu ms",
	       (unsigned long long)((t->sim.now - restart) / MS));
	EXPECT_EQ(0, t->a.bad_bytes);
	EXPECT_EQ(1, t->b.replaced);
	EXPECT_EQ(2, t->b.conns);
	EXPECT_EQ(1, t->a.conns);
	/* A round trip for the handshake, then the transfer at 40 Mbit/s. */
	EXPECT_LT(t->sim.now - restart, 3 * SEC);
	roam_free(t);
}

/*
 * The server restarts mid-transfer and drops the requester's packets (it
 * lost the keys). The requester hears nothing for 2 s, renews the
 * session (psd_peer_renew) while its keys still seal, and moves what is
 * missing to a new connection under the new keys.
 */
TEST(server_restart_renews_the_session)
{
	const uint64_t t0 = 1000 * SEC;
	struct sim_link_cfg link = { .delay = 20 * MS, .rate_bps = 40000000 };
	struct roam *t = roam_new(13, &link, &link);
	uint64_t restart;

	t->a.silence = 2 * SEC;
	psd_peer_connect(&t->a.peer, t0);
	ASSERT_EQ(-ETIMEDOUT, sim_run(&t->sim, t0 + 500 * MS, all_received,
				      t));
	ASSERT_LT(t->a.responses, N_REQS);

	restart = t->sim.now;
	end_restart(&t->b);
	ASSERT_EQ(0, psd_peer_init(&t->b.peer, &t->b.node, t->a.id.pk,
				   (struct sockaddr *)&t->a.addrs[ADDR_OLD],
				   sizeof(t->a.addrs[0]), 78));
	ASSERT_EQ(0, sim_run(&t->sim, restart + 60 * SEC, all_received, t));
	TH_LOG("done %llu ms after the restart",
	       (unsigned long long)((t->sim.now - restart) / MS));
	EXPECT_EQ(0, t->a.bad_bytes);
	EXPECT_EQ(1, t->a.renewals);
	EXPECT_EQ(1, t->a.replaced);
	EXPECT_EQ(2, t->a.conns);
	EXPECT_EQ(1, t->b.conns);
	EXPECT_EQ(2, t->a.peer.stats.sessions);
	/* The old keys went with the old connection. */
	EXPECT_FALSE(t->a.peer.previous.live);
	EXPECT_GT(t->b.node.stats.unknown_cid, 0);
	EXPECT_LT(t->sim.now - restart, 5 * SEC);
	roam_free(t);
}

TEST_HARNESS_MAIN
