// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot manifests: see manifest.h and docs/manifest-format.md.
 *
 * Decoding runs in stages, each trusting only what the previous one
 * checked: the header (sizes first, so nothing is read past the input),
 * the field framing (order, duplicates, per-tag length bounds), the
 * meaning of each field (geometry, name, parent, time), then the copy,
 * the id and the signature. Every count is checked against its limit
 * before it is multiplied.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manifest.h"

_Static_assert(sizeof(PSD_MANIFEST_MAGIC) - 1 == 8, "magic is 8 bytes");
_Static_assert((uint64_t)PSD_MANIFEST_MAX_INDEX_CHUNKS *
		       (PSD_INDEX_CHUNK_SIZE_MAX / PSD_HASH_LEN) >=
		       PSD_MANIFEST_MAX_CHUNKS,
	       "the largest index chunks can list the most chunks");
_Static_assert(PSD_MANIFEST_MAX_CHUNKS * PSD_CHUNK_SIZE_MAX <= INT64_MAX,
	       "every valid size fits an off_t");

static const char *const code_names[__PSD_MF_CODE_MAX] = {
	[PSD_MF_OK] = "ok",
	[PSD_MF_TOO_LARGE] = "too large",
	[PSD_MF_TRUNCATED] = "truncated",
	[PSD_MF_TRAILING_BYTES] = "trailing bytes",
	[PSD_MF_BAD_MAGIC] = "bad magic",
	[PSD_MF_BAD_VERSION] = "unsupported version",
	[PSD_MF_BAD_FLAGS] = "bad flags",
	[PSD_MF_BAD_BODY_LEN] = "bad body length",
	[PSD_MF_FIELD_ORDER] = "fields out of order",
	[PSD_MF_DUPLICATE_FIELD] = "duplicate field",
	[PSD_MF_UNKNOWN_FIELD] = "unknown critical field",
	[PSD_MF_FIELD_LENGTH] = "bad field length",
	[PSD_MF_MISSING_FIELD] = "missing field",
	[PSD_MF_BAD_SIZE] = "bad size",
	[PSD_MF_BAD_CHUNK_SIZE] = "bad chunk size",
	[PSD_MF_BAD_CHUNK_COUNT] = "bad chunk count",
	[PSD_MF_BAD_INDEX_CHUNK_SIZE] = "bad index chunk size",
	[PSD_MF_BAD_INDEX_COUNT] = "bad index count",
	[PSD_MF_BAD_NAME] = "bad name",
	[PSD_MF_BAD_PARENT] = "bad parent",
	[PSD_MF_BAD_TIME] = "bad creation time",
	[PSD_MF_BAD_SIGNATURE] = "bad signature",
	[PSD_MF_UNTRUSTED] = "untrusted publisher",
	[PSD_MF_BAD_INDEX_CHUNK] = "bad index chunk",
	[PSD_MF_NO_MEMORY] = "out of memory",
};

const char *psd_mf_code_str(enum psd_mf_code code)
{
	if ((unsigned int)code >= __PSD_MF_CODE_MAX)
		return "unknown error";
	return code_names[code];
}

/* Records why, and returns r: `return fail(err, CODE, -EBADMSG, ...)`. */
__attribute__((format(printf, 4, 5)))
static int fail(struct psd_mf_err *err, enum psd_mf_code code, int r,
		const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return r;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return r;
}

static void ok(struct psd_mf_err *err)
{
	if (err) {
		err->code = PSD_MF_OK;
		err->msg[0] = '\0';
	}
}

/* ---- little-endian bytes ----------------------------------------------- */

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---- geometry ---------------------------------------------------------- */

static bool is_pow2_in(uint32_t v, uint32_t min, uint32_t max)
{
	return v >= min && v <= max && !(v & (v - 1));
}

/* ceil(n / d) for n >= 1, without the overflow of n + d - 1. */
static uint64_t div_round_up(uint64_t n, uint64_t d)
{
	return (n - 1) / d + 1;
}

