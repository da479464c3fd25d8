// SPDX-License-Identifier: GPL-2.0
/*
 * A connection's send side (conn.h): conn_plan() decides what may leave
 * and when (amplification limit, congestion window, pacer, ACK delay);
 * psd_conn_send() builds that packet -- ACK, MAX_DATA, MAX_REQUEST_DATA,
 * queued frames, new DATA, a PING if nothing else asks for an ACK -- or a
 * path MTU probe, pads an ack-eliciting one to its size (1200 bytes, or
 * what pmtu.h found; ACK-only packets go as they are), seals it and
 * records it with loss recovery.
 */
#include <errno.h>
#include <string.h>

#include "conn_internal.h"

/* ---- sending ------------------------------------------------------------- */

static bool amplification_blocked(const struct psd_conn *c)
{
	return !c->validated && c->st.tx_bytes + PSD_DGRAM_MIN > 3 * c->st.rx_bytes;
}

static bool frame_still_wanted(struct psd_conn *c,
			       const struct psd_sent_frame *f)
{
	struct out_req *o;
	struct in_req *r;

	switch (f->type) {
	case PSD_FRAME_DATA:
		r = conn_find_in(c, f->request_id);
		return r && !r->not_found;
	case PSD_FRAME_REQUEST:
		o = conn_find_out(c, f->request_id);
		return o && !o->cancelled;
	case PSD_FRAME_CANCEL:
		o = conn_find_out(c, f->request_id);
		return o && o->cancelled;
	case PSD_FRAME_NOT_FOUND:
		r = conn_find_in(c, f->request_id);
		return r && r->not_found;
	}
	return false;
}

/* Drops queued frames whose request is gone. */
static void queue_drop(struct psd_conn *c, const struct psd_sent_frame *f)
{
	struct in_req *r;

	if (f->type == PSD_FRAME_DATA) {
		r = conn_find_in(c, f->request_id);
		if (r) {
			r->queued--;
			conn_maybe_finish_in(c, r);
		}
	}
}

static void purge_queue_front(struct psd_conn *c)
{
	while (c->q.n && !frame_still_wanted(c, &c->q.f[c->q.head])) {
		struct psd_sent_frame f = conn_queue_pop(&c->q);

		queue_drop(c, &f);
	}
}

/*
 * How far a response has come, in request windows: a large response drops
 * back a step after each window it sent, so requests behind it get their
 * turn instead of waiting for all of it (round robin in windows among the
 * large, oldest first among the rest).
 */
static uint64_t serve_level(const struct in_req *r)
{
	return (r->next - r->f.offset) / PSD_REQUEST_WINDOW;
}

/* The served request to cut new DATA from: by class, level, then age. */
static struct in_req *next_to_serve(struct psd_conn *c)
{
	struct in_req *best = NULL;
	unsigned int i;

	if (c->st.tx_data_bytes >= c->tx_max_data)
		return NULL;
	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++) {
		struct in_req *r = &c->in[i];

		if (!r->used || r->not_found || r->next >= r->credit)
			continue;		/* done, or out of its credit */
		if (!best || r->f.prio < best->f.prio ||
		    (r->f.prio == best->f.prio &&
		     (serve_level(r) < serve_level(best) ||
		      (serve_level(r) == serve_level(best) &&
		       r->f.request_id < best->f.request_id))))
			best = r;
	}
	return best;
}

/*
 * The size of the path MTU probe to send next, 0: none. Probes start once
 * the peer acknowledged something (the path works at the base size) and
 * its address is proven; the probes of a PTO go first.
 */
static size_t probe_due(const struct psd_conn *c)
{
	if (c->state != PSD_CONN_OPEN || !c->validated || !c->rec.any_acked ||
	    c->probes)
		return 0;
	return psd_pmtu_probe_size(&c->pmtu);
}

/*
 * The size the next ack-eliciting packet is built for: a probe's, the
 * base size for the probes of a PTO (after a tail loss they are what
 * tells a path that shrank from one that is down: pmtu.h), else the size
 * the path carries.
 */
