// SPDX-License-Identifier: GPL-2.0
/*
 * The connection endpoint (conn.h).
 *
 * Requests we make live in out[] (with their response buffer and the
 * byte ranges received), requests we serve in in[] (with the next new
 * offset and how many of their DATA frames are in flight or queued).
 * Frames waiting to go out -- REQUEST, CANCEL, NOT_FOUND and lost DATA --
 * wait in one FIFO (the "send queue"); new DATA is cut from in[] at send
 * time and read through app->read, so a served request costs no buffer.
 *
 * Lifetimes. A served request ends when all its bytes were sent and every
 * DATA frame of it is acknowledged (or it was cancelled, or its NOT_FOUND
 * was acknowledged); its id then goes into served_ids so a late duplicate
 * REQUEST is not served twice. A request we made ends when its response is
 * complete or NOT_FOUND arrives (after the callback), or when the CANCEL we
 * sent for it is acknowledged. Frames that outlive their request (a lost
 * DATA of a cancelled request) are dropped when they come up.
 *
 * Every send decision is made by conn_plan() (conn_send.c):
 * psd_conn_send() acts on it and psd_conn_timeout() reports when it will
 * change, so the two cannot disagree and a caller never spins.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"

/* ---- the send queue ------------------------------------------------------ */

bool conn_queue_push(struct send_queue *q, const struct psd_sent_frame *f,
		       bool front)
{
	if (q->n == QUEUE_CAP)
		return false;
	if (front) {
		q->head = (q->head + QUEUE_CAP - 1) % QUEUE_CAP;
		q->f[q->head] = *f;
	} else {
		q->f[(q->head + q->n) % QUEUE_CAP] = *f;
	}
	q->n++;
	return true;
}

struct psd_sent_frame conn_queue_pop(struct send_queue *q)
{
	struct psd_sent_frame f = q->f[q->head];

	q->head = (q->head + 1) % QUEUE_CAP;
	q->n--;
	return f;
}

/* ---- requests ------------------------------------------------------------ */

struct out_req *conn_find_out(struct psd_conn *c, uint64_t id)
{
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++)
		if (c->out[i].used && c->out[i].f.request_id == id)
			return &c->out[i];
	return NULL;
}

struct in_req *conn_find_in(struct psd_conn *c, uint64_t id)
{
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++)
		if (c->in[i].used && c->in[i].f.request_id == id)
			return &c->in[i];
	return NULL;
}

uint64_t conn_request_initial_credit(const struct psd_frame_request *f)
{
	return f->offset + (f->length < PSD_REQUEST_WINDOW ? f->length :
						PSD_REQUEST_WINDOW);
}

void conn_free_out(struct psd_conn *c, struct out_req *o)
{
	if (o->credit_due)
		c->request_credit_due--;
	c->buffered -= o->f.length;
	free(o->buf);
	psd_ranges_free(&o->got);
	memset(o, 0, sizeof(*o));
}

void conn_finish_in(struct psd_conn *c, struct in_req *r)
{
	uint64_t id = r->f.request_id;

	memset(r, 0, sizeof(*r));
	/* -ENOSPC cannot happen: the set evicts. */
	psd_ranges_add(&c->served_ids, id, id);
}

void conn_maybe_finish_in(struct psd_conn *c, struct in_req *r)
{
	if (!r->not_found && r->next == r->f.offset + r->f.length &&
	    r->frames_out == 0 && r->queued == 0)
		conn_finish_in(c, r);
}

/* ---- closing ------------------------------------------------------------- */

void conn_enter_closed(struct psd_conn *c, enum psd_conn_state state,
			 uint64_t now)
{
	c->state = state;
	c->drain_deadline = state == PSD_CONN_CLOSED ? 0 :
			    now + 3 * psd_recovery_pto(&c->rec);
}

void conn_notify_close(struct psd_conn *c, bool by_peer)
{
	if (c->cfg.app->on_close)
		c->cfg.app->on_close(c->cfg.app_ctx, by_peer, c->close_code,
				     c->close_reason);
}

void psd_conn_close(struct psd_conn *c, uint64_t code, const char *reason,
		    uint64_t now)
{
	if (c->state != PSD_CONN_OPEN)
		return;
	c->close_code = code;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	c->close_due = true;
	conn_enter_closed(c, PSD_CONN_CLOSING, now);
	conn_notify_close(c, false);
}