static uint64_t index_count_for(uint64_t chunk_count, uint32_t index_size)
{
	return div_round_up(chunk_count, index_size / PSD_HASH_LEN);
}

uint32_t psd_geometry_default_index_chunk_size(uint64_t chunk_count)
{
	uint32_t size;

	if (chunk_count == 0)
		chunk_count = 1;
	for (size = PSD_INDEX_CHUNK_SIZE_MIN; size < PSD_INDEX_CHUNK_SIZE_MAX;
	     size <<= 1)
		if (index_count_for(chunk_count, size) * PSD_HASH_LEN <= size)
			break;
	return size;
}

/* Size and chunk size give the chunk count; both are bounded first. */
static int chunks_of(uint64_t size, uint32_t chunk_size,
		     uint64_t *ret_count, struct psd_mf_err *err)
{
	if (!is_pow2_in(chunk_size, PSD_CHUNK_SIZE_MIN, PSD_CHUNK_SIZE_MAX))
		return fail(err, PSD_MF_BAD_CHUNK_SIZE, -EINVAL,
			    "chunk size %u is not a power of two from %u to %u",
			    chunk_size, PSD_CHUNK_SIZE_MIN, PSD_CHUNK_SIZE_MAX);
	if (size == 0)
		return fail(err, PSD_MF_BAD_SIZE, -EINVAL,
			    "image size is 0");
	if (div_round_up(size, chunk_size) > PSD_MANIFEST_MAX_CHUNKS)
		return fail(err, PSD_MF_BAD_SIZE, -EINVAL,
			    "image size %llu needs more than %llu chunks of %u bytes",
			    (unsigned long long)size,
			    (unsigned long long)PSD_MANIFEST_MAX_CHUNKS,
			    chunk_size);
	*ret_count = div_round_up(size, chunk_size);
	return 0;
}

/* Validates a geometry as a manifest states it: no defaults here. */
static int geometry_make(struct psd_geometry *ret, uint64_t size,
			 uint32_t chunk_size, uint32_t index_chunk_size,
			 struct psd_mf_err *err)
{
	struct psd_geometry g = { .size = size, .chunk_size = chunk_size };
	uint64_t n_index;
	int r;

	r = chunks_of(size, chunk_size, &g.chunk_count, err);
	if (r < 0)
		return r;
	if (!is_pow2_in(index_chunk_size, PSD_INDEX_CHUNK_SIZE_MIN,
			PSD_INDEX_CHUNK_SIZE_MAX))
		return fail(err, PSD_MF_BAD_INDEX_CHUNK_SIZE, -EINVAL,
			    "index chunk size %u is not a power of two from %u to %u",
			    index_chunk_size, PSD_INDEX_CHUNK_SIZE_MIN,
			    PSD_INDEX_CHUNK_SIZE_MAX);
	n_index = index_count_for(g.chunk_count, index_chunk_size);
	if (n_index > PSD_MANIFEST_MAX_INDEX_CHUNKS)
		return fail(err, PSD_MF_BAD_INDEX_COUNT, -EINVAL,
			    "%llu chunks need %llu index chunks of %u bytes; at most %u",
			    (unsigned long long)g.chunk_count,
			    (unsigned long long)n_index, index_chunk_size,
			    PSD_MANIFEST_MAX_INDEX_CHUNKS);
	g.index_chunk_size = index_chunk_size;
	g.index_entries = index_chunk_size / PSD_HASH_LEN;
	g.index_count = (uint32_t)n_index;
	*ret = g;
	return 0;
}

int psd_geometry_init(struct psd_geometry *ret, uint64_t size,
		      uint32_t chunk_size, uint32_t index_chunk_size,
		      struct psd_mf_err *err)
{
	uint64_t count;
	int r;

	if (index_chunk_size == 0) {
		r = chunks_of(size, chunk_size, &count, err);
		if (r < 0)
			return r;
		index_chunk_size = psd_geometry_default_index_chunk_size(count);
	}
	return geometry_make(ret, size, chunk_size, index_chunk_size, err);
}

