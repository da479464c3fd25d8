// SPDX-License-Identifier: GPL-2.0
/* The control protocol's wire codec: see ctl.h and docs/control.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* ---- the policy: wire types, and what each message carries ------------- */

enum wire {
	W_NONE,			/* unknown attribute: skipped */
	W_U8,
	W_U32,
	W_U64,
	W_S32,
	W_ID,
	W_STRING,
	W_BINARY,
	W_NEST,
};

struct attr_policy {
	const char *name;
	enum wire wire;
	uint32_t max;		/* W_BINARY only */
};

#define A(t, w, ...) [PSD_CTL_A_##t] = { #t, w, __VA_ARGS__ }
static const struct attr_policy attr_policy[__PSD_CTL_A_MAX] = {
	A(VERSION, W_U32),
	A(DAEMON_VERSION, W_STRING),
	A(ERRNO, W_S32),
	A(MESSAGE, W_STRING),
	A(ID, W_ID),
	A(ID_PREFIX, W_STRING),
	A(AFTER, W_ID),
	A(MORE, W_U8),
	A(MANIFEST, W_BINARY, PSD_MANIFEST_MAX_LEN),
	A(INDEX, W_U32),
	A(INDEX_DATA, W_BINARY, PSD_INDEX_CHUNK_SIZE_MAX),
	A(SOURCE_KIND, W_U8),
	A(PATH, W_STRING),
	A(FIRST_CHUNK, W_U64),
	A(COUNT, W_U32),
	A(BITMAP, W_BINARY, PSD_CTL_BITMAP_MAX),
	A(DM_NAME, W_STRING),
	A(DATA, W_BINARY, PSD_CTL_READ_MAX),
	A(NAME, W_STRING),
	A(SIZE, W_U64),
	A(CHUNK_SIZE, W_U32),
	A(CHUNK_COUNT, W_U64),
	A(CREATED, W_U64),
	A(PARENT, W_ID),
	A(PUBLISHER, W_ID),
	A(HAS_ORIGIN, W_U8),
	A(SNAPSHOT, W_NEST),
	A(COUNTER, W_NEST),
	A(VALUE, W_U64),
	A(UPTIME, W_U64),
	A(PEER, W_NEST),
	A(ADDRESS, W_STRING),
	A(STATE, W_STRING),
	A(INDEX_COUNT, W_U32),
};
#undef A

#define BIT(t)	(1ull << PSD_CTL_A_##t)

/* What one level of attributes (a message, or a nest) may and must hold. */
struct level_policy {
	uint64_t allowed;
	uint64_t required;
};

static const struct level_policy nest_policy[__PSD_CTL_A_MAX] = {
	[PSD_CTL_A_SNAPSHOT] = {
		.allowed = BIT(ID) | BIT(NAME) | BIT(SIZE) | BIT(CHUNK_SIZE) |
			   BIT(CHUNK_COUNT) | BIT(CREATED) | BIT(PARENT) |
			   BIT(PUBLISHER) | BIT(HAS_ORIGIN),
		.required = BIT(ID) | BIT(NAME) | BIT(SIZE) |
			    BIT(CHUNK_SIZE) | BIT(CHUNK_COUNT) |
			    BIT(CREATED) | BIT(PUBLISHER) | BIT(HAS_ORIGIN),
	},
	[PSD_CTL_A_COUNTER] = {
		.allowed = BIT(NAME) | BIT(VALUE),
		.required = BIT(NAME) | BIT(VALUE),
	},
	[PSD_CTL_A_PEER] = {
		.allowed = BIT(ADDRESS) | BIT(STATE),
		.required = BIT(ADDRESS),
	},
};

struct msg_policy {
	const char *name;
	struct level_policy req;
	struct level_policy rep;
};

