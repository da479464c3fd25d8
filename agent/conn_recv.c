// SPDX-License-Identifier: GPL-2.0
/*
 * A connection's receive side (conn.h): a datagram is checked (size,
 * connection id), opened, deduplicated by packet number, and its frames
 * handled in order; any frame that breaks the protocol closes the
 * connection with a reason naming it. Responses are reassembled per
 * request and handed to the application whole.
 */
#include <errno.h>
#include <string.h>

#include "conn_internal.h"

/* ---- receiving ------------------------------------------------------------ */

static void grant_credit(struct psd_conn *c, size_t len)
{
	uint64_t target;

	c->rx_data += len;
	target = c->rx_data + c->cfg.max_data_window;
	/* Announce in steps of half a window, not per packet. */
	if (target >= c->rx_max_data + c->cfg.max_data_window / 2) {
		c->rx_max_data = target;
		c->max_data_due = true;
	}
}

/* Moves a request's credit a window past what arrived, in half windows. */
static void grant_request_credit(struct psd_conn *c, struct out_req *o)
{
	uint64_t end = o->f.offset + o->f.length;
	uint64_t target = o->f.offset + o->received + PSD_REQUEST_WINDOW;

	if (target > end)
		target = end;
	if (target <= o->credit ||
	    (target < o->credit + PSD_REQUEST_WINDOW / 2 && target < end))
		return;
	o->credit = target;
	if (!o->credit_due) {
		o->credit_due = true;
		c->request_credit_due++;
	}
}

static int on_data(struct psd_conn *c, const struct psd_frame_data *d,
		   uint64_t now)
{
	struct out_req *o = conn_find_out(c, d->request_id);
	const struct psd_frame_request *f;
	uint64_t fresh;

	c->st.rx_data_bytes += d->len;
	if (!o) {
		if (d->request_id >= c->next_req_id)
			return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION, now,
					 "DATA for request %llu never made",
					 (unsigned long long)d->request_id);
		return 0;		/* a late copy for a finished request */
	}
	if (o->cancelled)
		return 0;
	f = &o->f;
	if (d->offset < f->offset ||
	    d->offset + d->len > f->offset + f->length)
		return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION, now,
				 "DATA %llu+%zu outside request %llu (%llu+%llu)",
				 (unsigned long long)d->offset, d->len,
				 (unsigned long long)f->request_id,
				 (unsigned long long)f->offset,
				 (unsigned long long)f->length);
	if (d->offset + d->len > o->credit_sent)
		return conn_violation(c, PSD_CLOSE_LIMIT, now,
				 "DATA %llu+%zu past request %llu's credit %llu",
				 (unsigned long long)d->offset, d->len,
				 (unsigned long long)f->request_id,
				 (unsigned long long)o->credit_sent);
	/* Only new bytes use credit: a retransmission repeats some. */
	fresh = d->len - psd_ranges_count_in(&o->got, d->offset,
					     d->offset + d->len - 1);
	if (c->rx_data + fresh > c->rx_max_data_sent)
		return conn_violation(c, PSD_CLOSE_LIMIT, now,
				 "DATA past the credit: %llu new bytes, MAX_DATA %llu",
				 (unsigned long long)(c->rx_data + fresh),
				 (unsigned long long)c->rx_max_data_sent);
	memcpy(o->buf + (d->offset - f->offset), d->bytes, d->len);
	if (psd_ranges_add(&o->got, d->offset, d->offset + d->len - 1))
		return conn_violation(c, PSD_CLOSE_LIMIT, now,
				 "request %llu: DATA in more than %llu pieces",
				 (unsigned long long)f->request_id,
				 (unsigned long long)RX_DATA_RANGES(f->length));
	grant_credit(c, fresh);
	o->received += fresh;
	grant_request_credit(c, o);
	if (psd_ranges_is_exactly(&o->got, f->offset,
				  f->offset + f->length - 1)) {
		c->st.delivered_bytes += f->length;
		c->cfg.app->on_response(c->cfg.app_ctx, f->request_id, o->buf,
					(size_t)f->length);
		conn_free_out(c, o);
	}
	return 0;
}

static int on_not_found(struct psd_conn *c, uint64_t id, uint64_t now)
{
	struct out_req *o = conn_find_out(c, id);

	if (!o) {
		if (id >= c->next_req_id)
			return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION, now,
					 "NOT_FOUND for request %llu never made",
					 (unsigned long long)id);
		return 0;
	}
	if (!o->cancelled && c->cfg.app->on_not_found)
		c->cfg.app->on_not_found(c->cfg.app_ctx, id);
	if (!o->cancelled)
		conn_free_out(c, o);
	return 0;
}