/* A protocol error: close with a reason that names the bad input. */
int conn_violation(struct psd_conn *c, uint64_t code, uint64_t now,
		     const char *fmt, ...)
{
	char reason[PSD_CLOSE_REASON_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	psd_conn_close(c, code, reason, now);
	return -EPROTO;
}

/* ---- recovery callbacks -------------------------------------------------- */

static void on_frame_acked(void *ctx, const struct psd_sent_frame *f)
{
	struct psd_conn *c = ctx;
	struct out_req *o;
	struct in_req *r;

	switch (f->type) {
	case PSD_FRAME_DATA:
		r = conn_find_in(c, f->request_id);
		if (r) {
			r->frames_out--;
			conn_maybe_finish_in(c, r);
		}
		break;
	case PSD_FRAME_NOT_FOUND:
		r = conn_find_in(c, f->request_id);
		if (r && r->not_found)
			conn_finish_in(c, r);
		break;
	case PSD_FRAME_CANCEL:
		o = conn_find_out(c, f->request_id);
		if (o && o->cancelled)
			conn_free_out(c, o);
		break;
	}
}

static void on_frame_lost(void *ctx, const struct psd_sent_frame *f)
{
	struct psd_conn *c = ctx;
	struct out_req *o;
	struct in_req *r;

	switch (f->type) {
	case PSD_FRAME_DATA:
		r = conn_find_in(c, f->request_id);
		if (!r)
			return;
		r->frames_out--;
		if (r->not_found)
			return;
		/* Cannot fail: a lost frame had a place in flight. */
		if (conn_queue_push(&c->q, f, false))
			r->queued++;
		return;
	case PSD_FRAME_MAX_DATA:
		c->max_data_due = true;
		return;
	case PSD_FRAME_MAX_REQUEST_DATA:
		o = conn_find_out(c, f->request_id);
		/* Again, unless a larger credit has replaced it. */
		if (o && !o->cancelled && !o->credit_due &&
		    f->offset == o->credit) {
			o->credit_due = true;
			c->request_credit_due++;
		}
		return;
	case PSD_FRAME_REQUEST:
		o = conn_find_out(c, f->request_id);
		if (o)
			o->request_queued = true;
		conn_queue_push(&c->q, f, false);
		return;
	case PSD_FRAME_CANCEL:
	case PSD_FRAME_NOT_FOUND:
		conn_queue_push(&c->q, f, false);
		return;
	}
}

void conn_pmtu_sync(struct psd_conn *c)
{
	size_t mss = psd_pmtu_size(&c->pmtu);

	c->cc.mss = mss;
	c->scavenger.mss = mss;
}

/* Path MTU: probes settle the size, lost large packets may be a black hole. */
static void on_packet_acked(void *ctx, const struct psd_sent_pkt *p,
			    uint64_t now)
{
	struct psd_conn *c = ctx;

	psd_pmtu_on_acked(&c->pmtu, p->bytes, p->pmtu_probe, p->time_sent,
			  now);
	conn_pmtu_sync(c);
}

static void on_packet_lost(void *ctx, const struct psd_sent_pkt *p,
			   uint64_t now)
{
	struct psd_conn *c = ctx;

	psd_pmtu_on_lost(&c->pmtu, p->bytes, p->pmtu_probe, p->time_sent,
			 now);
	conn_pmtu_sync(c);
}

static const struct psd_recovery_ops recovery_ops = {
	.on_frame_acked = on_frame_acked,
	.on_frame_lost = on_frame_lost,
	.on_packet_acked = on_packet_acked,
	.on_packet_lost = on_packet_lost,
};

/* ---- setup --------------------------------------------------------------- */

int psd_conn_new(const struct psd_conn_config *cfg, uint64_t now,
		 struct psd_conn **ret)
{
	struct psd_conn *c;

	if (!cfg->app || (cfg->server && (!cfg->app->on_request ||
					  !cfg->app->read)) ||
	    cfg->max_dgram > PSD_DGRAM_MAX)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	if (!c->cfg.idle_timeout)
		c->cfg.idle_timeout = PSD_IDLE_TIMEOUT;
	if (!c->cfg.keepalive)
		c->cfg.keepalive = PSD_KEEPALIVE;
	if (!c->cfg.max_data_window)
		c->cfg.max_data_window = PSD_MAX_DATA_WINDOW;
	conn_cc_init(c, now);
	c->q.f = calloc(QUEUE_CAP, sizeof(*c->q.f));
	if (!c->q.f || psd_recovery_init(&c->rec, &c->cc_feed, &recovery_ops, c,
					 cfg->seed) ||
	    psd_ranges_init(&c->rx_pns, RX_PN_RANGES, true) ||
	    psd_ranges_init(&c->served_ids, SERVED_ID_RANGES, true)) {
		psd_conn_free(c);
		return -ENOMEM;
	}
	psd_pacer_init(&c->pacer, 0, PSD_CC_INITIAL_WINDOW(PSD_DGRAM_MIN), now);
	psd_pmtu_init(&c->pmtu, cfg->max_dgram);
	c->validated = !cfg->server || cfg->address_validated;
	c->last_rx = now;
	c->last_tx_eliciting = now;
	c->tx_max_data = PSD_MAX_DATA_INITIAL;
	c->rx_max_data = PSD_MAX_DATA_INITIAL;
	c->rx_max_data_sent = PSD_MAX_DATA_INITIAL;
	c->st.tx_max_data = c->tx_max_data;
	*ret = c;
	return 0;
}

void psd_conn_free(struct psd_conn *c)
{
	unsigned int i;

	if (!c)
		return;
	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++)
		if (c->out[i].used)
			conn_free_out(c, &c->out[i]);
	psd_ranges_free(&c->rx_pns);
	psd_ranges_free(&c->served_ids);
	psd_recovery_free(&c->rec);
	free(c->q.f);
	psd_aead_key_wipe(&c->cfg.tx_key);
	psd_aead_key_wipe(&c->cfg.rx_key);
	free(c);
}