/* Required attributes are also allowed: listed once, in .required. */
#define M(t, ra, rr, pa, pr) [PSD_CTL_##t] = { #t, { ra, rr }, { pa, pr } }
static const struct msg_policy msg_policy[__PSD_CTL_TYPE_MAX] = {
	M(HELLO, 0, BIT(VERSION),
	  0, BIT(VERSION) | BIT(DAEMON_VERSION)),
	M(STATUS, 0, 0,
	  BIT(COUNTER), BIT(UPTIME)),
	M(LIST, BIT(AFTER), 0,
	  BIT(SNAPSHOT) | BIT(MORE), 0),
	M(GET_MANIFEST, BIT(ID) | BIT(ID_PREFIX), 0,
	  0, BIT(ID) | BIT(MANIFEST)),
	M(GET_INDEX, 0, BIT(ID) | BIT(INDEX),
	  0, BIT(INDEX_DATA)),
	M(ADD_BEGIN, 0, BIT(MANIFEST) | BIT(SOURCE_KIND) | BIT(PATH),
	  0, BIT(ID) | BIT(INDEX_COUNT)),
	M(ADD_INDEX, 0, BIT(INDEX) | BIT(INDEX_DATA),
	  0, 0),
	M(ADD_PRESENT, 0, BIT(FIRST_CHUNK) | BIT(BITMAP),
	  0, 0),
	M(ADD_COMMIT, 0, 0,
	  0, BIT(ID)),
	M(ADD_ABORT, 0, 0,
	  0, 0),
	M(ATTACHED, 0, BIT(ID) | BIT(PATH) | BIT(DM_NAME),
	  0, 0),
	M(DETACHED, 0, BIT(DM_NAME),
	  0, 0),
	M(READ, 0, BIT(ID) | BIT(FIRST_CHUNK) | BIT(COUNT),
	  0, BIT(FIRST_CHUNK) | BIT(COUNT) | BIT(DATA)),
	M(PEERS, 0, 0,
	  BIT(PEER), 0),
};
#undef M

static const struct level_policy error_policy = {
	.allowed = 0,
	.required = BIT(ERRNO) | BIT(MESSAGE),
};

static const struct level_policy *message_policy(uint16_t type)
{
	bool reply = type & PSD_CTL_REPLY;
	uint16_t base = type & ~PSD_CTL_REPLY;

	if (type == PSD_CTL_ERROR)
		return &error_policy;
	if (base == 0 || base >= __PSD_CTL_TYPE_MAX)
		return NULL;
	return reply ? &msg_policy[base].rep : &msg_policy[base].req;
}

const char *psd_ctl_type_name(uint16_t type)
{
	static const char *const reply_names[__PSD_CTL_TYPE_MAX] = {
#define R(t) [PSD_CTL_##t] = #t " reply"
		R(HELLO), R(STATUS), R(LIST), R(GET_MANIFEST), R(GET_INDEX),
		R(ADD_BEGIN), R(ADD_INDEX), R(ADD_PRESENT), R(ADD_COMMIT),
		R(ADD_ABORT), R(ATTACHED), R(DETACHED), R(READ), R(PEERS),
#undef R
	};
	uint16_t base = type & ~PSD_CTL_REPLY;

	if (type == PSD_CTL_ERROR)
		return "ERROR";
	if (base == 0 || base >= __PSD_CTL_TYPE_MAX)
		return "unknown";
	return type & PSD_CTL_REPLY ? reply_names[base] : msg_policy[base].name;
}

const char *psd_ctl_attr_name(uint16_t type)
{
	if (type >= __PSD_CTL_A_MAX || !attr_policy[type].name)
		return "unknown";
	return attr_policy[type].name;
}

/* ---- little-endian helpers --------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* ---- building ---------------------------------------------------------- */