static struct in_req *free_in_slot(struct psd_conn *c)
{
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++)
		if (!c->in[i].used)
			return &c->in[i];
	return NULL;
}

static int on_request(struct psd_conn *c, const struct psd_frame_request *f,
		      uint64_t now)
{
	struct psd_sent_frame nf = { .type = PSD_FRAME_NOT_FOUND,
				     .request_id = f->request_id };
	struct in_req *r;

	if (!c->cfg.server)
		return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION, now,
				 "REQUEST %llu to a client",
				 (unsigned long long)f->request_id);
	if (conn_find_in(c, f->request_id) ||
	    psd_ranges_contains(&c->served_ids, f->request_id))
		return 0;		/* a retransmitted copy */
	r = free_in_slot(c);
	if (!r)
		return conn_violation(c, PSD_CLOSE_LIMIT, now,
				 "more than %u requests at once",
				 PSD_CONN_REQUESTS_MAX);
	*r = (struct in_req){ .used = true, .f = *f, .next = f->offset,
			      .credit = conn_request_initial_credit(f) };
	if (c->cfg.app->on_request(c->cfg.app_ctx, f) == 0)
		return 0;
	r->not_found = true;
	conn_queue_push(&c->q, &nf, false);
	return 0;
}

static int on_max_request_data(struct psd_conn *c,
			       const struct psd_frame_max_req *m, uint64_t now)
{
	struct in_req *r = conn_find_in(c, m->request_id);

	if (!r)
		return 0;		/* finished, or never served */
	if (m->maximum > r->f.offset + r->f.length)
		return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION, now,
				 "MAX_REQUEST_DATA %llu past the end of request %llu (%llu+%llu)",
				 (unsigned long long)m->maximum,
				 (unsigned long long)m->request_id,
				 (unsigned long long)r->f.offset,
				 (unsigned long long)r->f.length);
	if (m->maximum > r->credit)
		r->credit = m->maximum;
	return 0;
}

static int on_cancel(struct psd_conn *c, uint64_t id)
{
	struct in_req *r = conn_find_in(c, id);

	/* DATA of it still queued or in flight is dropped when it comes up. */
	if (r)
		conn_finish_in(c, r);
	return 0;
}

static int on_ack(struct psd_conn *c, const struct psd_frame_ack *a,
		  uint64_t now)
{
	uint64_t bad = 0;
	int n = psd_recovery_on_ack(&c->rec, a, now, &bad);

	if (n < 0)
		return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION, now,
				 "ACK of packet %llu, never sent",
				 (unsigned long long)bad);
	/* The peer read a packet we sent to its address: it is real. */
	if (n > 0)
		c->validated = true;
	return 0;
}

