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

/*
 * Silence on a connection with requests out before the peer is presumed
 * to have lost the session (a restart): four PTOs, within these bounds.
 */
#define SILENCE_MIN		(2 * PSD_NSEC)
#define SILENCE_MAX		PSD_REKEY_TIMEOUT

/* Datagrams one connection may queue per pass: half the socket's slots. */
#define DRAIN_BURST	(PSD_UDP_TX_SLOTS / 2)

struct swarm_req {
	bool used, issued;
	bool any;			/* any peer may answer */
	bool not_found;			/* any: a peer said NOT_FOUND */
	int link;			/* its peer; any: issued at, or -1 */
	uint64_t conn_id;		/* conn.h's request id once issued */
	/* any: the peers that cannot answer it (NOT_FOUND, unreachable) */
	uint64_t tried[PSD_PEERS_MAX / 64];
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
	bool renewing;			/* peer silent: renew()ed */
	/* An authentic packet came while renewing: the peer is alive (an
	 * outage, not a restart), so the connection may go on. */
	bool heard_while_renewing;
	unsigned int n_issued;		/* requests in the connection */
	uint64_t waiting_since;		/* n_issued last went 0 -> 1 */
};

struct psd_swarm {
	struct psd_swarm_config cfg;
	struct psd_udp *udp;
	struct psd_peers peers;
	struct swarm_link links[PSD_PEERS_MAX];
	struct swarm_req reqs[PSD_SWARM_REQUESTS_MAX];
	/* Some request may wait to be issued: service() looks for them only
	 * then, not on every datagram of a transfer whose requests are out. */
	bool waiting;
	uint64_t rng;
	bool busy;			/* inside an entry point: no re-entry */
	struct psd_swarm_stats st;
};

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * PSD_NSEC + (uint64_t)ts.tv_nsec;
}

uint64_t psd_swarm_now(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t psd_swarm_realtime_offset(void)
{
	return clock_ns(CLOCK_REALTIME) - psd_swarm_now();
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

	if (r->issued)
		sw->links[r->link].n_issued--;
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

static bool tried(const struct swarm_req *r, size_t li)
{
	return r->tried[li / 64] >> (li % 64) & 1;
}

/* An "any" request may still go to a peer it has not tried. */
static bool untried_left(const struct psd_swarm *sw, const struct swarm_req *r)
{
	for (size_t i = 0; i < sw->peers.n; i++)
		if (!tried(r, i))
			return true;
	return false;
}

/*
 * Peer li cannot answer the "any" request r (err: -ENOENT, it said
 * NOT_FOUND; else unreachable): never asked again for it, r waits for
 * another peer, or fails once every peer was tried: -ENOENT if one said
 * NOT_FOUND. A request issued elsewhere stays there.
 */
static void rule_out(struct psd_swarm *sw, struct swarm_req *r, size_t li,
		     int err)
{
	bool was_there = r->issued && r->link == (int)li;

	r->tried[li / 64] |= 1ull << (li % 64);
	if (err == -ENOENT)
		r->not_found = true;
	if (r->issued && !was_there)
		return;
	if (was_there) {
		sw->links[li].n_issued--;
		r->issued = false;
		r->link = -1;
		sw->waiting = true;
	}
	if (!untried_left(sw, r))
		finish(sw, r, r->not_found ? -ENOENT : err, NULL, 0);
	else if (was_there)
		sw->st.requests_rerouted++;
}

static void on_not_found(void *ctx, uint64_t id)
{
	struct swarm_link *l = ctx;
	struct swarm_req *r = req_by_conn_id(l->sw, l, id);

	if (!r)
		return;
	if (r->any)
		rule_out(l->sw, r, (size_t)link_index(l->sw, l), -ENOENT);
	else
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
		.cc = sw->cfg.cc,
		/* The socket never fragments (udp.c): probe up to Ethernet's. */
		.max_dgram = PSD_DGRAM_MAX,
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
			sw->waiting = true;
			if (r->any)
				r->link = -1;	/* any open peer will do */
			sw->st.requests_retried++;
		}
	}
	l->n_issued = 0;
}

static bool link_has_waiting(struct psd_swarm *sw, const struct swarm_link *l)
{
	int li = link_index(sw, l);

	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++)
		if (sw->reqs[i].used && sw->reqs[i].link == li)
			return true;
	return false;
}

/* The connection goes; its unanswered requests wait again. */
static void end_conn(struct psd_swarm *sw, struct swarm_link *l)
{
	psd_conn_free(l->conn);
	l->conn = NULL;
	l->ended = false;
	l->peer->keepalive_hook = NULL;
	l->peer->keepalive_ctx = NULL;
	sw->st.conns_closed++;
	requeue(sw, l);
}

/*
 * A connection lives within one session: when it ends, the session goes
 * too (its keys sealed numbers of the connection's space), and a new
 * handshake starts if requests wait.
 */
static void reset_link(struct psd_swarm *sw, struct swarm_link *l,
		       uint64_t now)
{
	end_conn(sw, l);
	l->renewing = false;
	psd_peer_drop_session(l->peer);
	if (link_has_waiting(sw, l))
		psd_peer_connect(l->peer, now);
}

/*
 * A new session brings a new connection (docs/protocol.md, "Restarts")
 * when this end renewed it as initiator (the peer had gone silent) and
 * heard nothing authentic from it meanwhile (a restarted peer cannot
 * seal under the old keys; one that answers was only cut off), or
 * when the numbers say so (peer.h): a connection going on across a rekey
 * numbers on, a restarted peer's new one counts from 0. A renewing end
 * whose initiation lost to the peer's (crossing) is a responder like any.
 */