static int buf_grow(struct psd_ctl_buf *b, size_t more)
{
	size_t need, cap;
	uint8_t *p;

	if (b->err)
		return b->err;
	if (more > PSD_CTL_FRAME_MAX || b->len + more > PSD_CTL_FRAME_MAX)
		return b->err = -E2BIG;
	need = b->len + more;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return b->err = -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

void psd_ctl_begin(struct psd_ctl_buf *b, uint16_t type, uint32_t seq)
{
	b->len = 0;
	b->nest = 0;
	b->last = 0;
	b->err = 0;
	if (buf_grow(b, PSD_CTL_HDR_LEN))
		return;
	put32(b->p, PSD_CTL_MAGIC);
	put32(b->p + 4, PSD_CTL_HDR_LEN);
	put16(b->p + 8, type);
	put16(b->p + 10, 0);
	put32(b->p + 12, seq);
	b->len = PSD_CTL_HDR_LEN;
}

void *psd_ctl_put_reserve(struct psd_ctl_buf *b, uint16_t type, size_t len)
{
	uint8_t *p;

	if (b->len < PSD_CTL_HDR_LEN && !b->err)
		b->err = -EINVAL;	/* no psd_ctl_begin() */
	if (buf_grow(b, PSD_CTL_ATTR_HDR_LEN + len))
		return NULL;
	p = b->p + b->len;
	b->last = b->len;
	put16(p, type);
	put16(p + 2, 0);
	put32(p + 4, (uint32_t)len);
	b->len += PSD_CTL_ATTR_HDR_LEN + len;
	return p + PSD_CTL_ATTR_HDR_LEN;
}

void psd_ctl_put_bytes(struct psd_ctl_buf *b, uint16_t type, const void *v,
		       size_t len)
{
	uint8_t *p = psd_ctl_put_reserve(b, type, len);

	if (p && len)
		memcpy(p, v, len);
}

void psd_ctl_put_u8(struct psd_ctl_buf *b, uint16_t type, uint8_t v)
{
	psd_ctl_put_bytes(b, type, &v, 1);
}

void psd_ctl_put_u32(struct psd_ctl_buf *b, uint16_t type, uint32_t v)
{
	uint8_t *p = psd_ctl_put_reserve(b, type, 4);

	if (p)
		put32(p, v);
}

void psd_ctl_put_u64(struct psd_ctl_buf *b, uint16_t type, uint64_t v)
{
	uint8_t *p = psd_ctl_put_reserve(b, type, 8);

	if (p)
		put64(p, v);
}

void psd_ctl_put_s32(struct psd_ctl_buf *b, uint16_t type, int32_t v)
{
	psd_ctl_put_u32(b, type, (uint32_t)v);
}

void psd_ctl_put_str(struct psd_ctl_buf *b, uint16_t type, const char *s)
{
	psd_ctl_put_bytes(b, type, s, strlen(s) + 1);
}

void psd_ctl_shrink_last(struct psd_ctl_buf *b, size_t len)
{
	uint32_t had;

	if (b->err)
		return;
	if (!b->last || b->nest) {
		b->err = -EINVAL;
		return;
	}
	had = get32(b->p + b->last + 4);
	if (len > had || b->last + PSD_CTL_ATTR_HDR_LEN + had != b->len) {
		b->err = -EINVAL;
		return;
	}
	put32(b->p + b->last + 4, (uint32_t)len);
	b->len = b->last + PSD_CTL_ATTR_HDR_LEN + len;
}

void psd_ctl_nest_begin(struct psd_ctl_buf *b, uint16_t type)
{
	size_t at = b->len;

	if (b->nest && !b->err)
		b->err = -EINVAL;	/* nests do not nest */
	if (psd_ctl_put_reserve(b, type, 0))
		b->nest = at;
}

void psd_ctl_nest_end(struct psd_ctl_buf *b)
{
	if (b->err)
		return;
	if (!b->nest) {
		b->err = -EINVAL;
		return;
	}
	put32(b->p + b->nest + 4,
	      (uint32_t)(b->len - b->nest - PSD_CTL_ATTR_HDR_LEN));
	b->nest = 0;
	b->last = 0;		/* a nest cannot be shrunk */
}

int psd_ctl_finish(struct psd_ctl_buf *b)
{
	if (!b->err && (b->nest || b->len < PSD_CTL_HDR_LEN))
		b->err = -EINVAL;
	if (b->err)
		return b->err;
	put32(b->p + 4, (uint32_t)b->len);
	return 0;
}

int psd_ctl_build_error(struct psd_ctl_buf *b, uint32_t seq, int err,
			const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line: a message quoting hostile input must not forge more. */
	for (char *c = msg; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	psd_ctl_begin(b, PSD_CTL_ERROR, seq);
	psd_ctl_put_s32(b, PSD_CTL_A_ERRNO, err < 0 ? err : -err);
	psd_ctl_put_str(b, PSD_CTL_A_MESSAGE, msg[0] ? msg : "error");
	return psd_ctl_finish(b);
}

void psd_ctl_buf_free(struct psd_ctl_buf *b)
{
	if (!b)
		return;
	free(b->p);
	*b = (struct psd_ctl_buf){ 0 };
}

/* ---- parsing ----------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static int fail(struct psd_ctl_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

int psd_ctl_frame_len(const void *buf, size_t avail, uint32_t *ret_len,
		      struct psd_ctl_err *err)
{
	const uint8_t *p = buf;
	uint32_t len;

	if (avail < PSD_CTL_HDR_LEN)
		return -EAGAIN;
	if (get32(p) != PSD_CTL_MAGIC)
		return fail(err, "bad magic 0x%08x (expected 0x%08x)",
			    get32(p), PSD_CTL_MAGIC);
	if (get16(p + 10))
		return fail(err, "reserved header flags 0x%04x set",
			    get16(p + 10));
	len = get32(p + 4);
	if (len < PSD_CTL_HDR_LEN || len > PSD_CTL_FRAME_MAX) {
		fail(err, "frame length %u outside %u..%u", len,
		     PSD_CTL_HDR_LEN, PSD_CTL_FRAME_MAX);
		return -EMSGSIZE;
	}
	*ret_len = len;
	return 0;
}

static int check_size(const struct attr_policy *ap, const uint8_t *v,
		      uint32_t len, struct psd_ctl_err *err)
{
	static const uint32_t fixed[] = {
		[W_U8] = 1, [W_U32] = 4, [W_U64] = 8, [W_S32] = 4, [W_ID] = 32,
	};

	switch (ap->wire) {
	case W_U8: case W_U32: case W_U64: case W_S32: case W_ID:
		if (len != fixed[ap->wire])
			return fail(err, "attribute %s has %u bytes, expected %u",
				    ap->name, len, fixed[ap->wire]);
		return 0;
	case W_STRING:
		if (len < 2 || len > PSD_CTL_STRING_MAX)
			return fail(err, "string %s has %u bytes, expected 2..%u",
				    ap->name, len, PSD_CTL_STRING_MAX);
		if (memchr(v, '\0', len) != v + len - 1)
			return fail(err, "string %s is not one NUL-terminated string",
				    ap->name);
		return 0;
	case W_BINARY:
		if (len > ap->max)
			return fail(err, "attribute %s has %u bytes, at most %u",
				    ap->name, len, ap->max);
		return 0;
	default:
		return 0;	/* W_NEST: its contents are walked by the caller */
	}
}