static int on_close(struct psd_conn *c, const struct psd_frame_close *f,
		    uint64_t now)
{
	size_t i, n = f->reason_len;

	if (c->state == PSD_CONN_DRAINING || c->state == PSD_CONN_CLOSED)
		return 0;
	c->close_code = f->code;
	/* Keep the reason printable: it ends up in logs. */
	for (i = 0; i < n; i++) {
		uint8_t ch = f->reason[i];

		c->close_reason[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	c->close_reason[n] = '\0';
	conn_enter_closed(c, PSD_CONN_DRAINING, now);
	conn_notify_close(c, true);
	return 0;
}

static int handle_frame(struct psd_conn *c, const struct psd_frame *f,
			uint64_t now)
{
	switch (f->type) {
	case PSD_FRAME_PADDING:
	case PSD_FRAME_PING:
		return 0;
	case PSD_FRAME_ACK:
		return on_ack(c, &f->ack, now);
	case PSD_FRAME_REQUEST:
		return on_request(c, &f->req, now);
	case PSD_FRAME_DATA:
		return on_data(c, &f->data, now);
	case PSD_FRAME_CANCEL:
		return on_cancel(c, f->request_id);
	case PSD_FRAME_NOT_FOUND:
		return on_not_found(c, f->request_id, now);
	case PSD_FRAME_MAX_REQUEST_DATA:
		return on_max_request_data(c, &f->max_req, now);
	case PSD_FRAME_MAX_DATA:
		if (f->max_data > c->tx_max_data)
			c->tx_max_data = f->max_data;
		c->st.tx_max_data = c->tx_max_data;
		return 0;
	case PSD_FRAME_CLOSE:
		return on_close(c, &f->close, now);
	}
	return 0;
}

/* Parses and handles every frame; *ret_eliciting if any asks for an ACK. */
static int handle_payload(struct psd_conn *c, const uint8_t *p, size_t len,
			  uint64_t now, bool *ret_eliciting)
{
	struct psd_frame f;
	size_t pos = 0, used;
	int err;

	*ret_eliciting = false;
	while (pos < len && c->state == PSD_CONN_OPEN) {
		err = psd_frame_parse(p + pos, len - pos, &f, &used);
		if (err == -EPROTO)
			return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION,
					      now, "unknown frame type 0x%02x at payload offset %zu",
					      p[pos], pos);
		if (err)
			return conn_violation(c, PSD_CLOSE_PROTOCOL_VIOLATION,
					      now, "malformed %s frame at payload offset %zu",
					      psd_frame_name(p[pos]), pos);
		if (psd_frame_ack_eliciting(f.type))
			*ret_eliciting = true;
		err = handle_frame(c, &f, now);
		if (err)
			return err;
		pos += used;
	}
	return 0;
}

static void note_received(struct psd_conn *c, uint64_t pn, bool eliciting,
			  uint64_t now)
{
	/* A gap before pn, or pn filling an old gap: ACK at once (RFC 9000 13.2.1). */
	if (c->any_rx && pn != c->largest_rx + 1)
		c->ack_now = true;
	psd_ranges_add(&c->rx_pns, pn, pn);
	if (!c->any_rx || pn > c->largest_rx) {
		c->largest_rx = pn;
		c->largest_rx_time = now;
	}
	c->any_rx = true;
	c->ack_new = true;
	c->last_rx = now;
	if (!eliciting)
		return;
	c->stall_backoff = 0;
	if (c->unacked_eliciting++ == 0)
		c->ack_deadline = now + PSD_MAX_ACK_DELAY;
	if (c->unacked_eliciting >= 2)
		c->ack_now = true;
}

/*
 * True for a payload that well-formed frames fill and none of them is
 * ack-eliciting (ACK, PADDING, CLOSE): the only kind a datagram under
 * PSD_DGRAM_MIN may carry. A malformed one is false: dropped as too small
 * rather than closing the connection over bytes that were never padded.
 */
static bool payload_ack_only(const uint8_t *p, size_t len)
{
	struct psd_frame f;
	size_t pos = 0, used;

	while (pos < len) {
		if (psd_frame_parse(p + pos, len - pos, &f, &used) ||
		    psd_frame_ack_eliciting(f.type))
			return false;
		pos += used;
	}
	return true;
}

int psd_conn_recv_opened(struct psd_conn *c, uint64_t pn,
			 const uint8_t *payload, size_t len,
			 size_t dgram_len, uint64_t now)
{
	bool eliciting;
	int err;

	if (c->state == PSD_CONN_CLOSED || c->state == PSD_CONN_DRAINING)
		return 0;
	if (dgram_len < PSD_DGRAM_MIN && !payload_ack_only(payload, len)) {
		c->st.rx_bad_size++;
		return 0;
	}
	if (psd_ranges_contains(&c->rx_pns, pn)) {
		c->st.rx_duplicate++;
		return 0;
	}
	c->st.rx_packets++;
	c->st.rx_bytes += dgram_len;
	err = handle_payload(c, payload, len, now, &eliciting);
	note_received(c, pn, eliciting, now);
	return err;
}

int psd_conn_recv(struct psd_conn *c, const uint8_t *dgram, size_t len,
		  uint64_t now)
{
	uint8_t plain[PSD_DGRAM_MIN * 2];
	struct psd_pkt_hdr h;
	size_t plain_len;
	uint64_t pn;

	if (c->state == PSD_CONN_CLOSED || c->state == PSD_CONN_DRAINING)
		return 0;
	if (len > sizeof(plain) || psd_packet_parse_header(dgram, len, &h)) {
		c->st.rx_bad_size++;
		return 0;
	}
	if (h.cid != c->cfg.local_cid) {
		c->st.rx_unknown_cid++;
		return 0;
	}
	if (psd_packet_open(&c->cfg.rx_key, dgram, len, &h, c->largest_rx,
			    c->any_rx, plain, &plain_len, &pn)) {
		c->st.rx_undecryptable++;
		return 0;
	}
	return psd_conn_recv_opened(c, pn, plain, plain_len, len, now);
}
