// SPDX-License-Identifier: GPL-2.0
/*
 * The transport endpoint (swarm.h): the socket, the peer table, a
 * connection per established session, and the chunk requests on top.
 * Every entry point (datagram, timer, request) ends in service(): links
 * whose connection ended are reset, waiting requests are sent where a
 * connection is open, every connection's ready datagrams go out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "chunkhash.h"
#include "packet.h"
#include "swarm.h"

/* Datagrams one connection may queue per pass: half the socket's slots. */
#define DRAIN_BURST	(PSD_UDP_TX_SLOTS / 2)

struct swarm_req {
	bool used, issued;
	int link;			/* -1: any peer, not issued yet */
	uint64_t conn_id;		/* conn.h's request id once issued */
	uint8_t hash[PSD_OBJECT_ID_LEN];
	uint64_t length;
	enum psd_swarm_class cls;
	psd_swarm_done_fn *done;
	void *ctx;
};

/* A configured peer's connection, by the peer's index in the table. */
struct swarm_link {
	struct psd_swarm *sw;
	struct psd_peer *peer;
	struct psd_conn *conn;
	bool ended;			/* the connection closed: reset it */
};

struct psd_swarm {
	struct psd_swarm_config cfg;
	struct psd_udp *udp;
	struct psd_peers peers;
	struct swarm_link links[PSD_PEERS_MAX];
	struct swarm_req reqs[PSD_SWARM_REQUESTS_MAX];
	uint64_t rng;
	bool busy;			/* inside an entry point: no re-entry */
	struct psd_swarm_stats st;
};

uint64_t psd_swarm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * PSD_NSEC + (uint64_t)ts.tv_nsec;
}

static struct swarm_link *link_of(struct psd_swarm *sw, struct psd_peer *peer)
{
	return &sw->links[peer - sw->peers.peers];
}

static int link_index(struct psd_swarm *sw, const struct swarm_link *l)
{
	return (int)(l - sw->links);
}

static bool link_open(const struct swarm_link *l)
{
	return l->conn && !l->ended &&
	       psd_conn_state(l->conn) == PSD_CONN_OPEN;
}

static void finish(struct psd_swarm *sw, struct swarm_req *r, int err,
		   const uint8_t *bytes, size_t len)
{
	struct swarm_req done = *r;

	memset(r, 0, sizeof(*r));
	if (err)
		sw->st.requests_failed++;
	else
		sw->st.requests_done++;
	done.done(done.ctx, err, bytes, len);
}

static struct swarm_req *req_by_conn_id(struct psd_swarm *sw,
					const struct swarm_link *l,
					uint64_t id)
{
	int li = link_index(sw, l);

	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++)
		if (sw->reqs[i].used && sw->reqs[i].issued &&
		    sw->reqs[i].link == li && sw->reqs[i].conn_id == id)
			return &sw->reqs[i];
	return NULL;
}

/* ---- the connection's application callbacks ---- */

static void on_response(void *ctx, uint64_t id, const uint8_t *bytes,
			size_t len)
{
	struct swarm_link *l = ctx;
	struct swarm_req *r = req_by_conn_id(l->sw, l, id);

	if (!r)
		return;
	if (len != r->length || psd_chunkhash_verify(bytes, len, r->hash)) {
		finish(l->sw, r, -EBADMSG, NULL, 0);
		return;
	}
	finish(l->sw, r, 0, bytes, len);
}

static void on_not_found(void *ctx, uint64_t id)
{
	struct swarm_link *l = ctx;
	struct swarm_req *r = req_by_conn_id(l->sw, l, id);

	if (r)
		finish(l->sw, r, -ENOENT, NULL, 0);
}

/* The extent of req if it lies inside what lookup names, else -ENOENT. */
static int extent_of(struct psd_swarm *sw, const struct psd_frame_request *req,
		     struct psd_swarm_extent *ret)
{
	if (!sw->cfg.lookup || req->kind != PSD_REQ_CHUNK ||
	    sw->cfg.lookup(sw->cfg.lookup_ctx, req->object_id, ret))
		return -ENOENT;
	if (req->offset > ret->len || req->length > ret->len - req->offset)
		return -ENOENT;
	return 0;
}