static size_t eliciting_size(const struct psd_conn *c)
{
	size_t probe = probe_due(c);

	if (probe)
		return probe;
	return c->probes ? PSD_DGRAM_MIN : psd_pmtu_size(&c->pmtu);
}

static bool has_eliciting_work(struct psd_conn *c)
{
	purge_queue_front(c);
	return c->probes || probe_due(c) || c->ping_due || c->max_data_due ||
	       c->request_credit_due || c->q.n || next_to_serve(c);
}

static bool ack_owed(const struct psd_conn *c)
{
	return c->unacked_eliciting > 0;
}

/* What may be sent at now (*ret_kind) or, if nothing, when it might be. */
uint64_t conn_plan(struct psd_conn *c, uint64_t now,
		     enum plan_kind *ret_kind)
{
	uint64_t ack_at = NEVER, elicit_at = NEVER, cwnd;
	size_t size = eliciting_size(c);
	bool work;

	*ret_kind = PLAN_NONE;
	if (c->state == PSD_CONN_DRAINING || c->state == PSD_CONN_CLOSED)
		return NEVER;
	if (amplification_blocked(c))
		return NEVER;		/* until the peer sends more */
	if (c->close_due) {
		*ret_kind = PLAN_CLOSE;
		return now;
	}
	if (c->state != PSD_CONN_OPEN)
		return NEVER;
	if (ack_owed(c))
		ack_at = c->ack_now ? now : c->ack_deadline;
	work = has_eliciting_work(c);
	conn_cc_update(c, now);
	cwnd = conn_cc_window(c);
	if (work && psd_recovery_can_send(&c->rec)) {
		if (c->probes)
			elicit_at = now;
		else if (c->rec.bytes_in_flight + size <= cwnd)
			elicit_at = psd_pacer_next(&c->pacer, now, size);
	} else if (!work && c->rec.bytes_in_flight + size <= cwnd) {
		/* Room to send and nothing to: rate samples now measure us. */
		psd_recovery_on_app_limited(&c->rec);
	}
	if (elicit_at <= now)
		*ret_kind = PLAN_ELICITING;
	else if (ack_at <= now)
		*ret_kind = PLAN_ACK_ONLY;
	return elicit_at < ack_at ? elicit_at : ack_at;
}

struct builder {
	uint8_t p[PSD_DGRAM_MAX];	/* payload and padding: a probe's too */
	size_t len;
	size_t dgram;			/* the datagram size it is built for */
	size_t cap;			/* payload room: dgram's, worst header */
	bool probe;			/* a path MTU probe */
	struct psd_sent_frame frames[PSD_SENT_FRAMES_MAX];
	unsigned int n_frames;
	bool eliciting, has_ack;
};

static bool add_frame(struct builder *b, const struct psd_frame *f)
{
	size_t n = psd_frame_encode(f, b->p + b->len, b->cap - b->len);

	if (n == 0)
		return false;
	b->len += n;
	if (psd_frame_ack_eliciting(f->type))
		b->eliciting = true;
	return true;
}

static void record(struct builder *b, const struct psd_sent_frame *f)
{
	b->frames[b->n_frames++] = *f;
}

static bool frames_full(const struct builder *b)
{
	return b->n_frames == PSD_SENT_FRAMES_MAX;
}

static void add_ack(struct psd_conn *c, struct builder *b, uint64_t now)
{
	struct psd_frame f = { .type = PSD_FRAME_ACK };
	uint64_t delay = now > c->largest_rx_time ? now - c->largest_rx_time : 0;

	if (!c->any_rx || !c->ack_new)
		return;
	psd_ranges_to_ack(&c->rx_pns, PSD_ACK_RANGES_MAX, delay / 1000, &f.ack);
	/* Fewer ranges until it fits (it always does with one). */
	while (!add_frame(b, &f) && f.ack.n_ranges > 1)
		f.ack.n_ranges /= 2;
	b->has_ack = true;
}

static void add_request(struct psd_conn *c, struct builder *b,
			const struct psd_sent_frame *qf, bool *ret_fit)
{
	struct psd_frame f = { .type = PSD_FRAME_REQUEST };
	struct out_req *o = conn_find_out(c, qf->request_id);

	f.req = o->f;
	*ret_fit = add_frame(b, &f);
	if (*ret_fit)
		o->request_queued = false;
}