int psd_geometry_locate(const struct psd_geometry *g, uint64_t chunk,
			uint32_t *ret_index, uint32_t *ret_slot)
{
	if (chunk >= g->chunk_count)
		return -ERANGE;
	*ret_index = (uint32_t)(chunk / g->index_entries);
	*ret_slot = (uint32_t)(chunk % g->index_entries);
	return 0;
}

size_t psd_geometry_index_len(const struct psd_geometry *g, uint32_t index)
{
	uint64_t first = (uint64_t)index * g->index_entries;
	uint64_t n;

	if (index >= g->index_count)
		return 0;
	n = g->chunk_count - first;
	if (n > g->index_entries)
		n = g->index_entries;
	return (size_t)n * PSD_HASH_LEN;
}

size_t psd_manifest_encoded_len(const struct psd_geometry *g,
				size_t name_len, bool has_parent)
{
	size_t fields = 8 + (has_parent ? 1 : 0);

	return PSD_MANIFEST_HEADER_LEN + fields * PSD_MANIFEST_FIELD_HDR_LEN +
	       8 + 4 + 8 + 4 + name_len + (has_parent ? PSD_HASH_LEN : 0) +
	       8 + PSD_PUBKEY_LEN + (size_t)g->index_count * PSD_HASH_LEN +
	       PSD_SIG_LEN;
}

/* ---- field values: shared by the encoder and the decoder --------------- */

/*
 * Length of the UTF-8 sequence at s (n > 0 bytes left) if it encodes a
 * character that is not a control character, else 0. Names end up on
 * terminals: a hostile one must not carry escape sequences.
 */
