// SPDX-License-Identifier: GPL-2.0
/*
 * The frame codec (frame.h). Parsing goes through a cursor that refuses to
 * move past the end, so each field is one checked call; a frame's limits
 * are checked right after its fields are read.
 */
#include <errno.h>
#include <string.h>

#include "frame.h"
#include "varint.h"

struct cursor {
	const uint8_t *p;
	size_t len;
	size_t pos;
	bool bad;			/* sticky: any read past the end */
};

static uint64_t get_varint(struct cursor *c)
{
	uint64_t v = 0;
	size_t n = c->bad ? 0 : psd_varint_get(c->p + c->pos, c->len - c->pos, &v);

	if (n == 0) {
		c->bad = true;
		return 0;
	}
	c->pos += n;
	return v;
}

static uint8_t get_u8(struct cursor *c)
{
	if (c->bad || c->pos >= c->len) {
		c->bad = true;
		return 0;
	}
	return c->p[c->pos++];
}

/* Returns a pointer to n bytes at the cursor, NULL if fewer are left. */
static const uint8_t *get_bytes(struct cursor *c, uint64_t n)
{
	const uint8_t *b;

	if (c->bad || n > c->len - c->pos) {
		c->bad = true;
		return NULL;
	}
	b = c->p + c->pos;
	c->pos += n;
	return b;
}

/* RFC 9000 19.3.1: ranges walk down from largest; none may go below 0. */
static int parse_ack(struct cursor *c, struct psd_frame_ack *a)
{
	uint64_t largest = get_varint(c), count, first, gap, len, hi, i;

	a->ack_delay_us = get_varint(c);
	count = get_varint(c);
	first = get_varint(c);
	if (c->bad || first > largest || count >= PSD_ACK_RANGES_MAX)
		return -EBADMSG;
	a->r[0].hi = largest;
	a->r[0].lo = largest - first;
	for (i = 1; i <= count; i++) {
		gap = get_varint(c);
		len = get_varint(c);
		/* The next range's hi is lo - gap - 2: needs lo >= gap + 2. */
		if (c->bad || a->r[i - 1].lo < gap + 2)
			return -EBADMSG;
		hi = a->r[i - 1].lo - gap - 2;
		if (len > hi)
			return -EBADMSG;
		a->r[i].hi = hi;
		a->r[i].lo = hi - len;
	}
	a->n_ranges = (unsigned int)count + 1;
	return 0;
}

static int parse_request(struct cursor *c, struct psd_frame_request *r)
{
	const uint8_t *id;

	r->request_id = get_varint(c);
	r->kind = get_u8(c);
	r->prio = get_u8(c);
	id = get_bytes(c, PSD_OBJECT_ID_LEN);
	r->index = get_varint(c);
	r->offset = get_varint(c);
	r->length = get_varint(c);
	if (c->bad || r->kind >= __PSD_REQ_KIND_MAX ||
	    r->prio >= __PSD_PRIO_MAX || r->length == 0 ||
	    r->length > PSD_REQUEST_LEN_MAX ||
	    r->offset > PSD_OFFSET_MAX - r->length)
		return -EBADMSG;
	memcpy(r->object_id, id, PSD_OBJECT_ID_LEN);
	return 0;
}

static int parse_data(struct cursor *c, struct psd_frame_data *d)
{
	uint64_t len;

	d->request_id = get_varint(c);
	d->offset = get_varint(c);
	len = get_varint(c);
	d->bytes = get_bytes(c, len);
	if (c->bad || len == 0 || len > PSD_REQUEST_LEN_MAX ||
	    d->offset > PSD_OFFSET_MAX - len)
		return -EBADMSG;
	d->len = (size_t)len;
	return 0;
}

static int parse_close(struct cursor *c, struct psd_frame_close *cl)
{
	uint64_t len;

	cl->code = get_varint(c);
	len = get_varint(c);
	if (c->bad || len > PSD_CLOSE_REASON_MAX)
		return -EBADMSG;
	cl->reason = get_bytes(c, len);
	if (c->bad)
		return -EBADMSG;
	cl->reason_len = (size_t)len;
	return 0;
}