/*
 * Reads up to *len bytes of r at off and adds them as DATA (*len: what
 * fitted). 1 if added, 0 if no room; a failed read closes the connection
 * (-EIO): the server cannot keep its promise.
 */
static int add_data(struct psd_conn *c, struct builder *b, struct in_req *r,
		    uint64_t off, size_t *len, uint64_t now)
{
	uint8_t bytes[PAYLOAD_CAP];
	size_t room = b->cap - b->len, over;
	struct psd_frame f = { .type = PSD_FRAME_DATA };
	struct psd_sent_frame sf = { .type = PSD_FRAME_DATA,
				     .request_id = r->f.request_id,
				     .offset = off };

	over = psd_frame_data_overhead(r->f.request_id, off, *len);
	if (room <= over)
		return 0;
	if (*len > room - over)
		*len = room - over;
	if (c->cfg.app->read(c->cfg.app_ctx, &r->f, off, bytes, *len)) {
		conn_violation(c, PSD_CLOSE_INTERNAL, now,
			  "reading request %llu at %llu failed",
			  (unsigned long long)r->f.request_id,
			  (unsigned long long)off);
		return -EIO;
	}
	f.data = (struct psd_frame_data){ .request_id = r->f.request_id,
					  .offset = off, .len = *len,
					  .bytes = bytes };
	if (!add_frame(b, &f))
		return 0;
	sf.len = (uint32_t)*len;
	record(b, &sf);
	r->frames_out++;
	return 1;
}

/* A queued DATA frame, split if only its head fits; false when b is full. */
static bool add_queued_data(struct psd_conn *c, struct builder *b,
			    struct psd_sent_frame *qf, uint64_t now)
{
	struct in_req *r = conn_find_in(c, qf->request_id);
	size_t len = qf->len;
	int added = add_data(c, b, r, qf->offset, &len, now);

	if (added < 0)
		return false;
	if (added == 0) {
		conn_queue_push(&c->q, qf, true);
		return false;
	}
	c->st.tx_rtx_bytes += len;
	if (len == qf->len) {
		r->queued--;
		return true;
	}
	/* The rest stays at the head of the queue. */
	qf->offset += len;
	qf->len -= (uint32_t)len;
	conn_queue_push(&c->q, qf, true);
	return false;
}

/* One queued frame into b; false when b is full (the frame stays queued). */
static bool add_queued(struct psd_conn *c, struct builder *b, uint64_t now)
{
	struct psd_sent_frame qf = conn_queue_pop(&c->q);
	struct psd_frame f = { .type = qf.type, .request_id = qf.request_id };
	bool fit;

	if (!frame_still_wanted(c, &qf)) {
		queue_drop(c, &qf);
		return true;
	}
	if (qf.type == PSD_FRAME_DATA)
		return add_queued_data(c, b, &qf, now);
	if (qf.type == PSD_FRAME_REQUEST)
		add_request(c, b, &qf, &fit);
	else
		fit = add_frame(b, &f);
	if (!fit) {
		conn_queue_push(&c->q, &qf, true);
		return false;
	}
	record(b, &qf);
	return true;
}

static void add_new_data(struct psd_conn *c, struct builder *b, uint64_t now)
{
	struct in_req *r;

	while (c->state == PSD_CONN_OPEN && !frames_full(b) &&
	       (r = next_to_serve(c))) {
		uint64_t left = r->credit - r->next;
		uint64_t credit = c->tx_max_data - c->st.tx_data_bytes;
		size_t len = (size_t)(left < credit ? left : credit);

		if (add_data(c, b, r, r->next, &len, now) <= 0)
			return;
		r->next += len;
		c->st.tx_data_bytes += len;
	}
}