static int on_request(void *ctx, const struct psd_frame_request *req)
{
	struct swarm_link *l = ctx;
	struct psd_swarm_extent ext;

	if (extent_of(l->sw, req, &ext)) {
		l->sw->st.not_found_sent++;
		return -ENOENT;
	}
	l->sw->st.served++;
	return 0;
}

static int read_extent(void *ctx, const struct psd_frame_request *req,
		       uint64_t offset, uint8_t *buf, size_t len)
{
	struct swarm_link *l = ctx;
	struct psd_swarm_extent ext;
	ssize_t n;

	if (extent_of(l->sw, req, &ext) || offset < req->offset ||
	    offset - req->offset > req->length ||
	    len > req->length - (offset - req->offset))
		return -EIO;
	while (len) {
		n = pread(ext.fd, buf, len, (off_t)(ext.offset + offset));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		buf += n;
		offset += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

static void on_close(void *ctx, bool by_peer, uint64_t code,
		     const char *reason)
{
	struct swarm_link *l = ctx;

	(void)by_peer;
	(void)code;
	(void)reason;
	l->ended = true;	/* reset in service(), not under the conn */
}

static const struct psd_conn_app conn_app = {
	.on_response = on_response,
	.on_not_found = on_not_found,
	.on_request = on_request,
	.read = read_extent,
	.on_close = on_close,
};

/* The session layer seals; the connection numbers (docs/protocol.md). */
static int seal_for_conn(void *ctx, uint64_t pn, uint64_t largest_acked,
			 bool any_acked, const uint8_t *payload, size_t len,
			 uint8_t *out, size_t cap, size_t *ret_len,
			 uint64_t now)
{
	struct swarm_link *l = ctx;

	return psd_peer_seal_pn(l->peer, pn, largest_acked, any_acked,
				payload, len, out, cap, ret_len, now);
}

static void keepalive_by_conn(void *ctx, struct psd_peer *peer)
{
	struct swarm_link *l = ctx;

	(void)peer;
	if (l->conn)
		psd_conn_ping(l->conn);
}

/* ---- links ---- */

static uint64_t next_random(struct psd_swarm *sw)
{
	uint64_t z = (sw->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void open_conn(struct psd_swarm *sw, struct swarm_link *l,
		      uint64_t now)
{
	struct psd_conn_config cfg = {
		/* Both ends serve. The handshake proved the address: the
		 * initiator got the response there, the responder a packet
		 * under keys only that response carried. */
		.server = true, .address_validated = true,
		.seal = seal_for_conn, .seal_ctx = l,
		.seed = next_random(sw),
		.idle_timeout = sw->cfg.idle_timeout,
		.keepalive = sw->cfg.keepalive,
		.app = &conn_app, .app_ctx = l,
	};

	if (psd_conn_new(&cfg, now, &l->conn))
		return;	/* -ENOMEM: the next KEYS_NEW tries again */
	l->ended = false;
	l->peer->keepalive_hook = keepalive_by_conn;
	l->peer->keepalive_ctx = l;
	sw->st.conns_opened++;
}

/* Requests of l that are in no connection now, waiting again. */
static void requeue(struct psd_swarm *sw, struct swarm_link *l)
{
	int li = link_index(sw, l);

	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++) {
		struct swarm_req *r = &sw->reqs[i];

		if (r->used && r->issued && r->link == li) {
			r->issued = false;
			sw->st.requests_retried++;
		}
	}
}

static bool link_has_waiting(struct psd_swarm *sw, const struct swarm_link *l)
{
	int li = link_index(sw, l);

	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++)
		if (sw->reqs[i].used && sw->reqs[i].link == li)
			return true;
	return false;
}

/*
 * A connection lives within one session: when it ends, the session goes
 * too (its keys sealed numbers of the connection's space), and a new
 * handshake starts if requests wait.
 */
static void reset_link(struct psd_swarm *sw, struct swarm_link *l,
		       uint64_t now)
{
	psd_conn_free(l->conn);
	l->conn = NULL;
	l->ended = false;
	l->peer->keepalive_hook = NULL;
	l->peer->keepalive_ctx = NULL;
	psd_peer_drop_session(l->peer);
	sw->st.conns_closed++;
	requeue(sw, l);
	if (link_has_waiting(sw, l))
		psd_peer_connect(l->peer, now);
}

static bool any_link_open(const struct psd_swarm *sw)
{
	for (size_t i = 0; i < sw->peers.n; i++)
		if (link_open(&sw->links[i]))
			return true;
	return false;
}

/* l's requests fail; "any" requests too when no peer is left to ask. */
static void fail_link(struct psd_swarm *sw, struct swarm_link *l, int err)
{
	int li = link_index(sw, l);
	bool orphaned = !any_link_open(sw);

	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++)
		if (sw->reqs[i].used && (sw->reqs[i].link == li ||
		    (orphaned && sw->reqs[i].link < 0)))
			finish(sw, &sw->reqs[i], err, NULL, 0);
}

/* ---- sending ---- */

static void drain(struct psd_swarm *sw, struct swarm_link *l, uint64_t now)
{
	uint8_t buf[PSD_DGRAM_MIN + PSD_PKT_OVERHEAD_MAX];
	size_t n;

	for (int i = 0; i < DRAIN_BURST; i++) {
		n = psd_conn_send(l->conn, buf, sizeof(buf), now);
		if (!n)
			return;
		if (psd_udp_send(sw->udp, (const struct sockaddr *)
				 &l->peer->endpoint, l->peer->endpoint_len,
				 buf, n))
			sw->st.tx_no_slot++;	/* lost: recovery resends */
	}
}

/* The link for r: its peer's, or for "any" the first open one. */
static struct swarm_link *link_for(struct psd_swarm *sw, struct swarm_req *r,
				   uint64_t now)
{
	if (r->link >= 0)
		return &sw->links[r->link];
	for (size_t i = 0; i < sw->peers.n; i++)
		if (link_open(&sw->links[i]))
			return &sw->links[i];
	for (size_t i = 0; i < sw->peers.n; i++)
		psd_peer_connect(&sw->peers.peers[i], now);
	return NULL;
}

static void issue(struct psd_swarm *sw, struct swarm_req *r, uint64_t now)
{
	struct swarm_link *l = link_for(sw, r, now);
	enum psd_req_prio prio = r->cls == PSD_SWARM_SCAVENGER ?
				 PSD_PRIO_BACKGROUND : PSD_PRIO_DEMAND;

	if (!l)
		return;
	if (!link_open(l)) {
		psd_peer_connect(l->peer, now);
		return;
	}
	/* -EBUSY, -ENOBUFS: the connection is full; try on the next pass. */
	if (psd_conn_request(l->conn, PSD_REQ_CHUNK, r->hash, 0, 0, r->length,
			     prio, &r->conn_id))
		return;
	r->link = link_index(sw, l);
	r->issued = true;
}

static bool link_ended(const struct swarm_link *l)
{
	return l->conn && (l->ended ||
			   psd_conn_state(l->conn) == PSD_CONN_CLOSED);
}

static void service(struct psd_swarm *sw, uint64_t now)
{
	for (size_t i = 0; i < sw->peers.n; i++) {
		if (!link_ended(&sw->links[i]))
			continue;
		drain(sw, &sw->links[i], now);	/* its CLOSE, if one is due */
		reset_link(sw, &sw->links[i], now);
	}
	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++)
		if (sw->reqs[i].used && !sw->reqs[i].issued)
			issue(sw, &sw->reqs[i], now);
	for (size_t i = 0; i < sw->peers.n; i++)
		if (sw->links[i].conn)
			drain(sw, &sw->links[i], now);
	psd_udp_flush(sw->udp);
}