/* ---- the application side ------------------------------------------------ */

static struct out_req *free_out_slot(struct psd_conn *c)
{
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++)
		if (!c->out[i].used)
			return &c->out[i];
	return NULL;
}

int psd_conn_request(struct psd_conn *c, enum psd_req_kind kind,
		     const uint8_t object_id[PSD_OBJECT_ID_LEN],
		     uint64_t index, uint64_t offset, uint64_t length,
		     enum psd_req_prio prio, uint64_t *ret_id)
{
	struct psd_sent_frame qf = { .type = PSD_FRAME_REQUEST };
	struct out_req *o;

	if (c->state != PSD_CONN_OPEN)
		return -ENOTCONN;
	if (kind >= __PSD_REQ_KIND_MAX || prio >= __PSD_PRIO_MAX ||
	    length == 0 || length > PSD_REQUEST_LEN_MAX ||
	    offset > PSD_OFFSET_MAX - length)
		return -EINVAL;
	o = free_out_slot(c);
	if (!o)
		return -EBUSY;
	if (c->buffered + length > PSD_CONN_BUFFERED_MAX)
		return -ENOBUFS;
	o->buf = malloc(length);
	if (!o->buf || psd_ranges_init(&o->got, RX_DATA_RANGES(length), false)) {
		free(o->buf);
		o->buf = NULL;
		return -ENOMEM;
	}
	o->used = true;
	o->f = (struct psd_frame_request){ .request_id = c->next_req_id++,
					   .kind = kind, .prio = prio,
					   .index = index, .offset = offset,
					   .length = length };
	memcpy(o->f.object_id, object_id, PSD_OBJECT_ID_LEN);
	o->credit = o->credit_sent = conn_request_initial_credit(&o->f);
	c->buffered += length;
	qf.request_id = o->f.request_id;
	conn_queue_push(&c->q, &qf, false);	/* room: one per request is reserved */
	o->request_queued = true;
	*ret_id = o->f.request_id;
	return 0;
}

int psd_conn_cancel(struct psd_conn *c, uint64_t request_id)
{
	struct psd_sent_frame qf = { .type = PSD_FRAME_CANCEL,
				     .request_id = request_id };
	struct out_req *o = conn_find_out(c, request_id);

	if (!o || o->cancelled)
		return -ENOENT;
	o->cancelled = true;
	free(o->buf);
	o->buf = NULL;
	conn_queue_push(&c->q, &qf, false);
	return 0;
}

/* ---- timers -------------------------------------------------------------- */