/* MAX_REQUEST_DATA for the responses whose credit moved, while they fit. */
static void add_request_credits(struct psd_conn *c, struct builder *b)
{
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX && c->request_credit_due &&
		    !frames_full(b); i++) {
		struct out_req *o = &c->out[i];
		struct psd_frame f = { .type = PSD_FRAME_MAX_REQUEST_DATA };
		struct psd_sent_frame sf = { .type = PSD_FRAME_MAX_REQUEST_DATA };

		if (!o->used || !o->credit_due)
			continue;
		f.max_req = (struct psd_frame_max_req){
			.request_id = o->f.request_id, .maximum = o->credit };
		if (!add_frame(b, &f))
			return;
		sf.request_id = o->f.request_id;
		sf.offset = o->credit;
		record(b, &sf);
		o->credit_due = false;
		c->request_credit_due--;
		if (o->credit > o->credit_sent)
			o->credit_sent = o->credit;
	}
}

static void build_eliciting(struct psd_conn *c, struct builder *b,
			    uint64_t now)
{
	add_ack(c, b, now);
	if (c->max_data_due) {
		struct psd_frame f = { .type = PSD_FRAME_MAX_DATA,
				       .max_data = c->rx_max_data };
		struct psd_sent_frame sf = { .type = PSD_FRAME_MAX_DATA,
					     .offset = c->rx_max_data };

		if (add_frame(b, &f)) {
			record(b, &sf);
			c->max_data_due = false;
			if (c->rx_max_data > c->rx_max_data_sent)
				c->rx_max_data_sent = c->rx_max_data;
		}
	}
	add_request_credits(c, b);
	while (c->q.n && !frames_full(b) && c->state == PSD_CONN_OPEN &&
	       add_queued(c, b, now))
		;
	add_new_data(c, b, now);
	if (!b->eliciting) {
		struct psd_frame ping = { .type = PSD_FRAME_PING };

		add_frame(b, &ping);
	}
}

static void build_close(struct psd_conn *c, struct builder *b, uint64_t now)
{
	struct psd_frame f = { .type = PSD_FRAME_CLOSE };

	add_ack(c, b, now);
	f.close = (struct psd_frame_close){
		.code = c->close_code,
		.reason_len = strlen(c->close_reason),
		.reason = (const uint8_t *)c->close_reason };
	add_frame(b, &f);
	c->close_due = false;
}

/* Under the session's keys (seal hook) or the fixed ones. */
static int seal_packet(struct psd_conn *c, uint64_t pn, const uint8_t *p,
		       size_t len, uint8_t *buf, size_t cap, size_t *ret_len,
		       uint64_t now)
{
	if (c->cfg.seal)
		return c->cfg.seal(c->cfg.seal_ctx, pn, c->rec.largest_acked,
				   c->rec.any_acked, p, len, buf, cap,
				   ret_len, now);
	return psd_packet_seal(&c->cfg.tx_key, c->cfg.peer_cid, pn,
			       c->rec.largest_acked, c->rec.any_acked, p, len,
			       buf, cap, ret_len);
}

/*
 * The payload size that makes a packet with a hdr-byte header the size b
 * is built for: a probe exactly that size (at least, after the seal hook:
 * it proves the size); a larger packet PSD_PMTU_PN_SLACK bytes under it,
 * so it stays within the size a probe proved whatever packet number
 * encoding the seal hook picks, and all such packets are one size (GSO);
 * never below PSD_DGRAM_MIN (the receiver drops less).
 */
static size_t body_len(const struct builder *b, size_t hdr)
{
	size_t base = PSD_DGRAM_MIN - hdr - PSD_AEAD_TAG_LEN, body;

	if (b->probe)
		return b->dgram - hdr - PSD_AEAD_TAG_LEN;
	body = b->dgram - PSD_PMTU_PN_SLACK - hdr - PSD_AEAD_TAG_LEN;
	return body > base ? body : base;
}

/*
 * Seals b as the next packet into buf. Cannot fail with a payload that fits
 * and a ring that bounds what is unacknowledged; if it did, the frames in b
 * would be lost untracked, so the connection closes.
 */