static int parse_body(struct cursor *c, struct psd_frame *f)
{
	switch (f->type) {
	case PSD_FRAME_PADDING:
		while (c->pos < c->len && c->p[c->pos] == 0)
			c->pos++;
		f->padding_len = c->pos;
		return 0;
	case PSD_FRAME_PING:
		return 0;
	case PSD_FRAME_ACK:
		return parse_ack(c, &f->ack);
	case PSD_FRAME_REQUEST:
		return parse_request(c, &f->req);
	case PSD_FRAME_DATA:
		return parse_data(c, &f->data);
	case PSD_FRAME_CANCEL:
	case PSD_FRAME_NOT_FOUND:
		f->request_id = get_varint(c);
		return c->bad ? -EBADMSG : 0;
	case PSD_FRAME_MAX_DATA:
		f->max_data = get_varint(c);
		return c->bad ? -EBADMSG : 0;
	case PSD_FRAME_MAX_REQUEST_DATA:
		f->max_req.request_id = get_varint(c);
		f->max_req.maximum = get_varint(c);
		return c->bad ? -EBADMSG : 0;
	case PSD_FRAME_CLOSE:
		return parse_close(c, &f->close);
	}
	return -EPROTO;
}

int psd_frame_parse(const uint8_t *p, size_t len, struct psd_frame *ret,
		    size_t *ret_used)
{
	struct cursor c = { .p = p, .len = len };
	struct psd_frame f;
	uint64_t type;
	int err;

	type = get_varint(&c);
	if (c.bad)
		return -EBADMSG;
	if (type > PSD_FRAME_CLOSE)
		return -EPROTO;
	memset(&f, 0, sizeof(f));
	f.type = (enum psd_frame_type)type;
	err = parse_body(&c, &f);
	if (err)
		return err;
	*ret = f;
	*ret_used = c.pos;
	return 0;
}

/* ---- encoding ----------------------------------------------------------- */

struct writer {
	uint8_t *p;
	size_t cap;
	size_t pos;
	bool full;			/* sticky: something did not fit */
};

static void put_varint(struct writer *w, uint64_t v)
{
	size_t n;

	if (w->full)
		return;
	n = w->p ? psd_varint_put(w->p + w->pos, w->cap - w->pos, v) :
		   (v <= PSD_VARINT_MAX ? psd_varint_len(v) : 0);
	if (n == 0 || (!w->p && n > w->cap - w->pos))
		w->full = true;
	w->pos += n;
}

static void put_bytes(struct writer *w, const void *b, size_t n)
{
	if (w->full || n > w->cap - w->pos) {
		w->full = true;
		return;
	}
	if (w->p && n)
		memcpy(w->p + w->pos, b, n);
	w->pos += n;
}