/* ---- the peer table's output ---- */

static void peers_send(void *ctx, struct psd_peer *peer,
		       const struct sockaddr *to, socklen_t to_len,
		       const uint8_t *dgram, size_t len)
{
	struct psd_swarm *sw = ctx;

	(void)peer;
	if (psd_udp_send(sw->udp, to, to_len, dgram, len))
		sw->st.tx_no_slot++;	/* a handshake retry covers it */
}

static void peers_event(void *ctx, struct psd_peer *peer,
			enum psd_peer_event ev)
{
	struct psd_swarm *sw = ctx;
	struct swarm_link *l = link_of(sw, peer);
	uint64_t now = psd_swarm_now();

	switch (ev) {
	case PSD_PEER_KEYS_NEW:
		/* A rekey keeps the connection: its numbers go on. */
		if (!l->conn)
			open_conn(sw, l, now);
		return;
	case PSD_PEER_DEAD:
		if (l->conn)
			l->ended = true;
		return;
	case PSD_PEER_UNREACHABLE:
		fail_link(sw, l, -EHOSTUNREACH);
		return;
	}
}

static const struct psd_peers_io peers_io = {
	.send = peers_send,
	.event = peers_event,
};

/* ---- entry points ---- */

void psd_swarm_on_datagram(struct psd_swarm *sw, const uint8_t *dgram,
			   size_t len, const struct sockaddr *src,
			   socklen_t src_len)
{
	uint8_t plain[PSD_UDP_BUF_DEFAULT];
	uint64_t now = psd_swarm_now();
	struct psd_peer *peer = NULL;
	size_t plain_len;
	int r;

	sw->busy = true;
	r = psd_peers_receive(&sw->peers, dgram, len, src, src_len, plain,
			      sizeof(plain), &plain_len, &peer, now);
	if (r < 0)
		sw->st.dropped++;
	if (r == 1) {
		struct swarm_link *l = link_of(sw, peer);

		/* An all-PADDING packet sealed by the session layer before
		 * its connection existed is no packet of the connection. */
		if (l->conn && !psd_chunk_is_zero(plain, plain_len))
			psd_conn_recv_opened(l->conn, peer->last_rx_pn, plain,
					     plain_len, len, now);
	}
	service(sw, now);
	sw->busy = false;
}