static bool repeatable(uint16_t type)
{
	return type < __PSD_CTL_A_MAX && attr_policy[type].wire == W_NEST;
}

/*
 * Validates one level of attributes against pol; fills *ret with the first
 * occurrence of each known type. Nests are validated recursively (depth 1).
 */
static int parse_level(const uint8_t *p, uint32_t len,
		       const struct level_policy *pol, bool nested,
		       struct psd_ctl_attrs *ret, struct psd_ctl_err *err)
{
	uint64_t seen = 0;
	uint32_t off = 0;

	memset(ret, 0, sizeof(*ret));
	while (off < len) {
		uint32_t alen;
		uint16_t t;
		int r;

		if (len - off < PSD_CTL_ATTR_HDR_LEN)
			return fail(err, "%u trailing bytes at offset %u",
				    len - off, off);
		t = get16(p + off);
		alen = get32(p + off + 4);
		if (get16(p + off + 2))
			return fail(err, "attribute %u: reserved bits 0x%04x set",
				    t, get16(p + off + 2));
		if (alen > len - off - PSD_CTL_ATTR_HDR_LEN)
			return fail(err, "attribute %s: length %u runs past the end",
				    psd_ctl_attr_name(t), alen);
		off += PSD_CTL_ATTR_HDR_LEN;
		if (t == PSD_CTL_A_UNSPEC)
			return fail(err, "attribute type 0 is invalid");
		if (t < __PSD_CTL_A_MAX) {
			const struct attr_policy *ap = &attr_policy[t];
			struct psd_ctl_attrs inner;

			if (!(pol->allowed & (1ull << t)) &&
			    !(pol->required & (1ull << t)))
				return fail(err, "attribute %s not allowed here",
					    ap->name);
			if ((seen & (1ull << t)) && !repeatable(t))
				return fail(err, "attribute %s given twice", ap->name);
			r = check_size(ap, p + off, alen, err);
			if (r)
				return r;
			if (ap->wire == W_NEST) {
				if (nested)
					return fail(err, "nest %s inside a nest", ap->name);
				r = parse_level(p + off, alen, &nest_policy[t], true,
						&inner, err);
				if (r)
					return r;
			}
			if (!(seen & (1ull << t)))
				ret->a[t] = (struct psd_ctl_attr){ p + off, alen };
			seen |= 1ull << t;
		}
		off += alen;
	}
	if ((seen & pol->required) != pol->required) {
		uint64_t missing = pol->required & ~seen;

		return fail(err, "attribute %s missing",
			    psd_ctl_attr_name((uint16_t)__builtin_ctzll(missing)));
	}
	return 0;
}