static void put_u8(struct writer *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static bool ack_valid(const struct psd_frame_ack *a)
{
	unsigned int i;

	if (a->n_ranges == 0 || a->n_ranges > PSD_ACK_RANGES_MAX)
		return false;
	for (i = 0; i < a->n_ranges; i++) {
		if (a->r[i].lo > a->r[i].hi || a->r[i].hi > PSD_VARINT_MAX)
			return false;
		if (i && a->r[i].hi + 2 > a->r[i - 1].lo)
			return false;
	}
	return true;
}

static void put_ack(struct writer *w, const struct psd_frame_ack *a)
{
	unsigned int i;

	if (!ack_valid(a)) {
		w->full = true;
		return;
	}
	put_varint(w, a->r[0].hi);
	put_varint(w, a->ack_delay_us);
	put_varint(w, a->n_ranges - 1);
	put_varint(w, a->r[0].hi - a->r[0].lo);
	for (i = 1; i < a->n_ranges; i++) {
		put_varint(w, a->r[i - 1].lo - a->r[i].hi - 2);
		put_varint(w, a->r[i].hi - a->r[i].lo);
	}
}

static void put_request(struct writer *w, const struct psd_frame_request *r)
{
	if (r->kind >= __PSD_REQ_KIND_MAX || r->prio >= __PSD_PRIO_MAX ||
	    r->length == 0 || r->length > PSD_REQUEST_LEN_MAX ||
	    r->offset > PSD_OFFSET_MAX - r->length) {
		w->full = true;
		return;
	}
	put_varint(w, r->request_id);
	put_u8(w, r->kind);
	put_u8(w, r->prio);
	put_bytes(w, r->object_id, PSD_OBJECT_ID_LEN);
	put_varint(w, r->index);
	put_varint(w, r->offset);
	put_varint(w, r->length);
}

static void put_data(struct writer *w, const struct psd_frame_data *d)
{
	if (d->len == 0 || d->len > PSD_REQUEST_LEN_MAX ||
	    d->offset > PSD_OFFSET_MAX - d->len) {
		w->full = true;
		return;
	}
	put_varint(w, d->request_id);
	put_varint(w, d->offset);
	put_varint(w, d->len);
	put_bytes(w, d->bytes, d->len);
}

static void put_close(struct writer *w, const struct psd_frame_close *c)
{
	if (c->reason_len > PSD_CLOSE_REASON_MAX) {
		w->full = true;
		return;
	}
	put_varint(w, c->code);
	put_varint(w, c->reason_len);
	put_bytes(w, c->reason, c->reason_len);
}

static void put_frame(struct writer *w, const struct psd_frame *f)
{
	if (f->type == PSD_FRAME_PADDING) {
		/* A run of zeros; at least the type byte itself. */
		if (f->padding_len == 0 || f->padding_len > w->cap - w->pos) {
			w->full = true;
			return;
		}
		if (w->p)
			memset(w->p + w->pos, 0, f->padding_len);
		w->pos += f->padding_len;
		return;
	}
	put_varint(w, f->type);
	switch (f->type) {
	case PSD_FRAME_ACK:
		put_ack(w, &f->ack);
		break;
	case PSD_FRAME_REQUEST:
		put_request(w, &f->req);
		break;
	case PSD_FRAME_DATA:
		put_data(w, &f->data);
		break;
	case PSD_FRAME_CANCEL:
	case PSD_FRAME_NOT_FOUND:
		put_varint(w, f->request_id);
		break;
	case PSD_FRAME_MAX_DATA:
		put_varint(w, f->max_data);
		break;
	case PSD_FRAME_MAX_REQUEST_DATA:
		put_varint(w, f->max_req.request_id);
		put_varint(w, f->max_req.maximum);
		break;
	case PSD_FRAME_CLOSE:
		put_close(w, &f->close);
		break;
	case PSD_FRAME_PADDING:
	case PSD_FRAME_PING:
		break;
	default:
		w->full = true;
	}
}

size_t psd_frame_encode(const struct psd_frame *f, uint8_t *p, size_t cap)
{
	struct writer w = { .cap = cap };

	/* Measure first, so a frame that does not fit writes nothing. */
	put_frame(&w, f);
	if (w.full)
		return 0;
	w = (struct writer){ .p = p, .cap = cap };
	put_frame(&w, f);
	return w.full ? 0 : w.pos;
}

size_t psd_frame_encoded_len(const struct psd_frame *f)
{
	struct writer w = { .cap = SIZE_MAX };

	put_frame(&w, f);
	return w.full ? 0 : w.pos;
}

size_t psd_frame_data_overhead(uint64_t request_id, uint64_t offset,
			       size_t len)
{
	return psd_varint_len(PSD_FRAME_DATA) + psd_varint_len(request_id) +
	       psd_varint_len(offset) + psd_varint_len(len);
}

bool psd_frame_ack_eliciting(enum psd_frame_type type)
{
	return type != PSD_FRAME_ACK && type != PSD_FRAME_PADDING &&
	       type != PSD_FRAME_CLOSE;
}

const char *psd_frame_name(enum psd_frame_type type)
{
	switch (type) {
	case PSD_FRAME_PADDING: return "PADDING";
	case PSD_FRAME_PING: return "PING";
	case PSD_FRAME_ACK: return "ACK";
	case PSD_FRAME_REQUEST: return "REQUEST";
	case PSD_FRAME_DATA: return "DATA";
	case PSD_FRAME_CANCEL: return "CANCEL";
	case PSD_FRAME_NOT_FOUND: return "NOT_FOUND";
	case PSD_FRAME_MAX_DATA: return "MAX_DATA";
	case PSD_FRAME_MAX_REQUEST_DATA: return "MAX_REQUEST_DATA";
	case PSD_FRAME_CLOSE: return "CLOSE";
	}
	return "unknown";
}