static void udp_recv(void *ctx, const uint8_t *dgram, size_t len,
		     const struct sockaddr *src, socklen_t src_len)
{
	psd_swarm_on_datagram(ctx, dgram, len, src, src_len);
}

uint64_t psd_swarm_next_deadline(struct psd_swarm *sw)
{
	uint64_t t = psd_peers_next_deadline(&sw->peers), now = psd_swarm_now();

	for (size_t i = 0; i < sw->peers.n; i++) {
		uint64_t c;

		if (!sw->links[i].conn)
			continue;
		c = psd_conn_timeout(sw->links[i].conn, now);
		if (c < t)
			t = c;
	}
	return t;
}

void psd_swarm_on_timer(struct psd_swarm *sw)
{
	uint64_t now = psd_swarm_now();

	sw->busy = true;
	psd_peers_on_timer(&sw->peers, now);
	for (size_t i = 0; i < sw->peers.n; i++)
		if (sw->links[i].conn &&
		    psd_conn_timeout(sw->links[i].conn, now) <= now)
			psd_conn_on_timeout(sw->links[i].conn, now);
	service(sw, now);
	sw->busy = false;
}

int psd_swarm_request(struct psd_swarm *sw, const uint8_t *key,
		      const uint8_t hash[PSD_OBJECT_ID_LEN], uint64_t length,
		      enum psd_swarm_class cls, psd_swarm_done_fn *done,
		      void *ctx)
{
	struct psd_peer *peer = NULL;
	struct swarm_req *r = NULL;

	if (!done || !length || length > PSD_SWARM_CHUNK_MAX ||
	    (cls != PSD_SWARM_DEMAND && cls != PSD_SWARM_SCAVENGER))
		return -EINVAL;
	if (key && !(peer = psd_peers_by_key(&sw->peers, key)))
		return -ENOENT;
	if (!sw->peers.n)
		return -ENOENT;
	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX && !r; i++)
		if (!sw->reqs[i].used)
			r = &sw->reqs[i];
	if (!r)
		return -EBUSY;
	*r = (struct swarm_req){
		.used = true, .link = peer ? (int)(peer - sw->peers.peers) : -1,
		.length = length, .cls = cls, .done = done, .ctx = ctx,
	};
	memcpy(r->hash, hash, PSD_OBJECT_ID_LEN);
	/* From a done callback the entry point running services it. */
	if (!sw->busy)
		service(sw, psd_swarm_now());
	return 0;
}