int psd_ctl_parse(const void *buf, size_t len, struct psd_ctl_msg *ret,
		  struct psd_ctl_err *err)
{
	const struct level_policy *pol;
	const uint8_t *p = buf;
	struct psd_ctl_msg m;
	uint32_t flen;
	int r;

	if (len < PSD_CTL_HDR_LEN)
		return fail(err, "frame of %zu bytes is shorter than its header",
			    len);
	r = psd_ctl_frame_len(p, len, &flen, err);
	if (r)
		return r;
	if (flen != len)
		return fail(err, "frame says %u bytes, got %zu", flen, len);
	memset(&m, 0, sizeof(m));
	m.type = get16(p + 8);
	m.seq = get32(p + 12);
	m.body = p + PSD_CTL_HDR_LEN;
	m.body_len = flen - PSD_CTL_HDR_LEN;
	pol = message_policy(m.type);
	if (!pol) {
		/* Answerable: say so, with the header's fields. */
		ret->type = m.type;
		ret->seq = m.seq;
		fail(err, "unknown message type %u", m.type);
		return -EOPNOTSUPP;
	}
	r = parse_level(m.body, m.body_len, pol, false, &m.at, err);
	if (r)
		return r;
	*ret = m;
	return 0;
}

int psd_ctl_nest_next(const struct psd_ctl_msg *m, uint16_t type,
		      uint32_t *pos, struct psd_ctl_attrs *ret)
{
	while (*pos + PSD_CTL_ATTR_HDR_LEN <= m->body_len) {
		const uint8_t *a = m->body + *pos;
		uint32_t alen = get32(a + 4);

		*pos += PSD_CTL_ATTR_HDR_LEN + alen;
		if (get16(a) != type || !repeatable(type))
			continue;
		/* Already validated by psd_ctl_parse(): cannot fail. */
		if (parse_level(a + PSD_CTL_ATTR_HDR_LEN, alen,
				&nest_policy[type], true, ret, NULL))
			return 0;
		return 1;
	}
	return 0;
}

/* ---- accessors --------------------------------------------------------- */

static const struct psd_ctl_attr *attr(const struct psd_ctl_attrs *at,
				       uint16_t type)
{
	if (type >= __PSD_CTL_A_MAX || !at->a[type].val)
		return NULL;
	return &at->a[type];
}

bool psd_ctl_has(const struct psd_ctl_attrs *at, uint16_t type)
{
	return attr(at, type) != NULL;
}

uint8_t psd_ctl_u8(const struct psd_ctl_attrs *at, uint16_t type)
{
	const struct psd_ctl_attr *a = attr(at, type);

	return a && a->len == 1 ? a->val[0] : 0;
}

uint32_t psd_ctl_u32(const struct psd_ctl_attrs *at, uint16_t type)
{
	const struct psd_ctl_attr *a = attr(at, type);

	return a && a->len == 4 ? get32(a->val) : 0;
}

uint64_t psd_ctl_u64(const struct psd_ctl_attrs *at, uint16_t type)
{
	const struct psd_ctl_attr *a = attr(at, type);

	return a && a->len == 8 ? get64(a->val) : 0;
}

int32_t psd_ctl_s32(const struct psd_ctl_attrs *at, uint16_t type)
{
	return (int32_t)psd_ctl_u32(at, type);
}

const char *psd_ctl_str(const struct psd_ctl_attrs *at, uint16_t type)
{
	const struct psd_ctl_attr *a = attr(at, type);

	if (!a || type >= __PSD_CTL_A_MAX ||
	    attr_policy[type].wire != W_STRING)
		return NULL;
	return (const char *)a->val;
}

const uint8_t *psd_ctl_bytes(const struct psd_ctl_attrs *at, uint16_t type,
			     uint32_t *ret_len)
{
	const struct psd_ctl_attr *a = attr(at, type);

	if (ret_len)
		*ret_len = a ? a->len : 0;
	return a ? a->val : NULL;
}