static size_t seal(struct psd_conn *c, struct builder *b, uint8_t *buf,
		   size_t cap, uint64_t now)
{
	uint64_t pn = psd_recovery_take_pn(&c->rec);
	unsigned int pn_len = psd_pn_encode_len(pn, c->rec.largest_acked,
						c->rec.any_acked);
	size_t hdr = 1 + PSD_PKT_CID_LEN + pn_len, n = 0;
	size_t body = body_len(b, hdr);
	struct psd_frame pad = { .type = PSD_FRAME_PADDING };

	/* Only ack-eliciting packets are padded: they are what proves the
	 * path carries the size. A packet of ACKs (or CLOSE) goes out as
	 * small as it is: on the receiving side of a transfer that is one
	 * packet in two, and padding it would double that side's sealing. */
	if (b->len < body && b->eliciting) {
		pad.padding_len = body - b->len;
		memset(b->p + b->len, 0, pad.padding_len);
		b->len = body;
	}
	if (seal_packet(c, pn, b->p, b->len, buf, cap, &n, now)) {
		conn_violation(c, PSD_CLOSE_INTERNAL, now,
			  "sealing packet %llu failed", (unsigned long long)pn);
		return 0;
	}
	if (b->probe) {
		psd_recovery_on_sent_probe(&c->rec, pn, now, n);
		psd_pmtu_on_probe_sent(&c->pmtu, b->dgram);
	} else {
		psd_recovery_on_sent(&c->rec, pn, now, n, b->eliciting,
				     b->frames, b->n_frames);
	}
	c->st.last_pn = pn;
	c->st.tx_packets++;
	c->st.tx_bytes += n;
	return n;
}

static void after_send(struct psd_conn *c, const struct builder *b,
		       size_t n, uint64_t now)
{
	if (b->has_ack) {
		c->ack_new = false;
		c->ack_now = false;
		c->unacked_eliciting = 0;
	}
	if (!b->eliciting)
		return;
	c->last_tx_eliciting = now;
	c->ping_due = false;
	if (c->probes)
		c->probes--;
	if (c->scavenging)
		c->st.tx_scavenger++;
	psd_pacer_set(&c->pacer, conn_cc_pacing_rate(c),
		      PSD_CC_INITIAL_WINDOW(PSD_DGRAM_MIN), now);
	psd_pacer_on_sent(&c->pacer, now, n);
}

/* Sizes b for dgram bytes on the wire: room for frames under any header. */
static void size_for(struct builder *b, size_t dgram, bool probe)
{
	b->dgram = dgram;
	b->cap = dgram - PSD_PKT_OVERHEAD_MAX;
	if (dgram > PSD_DGRAM_MIN)
		b->cap -= PSD_PMTU_PN_SLACK;
	b->probe = probe;
}

/* A path MTU probe: PING and PADDING only, so losing it loses nothing. */
static void build_probe(struct builder *b)
{
	struct psd_frame ping = { .type = PSD_FRAME_PING };

	add_frame(b, &ping);
}

size_t psd_conn_send(struct psd_conn *c, uint8_t *buf, size_t cap,
		     uint64_t now)
{
	struct builder b = { .len = 0 };
	enum plan_kind kind;
	size_t n;

	if (cap < PSD_DGRAM_MIN)
		return 0;
	/* What does not fit buf is not worth searching for. */
	psd_pmtu_limit(&c->pmtu, cap - PSD_PMTU_PN_SLACK, now);
	conn_pmtu_sync(c);
	size_for(&b, PSD_DGRAM_MIN, false);
	conn_plan(c, now, &kind);
	switch (kind) {
	case PLAN_NONE:
		if (amplification_blocked(c) && c->state == PSD_CONN_OPEN)
			c->st.amplification_blocked++;
		return 0;
	case PLAN_CLOSE:
		build_close(c, &b, now);
		break;
	case PLAN_ELICITING:
		size_for(&b, eliciting_size(c), probe_due(c) != 0);
		if (b.probe)
			build_probe(&b);
		else
			build_eliciting(c, &b, now);
		break;
	case PLAN_ACK_ONLY:
		add_ack(c, &b, now);
		break;
	}
	n = seal(c, &b, buf, cap, now);
	if (n)
		after_send(c, &b, n, now);
	c->sent_probe = n && b.probe;
	return n;
}