int psd_swarm_add_peer(struct psd_swarm *sw, const uint8_t key[PSD_PUBKEY_LEN],
		       const struct sockaddr *addr, socklen_t len)
{
	struct psd_peer *peer;
	int err = psd_peers_add(&sw->peers, key, addr, len, &peer);

	if (err)
		return err;
	*link_of(sw, peer) = (struct swarm_link){ .sw = sw, .peer = peer };
	return 0;
}

int psd_swarm_load_peers(struct psd_swarm *sw, const struct psd_config *cfg,
			 char *err, size_t errlen)
{
	size_t n0 = sw->peers.n;
	int r = psd_peers_load(&sw->peers, cfg, err, errlen);

	if (r)
		return r;
	for (size_t i = n0; i < sw->peers.n; i++)
		sw->links[i] = (struct swarm_link){
			.sw = sw, .peer = &sw->peers.peers[i] };
	return 0;
}

int psd_swarm_new(const struct psd_swarm_config *cfg, struct psd_swarm **ret,
		  char *err, size_t errlen)
{
	struct psd_udp_config ucfg = {
		.listen = cfg->listen, .port = cfg->port,
		.gso = cfg->gso, .gro = cfg->gro, .rcvbuf = 4 << 20,
		.recv = udp_recv,
	};
	struct psd_swarm *sw;
	int r;

	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->cfg = *cfg;
	sw->rng = cfg->seed;
	r = psd_peers_init(&sw->peers, cfg->id, &peers_io, sw,
			   cfg->realtime_offset_ns, cfg->seed);
	if (r) {
		snprintf(err, errlen, "peer table: %s", strerror(-r));
		free(sw);
		return r;
	}
	ucfg.ctx = sw;
	r = psd_udp_open(&sw->udp, cfg->loop, &ucfg, err, errlen);
	if (r) {
		psd_peers_free(&sw->peers);
		free(sw);
		return r;
	}
	*ret = sw;
	return 0;
}

void psd_swarm_free(struct psd_swarm *sw)
{
	if (!sw)
		return;
	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++)
		if (sw->reqs[i].used)
			finish(sw, &sw->reqs[i], -ECANCELED, NULL, 0);
	for (size_t i = 0; i < sw->peers.n; i++)
		psd_conn_free(sw->links[i].conn);
	psd_peers_free(&sw->peers);
	psd_udp_close(sw->udp);
	sodium_memzero(sw, sizeof(*sw));
	free(sw);
}

int psd_swarm_local(const struct psd_swarm *sw, struct sockaddr_in6 *ret)
{
	return psd_udp_local(sw->udp, ret);
}

struct psd_peers *psd_swarm_peers(struct psd_swarm *sw)
{
	return &sw->peers;
}

const struct psd_swarm_stats *psd_swarm_stats(const struct psd_swarm *sw)
{
	return &sw->st;
}

struct psd_conn *psd_swarm_conn(struct psd_swarm *sw,
				const uint8_t key[PSD_PUBKEY_LEN])
{
	struct psd_peer *peer = psd_peers_by_key(&sw->peers, key);

	return peer ? link_of(sw, peer)->conn : NULL;
}