static size_t utf8_printable(const uint8_t *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != 0x7f ? 1 : 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates, past Unicode, C1 controls. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
	    (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

static int check_name(const uint8_t *s, size_t len, int r,
		      struct psd_mf_err *err)
{
	size_t off = 0, n;

	if (len == 0 || len > PSD_MANIFEST_NAME_MAX)
		return fail(err, PSD_MF_BAD_NAME, r,
			    "name has %zu bytes; 1 to %d allowed", len,
			    PSD_MANIFEST_NAME_MAX);
	while (off < len) {
		n = utf8_printable(s + off, len - off);
		if (!n)
			return fail(err, PSD_MF_BAD_NAME, r,
				    "name: invalid UTF-8 or a control character at byte %zu (0x%02x)",
				    off, s[off]);
		off += n;
	}
	return 0;
}

static int check_parent(const uint8_t parent[PSD_HASH_LEN], int r,
			struct psd_mf_err *err)
{
	/* "No parent" is the field's absence, never a special value. */
	if (sodium_is_zero(parent, PSD_HASH_LEN))
		return fail(err, PSD_MF_BAD_PARENT, r,
			    "parent id is all zeros");
	return 0;
}

static int check_time(uint64_t created, int r, struct psd_mf_err *err)
{
	if (created > INT64_MAX)
		return fail(err, PSD_MF_BAD_TIME, r,
			    "creation time %llu is past the largest time_t",
			    (unsigned long long)created);
	return 0;
}

/* ---- encoding ---------------------------------------------------------- */

struct writer {
	uint8_t *p;
	size_t off;
};

static void put_field(struct writer *w, uint16_t tag, const void *v,
		      size_t len)
{
	put_le16(w->p + w->off, tag);
	put_le32(w->p + w->off + 2, (uint32_t)len);
	memcpy(w->p + w->off + PSD_MANIFEST_FIELD_HDR_LEN, v, len);
	w->off += PSD_MANIFEST_FIELD_HDR_LEN + len;
}

static void put_u32_field(struct writer *w, uint16_t tag, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	put_field(w, tag, b, sizeof(b));
}

static void put_u64_field(struct writer *w, uint16_t tag, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	put_field(w, tag, b, sizeof(b));
}

/* Fields in ascending tag order, as the decoder demands. */
static void write_body(struct writer *w, const struct psd_manifest_params *p,
		       const struct psd_geometry *g,
		       const uint8_t (*index_hashes)[PSD_HASH_LEN],
		       const uint8_t publisher[PSD_PUBKEY_LEN])
{
	size_t body_len;

	w->off = PSD_MANIFEST_HEADER_LEN;
	put_u64_field(w, PSD_MF_TAG_SIZE, g->size);
	put_u32_field(w, PSD_MF_TAG_CHUNK_SIZE, g->chunk_size);
	put_u64_field(w, PSD_MF_TAG_CHUNK_COUNT, g->chunk_count);
	put_u32_field(w, PSD_MF_TAG_INDEX_CHUNK_SIZE, g->index_chunk_size);
	put_field(w, PSD_MF_TAG_NAME, p->name, strlen(p->name));
	if (p->parent)
		put_field(w, PSD_MF_TAG_PARENT, p->parent, PSD_HASH_LEN);
	put_u64_field(w, PSD_MF_TAG_CREATED, p->created);
	put_field(w, PSD_MF_TAG_PUBLISHER, publisher, PSD_PUBKEY_LEN);
	put_field(w, PSD_MF_TAG_INDEX_HASHES, index_hashes,
		  (size_t)g->index_count * PSD_HASH_LEN);
	body_len = w->off;
	memcpy(w->p, PSD_MANIFEST_MAGIC, 8);
	put_le16(w->p + 8, PSD_MANIFEST_VERSION);
	put_le16(w->p + 10, 0);
	put_le32(w->p + 12, (uint32_t)body_len);
}

/* The same checks as decoding, so we never publish what peers refuse. */
static int check_params(const struct psd_manifest_params *p, size_t n_index,
			struct psd_geometry *ret_geo, struct psd_mf_err *err)
{
	int r;

	r = psd_geometry_init(ret_geo, p->size, p->chunk_size,
			      p->index_chunk_size, err);
	if (r < 0)
		return r;
	if (n_index != ret_geo->index_count)
		return fail(err, PSD_MF_BAD_INDEX_COUNT, -EINVAL,
			    "%zu index hashes given; the geometry has %u index chunks",
			    n_index, ret_geo->index_count);
	if (!p->name)
		return fail(err, PSD_MF_BAD_NAME, -EINVAL, "no name");
	r = check_name((const uint8_t *)p->name, strlen(p->name), -EINVAL,
		       err);
	if (r == 0 && p->parent)
		r = check_parent(p->parent, -EINVAL, err);
	if (r == 0)
		r = check_time(p->created, -EINVAL, err);
	return r;
}

int psd_manifest_encode(const struct psd_manifest_params *p,
			const uint8_t (*index_hashes)[PSD_HASH_LEN],
			size_t n_index, const struct psd_identity *signer,
			uint8_t **ret_buf, size_t *ret_len,
			struct psd_mf_err *err)
{
	struct psd_geometry g;
	struct writer w;
	size_t len;
	int r;

	r = check_params(p, n_index, &g, err);
	if (r < 0)
		return r;
	len = psd_manifest_encoded_len(&g, strlen(p->name),
				       p->parent != NULL);
	w.p = malloc(len);
	if (!w.p)
		return fail(err, PSD_MF_NO_MEMORY, -ENOMEM, "out of memory");
	write_body(&w, p, &g, index_hashes, signer->pk);
	crypto_sign_detached(w.p + w.off, NULL, w.p, w.off, signer->sk);
	*ret_buf = w.p;
	*ret_len = len;
	ok(err);
	return 0;
}

/* ---- decoding: header and framing -------------------------------------- */

/* Bounds every length against the input before anything else is read. */
static int check_header(const uint8_t *buf, size_t len, size_t *ret_body_len,
			struct psd_mf_err *err)
{
	uint32_t body_len;

	if (len > PSD_MANIFEST_MAX_LEN)
		return fail(err, PSD_MF_TOO_LARGE, -EBADMSG,
			    "%zu bytes; a manifest has at most %u", len,
			    PSD_MANIFEST_MAX_LEN);
	if (len < PSD_MANIFEST_HEADER_LEN)
		return fail(err, PSD_MF_TRUNCATED, -EBADMSG,
			    "%zu bytes; the header alone has %d", len,
			    PSD_MANIFEST_HEADER_LEN);
	if (memcmp(buf, PSD_MANIFEST_MAGIC, 8))
		return fail(err, PSD_MF_BAD_MAGIC, -EBADMSG,
			    "not a peersnap manifest (bad magic)");
	if (get_le16(buf + 8) != PSD_MANIFEST_VERSION)
		return fail(err, PSD_MF_BAD_VERSION, -EBADMSG,
			    "manifest version %u; this agent reads version %d",
			    get_le16(buf + 8), PSD_MANIFEST_VERSION);
	if (get_le16(buf + 10))
		return fail(err, PSD_MF_BAD_FLAGS, -EBADMSG,
			    "header flags 0x%04x; version 1 defines none",
			    get_le16(buf + 10));
	body_len = get_le32(buf + 12);
	if (body_len < PSD_MANIFEST_HEADER_LEN ||
	    body_len > PSD_MANIFEST_MAX_BODY)
		return fail(err, PSD_MF_BAD_BODY_LEN, -EBADMSG,
			    "body length %u out of range %d..%u", body_len,
			    PSD_MANIFEST_HEADER_LEN, PSD_MANIFEST_MAX_BODY);
	if (len < (size_t)body_len + PSD_SIG_LEN)
		return fail(err, PSD_MF_TRUNCATED, -EBADMSG,
			    "%zu bytes; the header announces a %u-byte body and a %d-byte signature",
			    len, body_len, PSD_SIG_LEN);
	if (len > (size_t)body_len + PSD_SIG_LEN)
		return fail(err, PSD_MF_TRAILING_BYTES, -EBADMSG,
			    "%zu bytes after the signature",
			    len - body_len - PSD_SIG_LEN);
	*ret_body_len = body_len;
	return 0;
}

/* Per known tag: its name for messages and its length bounds. */
struct field_rule {
	const char *name;
	uint32_t min_len, max_len;
	bool required;
};

static const struct field_rule field_rules[PSD_MF_TAG_MAX + 1] = {
	[PSD_MF_TAG_SIZE] = { "size", 8, 8, true },
	[PSD_MF_TAG_CHUNK_SIZE] = { "chunk_size", 4, 4, true },
	[PSD_MF_TAG_CHUNK_COUNT] = { "chunk_count", 8, 8, true },
	[PSD_MF_TAG_INDEX_CHUNK_SIZE] = { "index_chunk_size", 4, 4, true },
	[PSD_MF_TAG_NAME] = { "name", 1, PSD_MANIFEST_NAME_MAX, true },
	[PSD_MF_TAG_PARENT] = { "parent", PSD_HASH_LEN, PSD_HASH_LEN, false },
	[PSD_MF_TAG_CREATED] = { "created", 8, 8, true },
	[PSD_MF_TAG_PUBLISHER] = { "publisher", PSD_PUBKEY_LEN,
				   PSD_PUBKEY_LEN, true },
	[PSD_MF_TAG_INDEX_HASHES] = { "index_hashes", PSD_HASH_LEN,
				      PSD_MANIFEST_MAX_INDEX_CHUNKS *
					      PSD_HASH_LEN, true },
};

/* The known fields of a body, as views into it. */
struct fields {
	const uint8_t *v[PSD_MF_TAG_MAX + 1];	/* NULL: absent */
	uint32_t len[PSD_MF_TAG_MAX + 1];
};

static bool tag_known(uint32_t tag)
{
	return tag >= 1 && tag <= PSD_MF_TAG_MAX;
}

static const char *tag_name(uint32_t tag)
{
	if (tag_known(tag))
		return field_rules[tag].name;
	return tag >= PSD_MF_TAG_OPTIONAL ? "optional" : "unknown";
}

/* One field whose framing is in bounds: order, duplicates, its length. */
static int take_field(struct fields *f, uint32_t tag, long prev,
		      const uint8_t *v, uint32_t len, size_t off,
		      struct psd_mf_err *err)
{
	const struct field_rule *rule;

	if ((long)tag == prev || (tag_known(tag) && f->v[tag]))
		return fail(err, PSD_MF_DUPLICATE_FIELD, -EBADMSG,
			    "duplicate field %s (tag %u) at offset %zu",
			    tag_name(tag), tag, off);
	if ((long)tag < prev)
		return fail(err, PSD_MF_FIELD_ORDER, -EBADMSG,
			    "field %s (tag %u) at offset %zu after tag %ld; tags must ascend",
			    tag_name(tag), tag, off, prev);
	if (!tag_known(tag)) {
		if (tag >= PSD_MF_TAG_OPTIONAL)
			return 0;	/* later versions' optional fields */
		return fail(err, PSD_MF_UNKNOWN_FIELD, -EBADMSG,
			    "unknown critical field tag %u at offset %zu",
			    tag, off);
	}
	rule = &field_rules[tag];
	if (len < rule->min_len || len > rule->max_len)
		return fail(err, PSD_MF_FIELD_LENGTH, -EBADMSG,
			    "field %s (tag %u) has %u bytes; %u to %u allowed",
			    rule->name, tag, len, rule->min_len, rule->max_len);
	f->v[tag] = v;
	f->len[tag] = len;
	return 0;
}

static int parse_fields(const uint8_t *body, size_t body_len,
			struct fields *ret, struct psd_mf_err *err)
{
	size_t off = PSD_MANIFEST_HEADER_LEN;
	uint32_t tag, len;
	long prev = -1;		/* tags are u16: -1 is "none yet" */
	int r;

	memset(ret, 0, sizeof(*ret));
	while (off < body_len) {
		if (body_len - off < PSD_MANIFEST_FIELD_HDR_LEN)
			return fail(err, PSD_MF_TRUNCATED, -EBADMSG,
				    "field header at offset %zu cut short by the body's end",
				    off);
		tag = get_le16(body + off);
		len = get_le32(body + off + 2);
		if (len > body_len - off - PSD_MANIFEST_FIELD_HDR_LEN)
			return fail(err, PSD_MF_TRUNCATED, -EBADMSG,
				    "field %s (tag %u) at offset %zu: %u bytes run past the body's end",
				    tag_name(tag), tag, off, len);
		r = take_field(ret, tag, prev,
			       body + off + PSD_MANIFEST_FIELD_HDR_LEN, len,
			       off, err);
		if (r < 0)
			return r;
		prev = tag;
		off += PSD_MANIFEST_FIELD_HDR_LEN + (size_t)len;
	}
	return 0;
}

/* ---- decoding: meaning ------------------------------------------------- */

static int check_required(const struct fields *f, struct psd_mf_err *err)
{
	uint32_t tag;

	for (tag = 1; tag <= PSD_MF_TAG_MAX; tag++)
		if (field_rules[tag].required && !f->v[tag])
			return fail(err, PSD_MF_MISSING_FIELD, -EBADMSG,
				    "missing field %s (tag %u)",
				    field_rules[tag].name, tag);
	return 0;
}

/* Geometry from the fields; chunk_count must agree with size. */
static int decode_geometry(const struct fields *f, struct psd_geometry *ret,
			   struct psd_mf_err *err)
{
	uint64_t count = get_le64(f->v[PSD_MF_TAG_CHUNK_COUNT]);
	uint64_t n_hashes = f->len[PSD_MF_TAG_INDEX_HASHES] / PSD_HASH_LEN;
	int r;

	/* 0 is not "the default" here: a manifest states its geometry. */
	r = geometry_make(ret, get_le64(f->v[PSD_MF_TAG_SIZE]),
			  get_le32(f->v[PSD_MF_TAG_CHUNK_SIZE]),
			  get_le32(f->v[PSD_MF_TAG_INDEX_CHUNK_SIZE]), err);
	if (r < 0)
		return -EBADMSG;	/* err says why */
	if (count != ret->chunk_count)
		return fail(err, PSD_MF_BAD_CHUNK_COUNT, -EBADMSG,
			    "chunk count %llu; size %llu in chunks of %u bytes is %llu",
			    (unsigned long long)count,
			    (unsigned long long)ret->size, ret->chunk_size,
			    (unsigned long long)ret->chunk_count);
	if (f->len[PSD_MF_TAG_INDEX_HASHES] % PSD_HASH_LEN ||
	    n_hashes != ret->index_count)
		return fail(err, PSD_MF_BAD_INDEX_COUNT, -EBADMSG,
			    "index_hashes has %u bytes; %u index chunks need %llu",
			    f->len[PSD_MF_TAG_INDEX_HASHES], ret->index_count,
			    (unsigned long long)ret->index_count *
				    PSD_HASH_LEN);
	return 0;
}

static int decode_meaning(const struct fields *f, struct psd_manifest *m,
			  struct psd_mf_err *err)
{
	int r;

	r = check_required(f, err);
	if (r == 0)
		r = decode_geometry(f, &m->geo, err);
	if (r == 0)
		r = check_name(f->v[PSD_MF_TAG_NAME], f->len[PSD_MF_TAG_NAME],
			       -EBADMSG, err);
	if (r == 0 && f->v[PSD_MF_TAG_PARENT])
		r = check_parent(f->v[PSD_MF_TAG_PARENT], -EBADMSG, err);
	if (r == 0) {
		m->created = get_le64(f->v[PSD_MF_TAG_CREATED]);
		r = check_time(m->created, -EBADMSG, err);
	}
	return r;
}

/* ---- decoding: the result ---------------------------------------------- */

/* Fills m from fields that point into buf; m->raw is a copy of buf. */
static void fill(struct psd_manifest *m, const uint8_t *buf, size_t len,
		 size_t body_len, const struct fields *f)
{
	memcpy(m->raw, buf, len);
	m->raw_len = len;
	m->body_len = body_len;
	memcpy(m->name, f->v[PSD_MF_TAG_NAME], f->len[PSD_MF_TAG_NAME]);
	m->name[f->len[PSD_MF_TAG_NAME]] = '\0';
	m->has_parent = f->v[PSD_MF_TAG_PARENT] != NULL;
	if (m->has_parent)
		memcpy(m->parent, f->v[PSD_MF_TAG_PARENT], PSD_HASH_LEN);
	memcpy(m->publisher, f->v[PSD_MF_TAG_PUBLISHER], PSD_PUBKEY_LEN);
	m->index_hashes = (const uint8_t(*)[PSD_HASH_LEN])(
		m->raw + (f->v[PSD_MF_TAG_INDEX_HASHES] - buf));
	m->signature = m->raw + body_len;
	/* The id names the signed body; the signature is not part of it. */
	crypto_generichash(m->id, PSD_HASH_LEN, m->raw, body_len, NULL, 0);
}

/* Everything but the signature and trust. */
static int decode_unverified(const void *buf, size_t len,
			     struct psd_manifest **ret, struct psd_mf_err *err)
{
	struct psd_manifest *m;
	size_t body_len = 0;
	struct fields f;
	int r;

	r = check_header(buf, len, &body_len, err);
	if (r == 0)
		r = parse_fields(buf, body_len, &f, err);
	if (r < 0)
		return r;
	m = calloc(1, sizeof(*m) + len);
	if (!m)
		return fail(err, PSD_MF_NO_MEMORY, -ENOMEM, "out of memory");
	r = decode_meaning(&f, m, err);
	if (r < 0) {
		free(m);
		return r;
	}
	fill(m, buf, len, body_len, &f);
	*ret = m;
	return 0;
}

static int verify_signature(const struct psd_manifest *m,
			    struct psd_mf_err *err)
{
	char hex[PSD_PUBKEY_HEX_LEN + 1];

	if (crypto_sign_verify_detached(m->signature, m->raw, m->body_len,
					m->publisher) == 0)
		return 0;
	psd_pubkey_format(m->publisher, hex);
	return fail(err, PSD_MF_BAD_SIGNATURE, -EBADMSG,
		    "signature does not verify with publisher key %s (tampered or not signed by it)",
		    hex);
}

/* The last step of decoding and accepting: m is returned or freed. */
static int verify_and_hand_over(struct psd_manifest *m,
				struct psd_manifest **ret,
				struct psd_mf_err *err)
{
	int r = verify_signature(m, err);

	if (r < 0) {
		free(m);
		return r;
	}
	*ret = m;
	ok(err);
	return 0;
}

int psd_manifest_decode(const void *buf, size_t len,
			struct psd_manifest **ret, struct psd_mf_err *err)
{
	struct psd_manifest *m;
	int r;

	r = decode_unverified(buf, len, &m, err);
	if (r < 0)
		return r;
	return verify_and_hand_over(m, ret, err);
}

bool psd_trust_has(const struct psd_trust *t,
		   const uint8_t pk[PSD_PUBKEY_LEN])
{
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (!memcmp(t->keys[i], pk, PSD_PUBKEY_LEN))
			return true;
	return false;
}

int psd_manifest_accept(const void *buf, size_t len,
			const struct psd_trust *trust,
			struct psd_manifest **ret, struct psd_mf_err *err)
{
	char hex[PSD_PUBKEY_HEX_LEN + 1];
	struct psd_manifest *m;
	int r;

	r = decode_unverified(buf, len, &m, err);
	if (r < 0)
		return r;
	if (!psd_trust_has(trust, m->publisher)) {
		psd_pubkey_format(m->publisher, hex);
		free(m);
		return fail(err, PSD_MF_UNTRUSTED, -EKEYREJECTED,
			    "publisher key %s is not trusted", hex);
	}
	return verify_and_hand_over(m, ret, err);
}

void psd_manifest_free(struct psd_manifest *m)
{
	free(m);
}

/* ---- the index --------------------------------------------------------- */

int psd_manifest_index_verify(const struct psd_manifest *m, uint32_t index,
			      const void *buf, size_t len,
			      struct psd_mf_err *err)
{
	size_t want = psd_geometry_index_len(&m->geo, index);

	if (!want)
		return fail(err, PSD_MF_BAD_INDEX_CHUNK, -ERANGE,
			    "index chunk %u of %u does not exist", index,
			    m->geo.index_count);
	if (len != want)
		return fail(err, PSD_MF_BAD_INDEX_CHUNK, -EBADMSG,
			    "index chunk %u has %zu bytes; expected %zu",
			    index, len, want);
	if (psd_chunkhash_verify(buf, len, m->index_hashes[index]))
		return fail(err, PSD_MF_BAD_INDEX_CHUNK, -EBADMSG,
			    "index chunk %u does not match its hash", index);
	ok(err);
	return 0;
}

int psd_manifest_chunk_hash(const struct psd_manifest *m, uint64_t chunk,
			    const void *index_chunk,
			    uint8_t ret[PSD_HASH_LEN])
{
	uint32_t index, slot;

	if (psd_geometry_locate(&m->geo, chunk, &index, &slot))
		return -ERANGE;
	if (!index_chunk) {
		if (!psd_hash_is_zero(m->index_hashes[index]))
			return -EINVAL;
		memset(ret, 0, PSD_HASH_LEN);
		return 0;
	}
	memcpy(ret, (const uint8_t *)index_chunk + (size_t)slot * PSD_HASH_LEN,
	       PSD_HASH_LEN);
	return 0;
}