static bool awaiting_responses(const struct psd_conn *c)
{
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++)
		if (c->out[i].used && !c->out[i].cancelled)
			return true;
	return false;
}

/*
 * A requester with nothing in flight still probes while it waits for
 * responses: the server may be stuck at its amplification limit, or its
 * packets lost, and only a packet from us unblocks it.
 */
static uint64_t stall_timer(const struct psd_conn *c)
{
	uint64_t since = c->last_rx > c->last_tx_eliciting ? c->last_rx :
							       c->last_tx_eliciting;

	if (c->rec.ack_eliciting_in_flight || !awaiting_responses(c))
		return NEVER;
	return since + psd_recovery_pto_backoff(&c->rec, c->stall_backoff);
}

static uint64_t min3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t m = a < b ? a : b;

	return m < c ? m : c;
}

uint64_t psd_conn_timeout(struct psd_conn *c, uint64_t now)
{
	enum plan_kind kind;
	uint64_t t;

	if (c->state == PSD_CONN_CLOSED)
		return NEVER;
	if (c->state != PSD_CONN_OPEN)
		return c->close_due ? now : c->drain_deadline;
	t = conn_plan(c, now, &kind);
	t = min3(t, psd_recovery_timer(&c->rec), stall_timer(c));
	t = t < psd_pmtu_timer(&c->pmtu) ? t : psd_pmtu_timer(&c->pmtu);
	/* A PING already due waits for conn_plan(), not for this timer. */
	return min3(t, c->last_rx + c->cfg.idle_timeout,
		    c->ping_due ? NEVER :
				  c->last_tx_eliciting + c->cfg.keepalive);
}

void psd_conn_on_timeout(struct psd_conn *c, uint64_t now)
{
	if (c->state == PSD_CONN_CLOSED)
		return;
	if (c->state != PSD_CONN_OPEN) {
		if (!c->close_due && now >= c->drain_deadline)
			conn_enter_closed(c, PSD_CONN_CLOSED, now);
		return;
	}
	if (now >= c->last_rx + c->cfg.idle_timeout) {
		c->close_code = PSD_CLOSE_IDLE;
		snprintf(c->close_reason, sizeof(c->close_reason),
			 "idle for %llu ms", (unsigned long long)
			 ((now - c->last_rx) / PSD_MSEC));
		conn_enter_closed(c, PSD_CONN_CLOSED, now);
		conn_notify_close(c, false);
		return;
	}
	if (now >= psd_recovery_timer(&c->rec)) {
		int probes = psd_recovery_on_timeout(&c->rec, now);

		/* Probes carry a PING when nothing else is waiting: tried
		 * with copies of the oldest packet's frames instead, the
		 * bursty-loss transfers took 15-35% longer. */
		if (probes)
			c->probes = (unsigned int)probes;
	}
	if (now >= stall_timer(c)) {
		c->ping_due = true;
		c->stall_backoff++;
	}
	if (now >= c->last_tx_eliciting + c->cfg.keepalive)
		c->ping_due = true;
	psd_pmtu_on_timeout(&c->pmtu, now);
}

/* ---- accessors ----------------------------------------------------------- */

enum psd_conn_state psd_conn_state(const struct psd_conn *c)
{
	return c->state;
}

const struct psd_conn_stats *psd_conn_stats(const struct psd_conn *c)
{
	return &c->st;
}

const struct psd_recovery *psd_conn_recovery(const struct psd_conn *c)
{
	return &c->rec;
}

const struct psd_pmtu *psd_conn_pmtu(const struct psd_conn *c)
{
	return &c->pmtu;
}

const struct psd_cc *psd_conn_cc(const struct psd_conn *c)
{
	return &c->cc;
}

uint64_t psd_conn_close_code(const struct psd_conn *c)
{
	return c->close_code;
}

const char *psd_conn_close_reason(const struct psd_conn *c)
{
	return c->close_reason;
}

bool psd_conn_address_validated(const struct psd_conn *c)
{
	return c->validated;
}

bool psd_conn_sent_probe(const struct psd_conn *c)
{
	return c->sent_probe;
}

uint64_t psd_conn_buffered(const struct psd_conn *c)
{
	return c->buffered;
}

void psd_conn_ping(struct psd_conn *c)
{
	if (c->state == PSD_CONN_OPEN)
		c->ping_due = true;
}