static bool wants_new_conn(const struct swarm_link *l)
{
	const struct psd_conn_stats *st = psd_conn_stats(l->conn);

	if (l->renewing && l->peer->current.keys.initiator &&
	    !l->heard_while_renewing)
		return true;
	return psd_peer_conn_starts_over(l->peer, st->tx_packets ?
					 st->last_pn + 1 : 0);
}

/*
 * The other end of the connection is gone (or starts anew): a new one
 * under the new keys takes the requests. The old keys are wiped, so the
 * old connection's late packets cannot reach the new one.
 */
static void replace_conn(struct psd_swarm *sw, struct swarm_link *l,
			 uint64_t now)
{
	end_conn(sw, l);
	psd_peer_forget_previous(l->peer);
	open_conn(sw, l, now);
}

/*
 * When a link with requests out is presumed dead: nothing authentic
 * from the peer for four PTOs (within SILENCE_MIN..SILENCE_MAX) since
 * the later of its last packet and the requests going out.
 */
static uint64_t presumed_dead_at(const struct swarm_link *l)
{
	uint64_t since = l->peer->last_rx_ns, wait;

	if (!link_open(l) || l->renewing || !l->n_issued)
		return UINT64_MAX;
	if (since < l->waiting_since)
		since = l->waiting_since;
	wait = 4 * psd_recovery_pto(psd_conn_recovery(l->conn));
	if (wait < SILENCE_MIN)
		wait = SILENCE_MIN;
	if (wait > SILENCE_MAX)
		wait = SILENCE_MAX;
	return since + wait;
}

/*
 * The peer stopped answering: it probably restarted and dropped our
 * session, and would drop its packets until the idle timeout. A new
 * handshake now, as WireGuard's "no reply to data" timer does; the
 * connection goes on meanwhile, and is replaced once keys are new.
 */
static void renew_if_silent(struct psd_swarm *sw, struct swarm_link *l,
			    uint64_t now)
{
	if (presumed_dead_at(l) > now)
		return;
	l->renewing = true;
	l->heard_while_renewing = false;
	sw->st.sessions_renewed++;
	psd_peer_renew(l->peer, now);
}

/* l's requests fail; "any" requests go on to the peers left, if any. */
static void fail_link(struct psd_swarm *sw, struct swarm_link *l, int err)
{
	int li = link_index(sw, l);

	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++) {
		struct swarm_req *r = &sw->reqs[i];

		if (r->used && r->any)
			rule_out(sw, r, (size_t)li, err);
		else if (r->used && r->link == li)
			finish(sw, r, err, NULL, 0);
	}
}

/* ---- sending ---- */

static void drain(struct psd_swarm *sw, struct swarm_link *l, uint64_t now)
{
	uint8_t buf[PSD_DGRAM_MAX + PSD_PKT_OVERHEAD_MAX];
	size_t n;

	for (int i = 0; i < DRAIN_BURST; i++) {
		n = psd_conn_send(l->conn, buf, sizeof(buf), now);
		if (!n)
			return;
		if ((psd_conn_sent_probe(l->conn) ? psd_udp_send_alone :
		     psd_udp_send)(sw->udp, (const struct sockaddr *)
				   &l->peer->endpoint, l->peer->endpoint_len,
				   buf, n))
			sw->st.tx_no_slot++;	/* lost: recovery resends */
	}
}

/*
 * The link for r: its peer's, or for "any" the first open one it has not
 * tried; with none open, every untried peer is asked for a session.
 */
static struct swarm_link *link_for(struct psd_swarm *sw, struct swarm_req *r,
				   uint64_t now)
{
	if (!r->any)
		return &sw->links[r->link];
	for (size_t i = 0; i < sw->peers.n; i++)
		if (!tried(r, i) && link_open(&sw->links[i]))
			return &sw->links[i];
	for (size_t i = 0; i < sw->peers.n; i++)
		if (!tried(r, i))
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
	if (l->n_issued++ == 0)
		l->waiting_since = now;
}

static bool link_ended(const struct swarm_link *l)
{
	return l->conn && (l->ended ||
			   psd_conn_state(l->conn) == PSD_CONN_CLOSED);
}

static void issue_waiting(struct psd_swarm *sw, uint64_t now)
{
	bool left = false;

	/* A request put back while this runs sets waiting again. */
	sw->waiting = false;
	for (size_t i = 0; i < PSD_SWARM_REQUESTS_MAX; i++) {
		struct swarm_req *r = &sw->reqs[i];

		if (!r->used || r->issued)
			continue;
		issue(sw, r, now);
		left |= r->used && !r->issued;
	}
	sw->waiting |= left;
}

static void service(struct psd_swarm *sw, uint64_t now)
{
	for (size_t i = 0; i < sw->peers.n; i++) {
		if (!link_ended(&sw->links[i]))
			continue;
		drain(sw, &sw->links[i], now);	/* its CLOSE, if one is due */
		reset_link(sw, &sw->links[i], now);
	}
	if (sw->waiting)
		issue_waiting(sw, now);
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
		/* A rekey keeps the connection (its numbers go on); a
		 * session after a restart or a renewal does not. */
		if (!l->conn)
			open_conn(sw, l, now);
		else if (wants_new_conn(l))
			replace_conn(sw, l, now);
		l->renewing = false;
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
		l->heard_while_renewing |= l->renewing;
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
		c = presumed_dead_at(&sw->links[i]);
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
	for (size_t i = 0; i < sw->peers.n; i++)
		renew_if_silent(sw, &sw->links[i], now);
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
		.used = true, .any = !peer,
		.link = peer ? (int)(peer - sw->peers.peers) : -1,
		.length = length, .cls = cls, .done = done, .ctx = ctx,
	};
	memcpy(r->hash, hash, PSD_OBJECT_ID_LEN);
	sw->waiting = true;
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
