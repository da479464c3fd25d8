// SPDX-License-Identifier: GPL-2.0
/*
 * Manifests: the byte layout of docs/manifest-format.md (built here
 * independently of the encoder, field by field, and compared), round
 * trips, signatures and trust, every malformed input the decoder must
 * refuse with its own code, the index math at 4 KiB, 256 KiB and 4 MiB
 * chunks up to 1 TiB and beyond, and all-zero chunks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "manifest.h"

#define KiB	(1ull << 10)
#define MiB	(1ull << 20)
#define TiB	(1ull << 40)

/* ---- a spec-driven builder, independent of manifest.c ------------------ */

struct field {
	uint16_t tag;
	uint32_t len;
	const uint8_t *ptr;		/* NULL: the bytes are in inl */
	uint8_t inl[PSD_MANIFEST_NAME_MAX + 8];
};

struct spec {
	struct field f[16];
	size_t n;
};

static struct field f_bytes(uint16_t tag, const void *v, uint32_t len)
{
	struct field f = { .tag = tag, .len = len };

	if (len <= sizeof(f.inl))
		memcpy(f.inl, v, len);
	else
		f.ptr = v;
	return f;
}

static struct field f_u64(uint16_t tag, uint64_t v)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> 8 * i);
	return f_bytes(tag, b, 8);
}

static struct field f_u32(uint16_t tag, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			 (uint8_t)(v >> 24) };

	return f_bytes(tag, b, 4);
}

static const uint8_t *field_bytes(const struct field *f)
{
	return f->ptr ? f->ptr : f->inl;
}

/* Header, fields in the given order, signature by signer. */
static uint8_t *assemble(const struct spec *s,
			 const struct psd_identity *signer, size_t *ret_len)
{
	size_t body = PSD_MANIFEST_HEADER_LEN, off, i;
	uint8_t *buf;

	for (i = 0; i < s->n; i++)
		body += 6 + s->f[i].len;
	buf = calloc(1, body + PSD_SIG_LEN);
	if (!buf)
		abort();
	memcpy(buf, "PSNAPMAN", 8);
	buf[8] = 1;				/* version 1, flags 0 */
	buf[12] = (uint8_t)body;
	buf[13] = (uint8_t)(body >> 8);
	buf[14] = (uint8_t)(body >> 16);
	buf[15] = (uint8_t)(body >> 24);
	for (off = PSD_MANIFEST_HEADER_LEN, i = 0; i < s->n; i++) {
		const struct field *f = &s->f[i];

		buf[off] = (uint8_t)f->tag;
		buf[off + 1] = (uint8_t)(f->tag >> 8);
		buf[off + 2] = (uint8_t)f->len;
		buf[off + 3] = (uint8_t)(f->len >> 8);
		buf[off + 4] = (uint8_t)(f->len >> 16);
		buf[off + 5] = (uint8_t)(f->len >> 24);
		memcpy(buf + off + 6, field_bytes(f), f->len);
		off += 6 + f->len;
	}
	crypto_sign_detached(buf + body, NULL, buf, body, signer->sk);
	*ret_len = body + PSD_SIG_LEN;
	return buf;
}

/* Two publishers, from fixed seeds. */
static struct psd_identity alice, bob;

static void init_keys(void)
{
	uint8_t seed[PSD_SEED_LEN];

	if (psd_chunkhash_init())
		abort();
	memset(seed, 'a', sizeof(seed));
	psd_identity_from_seed(seed, &alice);
	memset(seed, 'b', sizeof(seed));
	psd_identity_from_seed(seed, &bob);
}

/* The good manifest: 10 chunks of 4 KiB (the last one partial), one 4 KiB
 * index chunk, a parent, by alice. */
#define GOOD_SIZE	(10 * 4096 - 100)
#define GOOD_NAME	"debian-12 base"
#define GOOD_TIME	1700000000ull

static const uint8_t good_parent[PSD_HASH_LEN] = { 0x5a, 0x5a, 0x5a, 1 };
static uint8_t good_index[1][PSD_HASH_LEN] = { { 0x17, 0x42 } };

/* Field positions in the good spec, in tag order. */
enum { F_SIZE, F_CHUNK_SIZE, F_COUNT, F_ISIZE, F_NAME, F_PARENT, F_TIME,
       F_PUB, F_INDEX, N_GOOD };

static void good_spec(struct spec *s)
{
	s->n = N_GOOD;
	s->f[F_SIZE] = f_u64(PSD_MF_TAG_SIZE, GOOD_SIZE);
	s->f[F_CHUNK_SIZE] = f_u32(PSD_MF_TAG_CHUNK_SIZE, 4096);
	s->f[F_COUNT] = f_u64(PSD_MF_TAG_CHUNK_COUNT, 10);
	s->f[F_ISIZE] = f_u32(PSD_MF_TAG_INDEX_CHUNK_SIZE, 4096);
	s->f[F_NAME] = f_bytes(PSD_MF_TAG_NAME, GOOD_NAME, strlen(GOOD_NAME));
	s->f[F_PARENT] = f_bytes(PSD_MF_TAG_PARENT, good_parent, 32);
	s->f[F_TIME] = f_u64(PSD_MF_TAG_CREATED, GOOD_TIME);
	s->f[F_PUB] = f_bytes(PSD_MF_TAG_PUBLISHER, alice.pk, 32);
	s->f[F_INDEX] = f_bytes(PSD_MF_TAG_INDEX_HASHES, good_index, 32);
}

static const struct psd_manifest_params good_params = {
	.size = GOOD_SIZE, .chunk_size = 4096, .index_chunk_size = 0,
	.name = GOOD_NAME, .parent = good_parent, .created = GOOD_TIME,
};

static void spec_remove(struct spec *s, size_t i)
{
	memmove(&s->f[i], &s->f[i + 1], (s->n - i - 1) * sizeof(s->f[0]));
	s->n--;
}

static void spec_insert(struct spec *s, size_t i, struct field f)
{
	memmove(&s->f[i + 1], &s->f[i], (s->n - i) * sizeof(s->f[0]));
	s->f[i] = f;
	s->n++;
}

/* Decodes (and accepts, alice trusted): both must refuse with code. */
static void expect_refused(struct __test_metadata *_metadata,
			   const uint8_t *buf, size_t len, enum psd_mf_code code)
{
	struct psd_trust trust = { .keys = &alice.pk, .n = 1 };
	struct psd_manifest *m = NULL;
	struct psd_mf_err err = { .code = PSD_MF_OK };
	int r;

	r = psd_manifest_decode(buf, len, &m, &err);
	EXPECT_EQ(-EBADMSG, r);
	EXPECT_EQ(NULL, m);
	EXPECT_STREQ(psd_mf_code_str(code), psd_mf_code_str(err.code))
		TH_LOG("%s", err.msg);
	EXPECT_NE(0, err.msg[0]);
	r = psd_manifest_accept(buf, len, &trust, &m, &err);
	EXPECT_EQ(-EBADMSG, r);
	EXPECT_EQ(NULL, m);
	EXPECT_EQ(code, err.code);
	if (r == 0)
		psd_manifest_free(m);
}

static void expect_spec_refused(struct __test_metadata *_metadata,
				const struct spec *s, enum psd_mf_code code)
{
	size_t len;
	uint8_t *buf = assemble(s, &alice, &len);

	expect_refused(_metadata, buf, len, code);
	free(buf);
}

static struct psd_manifest *decode_ok(struct __test_metadata *_metadata,
				      const uint8_t *buf, size_t len)
{
	struct psd_manifest *m = NULL;
	struct psd_mf_err err;

	EXPECT_EQ(0, psd_manifest_decode(buf, len, &m, &err))
		TH_LOG("%s", err.msg);
	return m;
}

/* Assembles and decodes a spec that must be accepted; NULL if not. The
 * manifest keeps its own copy of the bytes. */
static struct psd_manifest *decode_spec(struct __test_metadata *_metadata,
					const struct spec *s)
{
	struct psd_manifest *m;
	size_t len;
	uint8_t *buf = assemble(s, &alice, &len);

	m = decode_ok(_metadata, buf, len);
	free(buf);
	return m;
}

/* ---- layout, round trips, id ------------------------------------------- */

TEST(encoder_writes_the_documented_layout)
{
	uint8_t *enc, *spec_buf;
	size_t enc_len, spec_len;
	struct psd_mf_err err;
	struct spec s;

	init_keys();
	good_spec(&s);
	spec_buf = assemble(&s, &alice, &spec_len);
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &enc, &enc_len, &err))
		TH_LOG("%s", err.msg);
	ASSERT_EQ(spec_len, enc_len);
	EXPECT_EQ(0, memcmp(spec_buf, enc, enc_len));
	/* A few bytes by hand: magic, version 1, first field = size. */
	EXPECT_EQ(0, memcmp(enc, "PSNAPMAN\x01\x00\x00\x00", 12));
	EXPECT_EQ(0, memcmp(enc + 16, "\x01\x00\x08\x00\x00\x00", 6));
	EXPECT_EQ(GOOD_SIZE & 0xff, enc[22]);
	/* 192 bytes of framing and fixed fields, the name, the parent. */
	EXPECT_EQ(192 + strlen(GOOD_NAME) + 38 + 32, enc_len);
	free(enc);
	free(spec_buf);
}

TEST(round_trip_every_field)
{
	uint8_t id[PSD_HASH_LEN], *buf, *again;
	struct psd_manifest *m;
	size_t len, again_len;

	init_keys();
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &buf, &len, NULL));
	m = decode_ok(_metadata, buf, len);
	ASSERT_NE(NULL, m);
	EXPECT_EQ(GOOD_SIZE, m->geo.size);
	EXPECT_EQ(4096, m->geo.chunk_size);
	EXPECT_EQ(10, m->geo.chunk_count);
	EXPECT_EQ(4096, m->geo.index_chunk_size);
	EXPECT_EQ(128, m->geo.index_entries);
	EXPECT_EQ(1, m->geo.index_count);
	EXPECT_STREQ(GOOD_NAME, m->name);
	EXPECT_TRUE(m->has_parent);
	EXPECT_EQ(0, memcmp(good_parent, m->parent, 32));
	EXPECT_EQ(GOOD_TIME, m->created);
	EXPECT_EQ(0, memcmp(alice.pk, m->publisher, 32));
	EXPECT_EQ(0, memcmp(good_index, m->index_hashes, 32));
	EXPECT_EQ(len - 64, m->body_len);
	EXPECT_EQ(len, m->raw_len);
	EXPECT_EQ(0, memcmp(buf, m->raw, len));
	EXPECT_EQ(m->raw + len - 64, m->signature);
	/* The id is the BLAKE2b-256 of the body, signature excluded. */
	crypto_generichash(id, sizeof(id), buf, len - 64, NULL, 0);
	EXPECT_EQ(0, memcmp(id, m->id, sizeof(id)));
	/* Ed25519 is deterministic: the same input, the same bytes. */
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &again, &again_len, NULL));
	EXPECT_EQ(len, again_len);
	EXPECT_EQ(0, memcmp(buf, again, len));
	psd_manifest_free(m);
	free(again);
	free(buf);
}

TEST(round_trip_without_parent_and_ids_differ)
{
	struct psd_manifest_params p = good_params;
	struct psd_manifest *a, *b;
	uint8_t *buf_a, *buf_b;
	size_t len_a, len_b;

	init_keys();
	ASSERT_EQ(0, psd_manifest_encode(&p, good_index, 1, &alice, &buf_a,
					 &len_a, NULL));
	p.parent = NULL;
	ASSERT_EQ(0, psd_manifest_encode(&p, good_index, 1, &alice, &buf_b,
					 &len_b, NULL));
	EXPECT_EQ(len_a - 38, len_b);
	a = decode_ok(_metadata, buf_a, len_a);
	b = decode_ok(_metadata, buf_b, len_b);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	EXPECT_FALSE(b->has_parent);
	EXPECT_NE(0, memcmp(a->id, b->id, PSD_HASH_LEN));
	psd_manifest_free(a);
	psd_manifest_free(b);
	psd_manifest_free(NULL);
	free(buf_a);
	free(buf_b);
}

/* ---- trust and signatures ---------------------------------------------- */

TEST(accepted_only_from_a_trusted_publisher)
{
	uint8_t keys[3][PSD_PUBKEY_LEN] = { { 1 }, { 2 } };
	struct psd_trust config = { .keys = keys, .n = 3 };
	struct psd_trust only_bob = { .keys = &bob.pk, .n = 1 };
	char want[192], hex[PSD_PUBKEY_HEX_LEN + 1];
	struct psd_manifest *m = NULL;
	struct psd_mf_err err;
	uint8_t *buf;
	size_t len;

	init_keys();
	memcpy(keys[2], alice.pk, PSD_PUBKEY_LEN);
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &buf, &len, NULL));
	ASSERT_EQ(0, psd_manifest_accept(buf, len, &config, &m, &err));
	EXPECT_EQ(PSD_MF_OK, err.code);
	psd_manifest_free(m);

	m = NULL;
	EXPECT_EQ(-EKEYREJECTED,
		  psd_manifest_accept(buf, len, &only_bob, &m, &err));
	EXPECT_EQ(NULL, m);
	EXPECT_EQ(PSD_MF_UNTRUSTED, err.code);
	psd_pubkey_format(alice.pk, hex);
	snprintf(want, sizeof(want), "publisher key %s is not trusted", hex);
	EXPECT_STREQ(want, err.msg);
	EXPECT_EQ(-EKEYREJECTED, psd_manifest_accept(buf, len, NULL, &m, &err));
	EXPECT_FALSE(psd_trust_has(NULL, alice.pk));
	free(buf);
}

/* Signed by bob while naming alice (trusted) as publisher; and the other
 * way round. Either way it is a bad signature, never accepted. */
TEST(wrong_key)
{
	struct psd_trust both = { .keys = NULL, .n = 2 };
	uint8_t keys[2][PSD_PUBKEY_LEN];
	struct psd_manifest *m = NULL;
	struct psd_mf_err err;
	struct spec s;
	uint8_t *buf;
	size_t len;

	init_keys();
	memcpy(keys[0], alice.pk, 32);
	memcpy(keys[1], bob.pk, 32);
	both.keys = keys;
	good_spec(&s);
	buf = assemble(&s, &bob, &len);
	expect_refused(_metadata, buf, len, PSD_MF_BAD_SIGNATURE);
	EXPECT_EQ(-EBADMSG, psd_manifest_accept(buf, len, &both, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "does not verify"));
	free(buf);
}

/* Any single byte changed anywhere: refused, whatever the reason. */
TEST(every_tampered_byte_is_refused)
{
	struct psd_manifest *m;
	struct psd_mf_err err;
	size_t len, i, sig = 0;
	uint8_t *buf;

	init_keys();
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &buf, &len, NULL));
	for (i = 0; i < len; i++) {
		m = NULL;
		buf[i] ^= 0x20;
		EXPECT_EQ(-EBADMSG, psd_manifest_decode(buf, len, &m, &err))
			TH_LOG("byte %zu", i);
		EXPECT_EQ(NULL, m);
		sig += err.code == PSD_MF_BAD_SIGNATURE;
		buf[i] ^= 0x20;
	}
	/* At least every value byte of the name, time, publisher, index
	 * and signature is caught by the signature alone. */
	EXPECT_LE(strlen(GOOD_NAME) + 8 + 32 + 32 + 64, sig);
	free(buf);
}

/* ---- framing ----------------------------------------------------------- */

TEST(every_truncation)
{
	uint8_t *buf;
	size_t len, i;

	init_keys();
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &buf, &len, NULL));
	for (i = 0; i < len; i++)
		expect_refused(_metadata, buf, i, PSD_MF_TRUNCATED);
	free(buf);
}

TEST(trailing_bytes_and_oversized_input)
{
	uint8_t *buf, *big;
	size_t len;

	init_keys();
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &buf, &len, NULL));
	big = calloc(1, PSD_MANIFEST_MAX_LEN + 1);
	ASSERT_NE(NULL, big);
	memcpy(big, buf, len);
	expect_refused(_metadata, big, len + 1, PSD_MF_TRAILING_BYTES);
	expect_refused(_metadata, big, PSD_MANIFEST_MAX_LEN + 1,
		       PSD_MF_TOO_LARGE);
	free(big);
	free(buf);
}

static void set_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

TEST(header_magic_version_flags_body_length)
{
	static const struct {
		size_t off;
		uint8_t val;
		enum psd_mf_code code;
	} bad[] = {
		{ 0, 'p', PSD_MF_BAD_MAGIC }, { 7, 'M', PSD_MF_BAD_MAGIC },
		{ 8, 0, PSD_MF_BAD_VERSION }, { 8, 2, PSD_MF_BAD_VERSION },
		{ 9, 1, PSD_MF_BAD_VERSION }, { 10, 1, PSD_MF_BAD_FLAGS },
		{ 11, 0x80, PSD_MF_BAD_FLAGS },
	};
	static const struct {
		uint32_t body_len;
		enum psd_mf_code code;
	} lens[] = {
		{ 0, PSD_MF_BAD_BODY_LEN }, { 15, PSD_MF_BAD_BODY_LEN },
		{ PSD_MANIFEST_MAX_BODY + 1, PSD_MF_BAD_BODY_LEN },
		{ UINT32_MAX, PSD_MF_BAD_BODY_LEN },
		{ 16, PSD_MF_TRAILING_BYTES },
		{ PSD_MANIFEST_MAX_BODY, PSD_MF_TRUNCATED },
	};
	uint8_t *buf;
	size_t len, i;

	init_keys();
	ASSERT_EQ(0, psd_manifest_encode(&good_params, good_index, 1, &alice,
					 &buf, &len, NULL));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t keep = buf[bad[i].off];

		buf[bad[i].off] = bad[i].val;
		expect_refused(_metadata, buf, len, bad[i].code);
		buf[bad[i].off] = keep;
	}
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		set_le32(buf + 12, lens[i].body_len);
		expect_refused(_metadata, buf, len, lens[i].code);
	}
	free(buf);
}

/* The good spec and two optional fields of tags a and b, in that order. */
static void expect_two_optional(struct __test_metadata *_metadata,
				uint16_t a, uint16_t b, enum psd_mf_code code)
{
	struct spec s;

	good_spec(&s);
	s.f[s.n++] = f_u32(a, 7);
	s.f[s.n++] = f_u32(b, 7);
	expect_spec_refused(_metadata, &s, code);
}

TEST(duplicate_fields)
{
	static const size_t which[] = { F_SIZE, F_NAME, F_PARENT, F_PUB,
					F_INDEX };
	struct spec s;
	size_t i;

	init_keys();
	for (i = 0; i < sizeof(which) / sizeof(which[0]); i++) {
		good_spec(&s);
		spec_insert(&s, which[i] + 1, s.f[which[i]]);
		expect_spec_refused(_metadata, &s, PSD_MF_DUPLICATE_FIELD);
	}
	/* Seen again later (so out of order too): reported as a duplicate,
	 * which says more. */
	good_spec(&s);
	s.n--;
	s.f[s.n++] = f_u64(PSD_MF_TAG_SIZE, GOOD_SIZE);
	expect_spec_refused(_metadata, &s, PSD_MF_DUPLICATE_FIELD);
	expect_two_optional(_metadata, 0x8001, 0x8001, PSD_MF_DUPLICATE_FIELD);
}

TEST(fields_out_of_order)
{
	struct field t;
	struct spec s;

	init_keys();
	good_spec(&s);
	t = s.f[F_SIZE];
	s.f[F_SIZE] = s.f[F_CHUNK_SIZE];
	s.f[F_CHUNK_SIZE] = t;
	expect_spec_refused(_metadata, &s, PSD_MF_FIELD_ORDER);
	expect_two_optional(_metadata, 0x8001, 0x8000, PSD_MF_FIELD_ORDER);
}

TEST(unknown_critical_fields_refused_optional_skipped)
{
	static const uint16_t critical[] = { 0, 10, 0x7fff };
	struct psd_manifest *m;
	struct spec s;
	size_t i;

	init_keys();
	for (i = 0; i < sizeof(critical) / sizeof(critical[0]); i++) {
		good_spec(&s);
		if (critical[i] == 0)
			spec_insert(&s, 0, f_u32(0, 1));
		else
			s.f[s.n++] = f_u32(critical[i], 1);
		expect_spec_refused(_metadata, &s, PSD_MF_UNKNOWN_FIELD);
	}
	/* Optional fields of a later version: signed, skipped, in the id. */
	good_spec(&s);
	s.f[s.n++] = f_bytes(0x8000, "", 0);
	s.f[s.n++] = f_bytes(0xffff, "future", 6);
	m = decode_spec(_metadata, &s);
	ASSERT_NE(NULL, m);
	EXPECT_STREQ(GOOD_NAME, m->name);
	psd_manifest_free(m);
}

TEST(field_lengths)
{
	static const uint8_t junk[300];
	static const struct {
		size_t pos;
		uint32_t len;
	} bad[] = {
		{ F_SIZE, 7 }, { F_SIZE, 9 }, { F_CHUNK_SIZE, 8 },
		{ F_COUNT, 4 }, { F_ISIZE, 2 }, { F_NAME, 0 },
		{ F_NAME, 256 }, { F_PARENT, 31 }, { F_PARENT, 33 },
		{ F_TIME, 0 }, { F_PUB, 64 }, { F_INDEX, 0 },
	};
	struct spec s;
	size_t i;

	init_keys();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		good_spec(&s);
		s.f[bad[i].pos] = f_bytes(s.f[bad[i].pos].tag, junk,
					  bad[i].len);
		expect_spec_refused(_metadata, &s, PSD_MF_FIELD_LENGTH);
	}
}

/* A field whose length runs past the body, and a cut field header. */
TEST(field_framing_past_the_body)
{
	uint8_t *buf;
	size_t len;
	struct spec s;

	init_keys();
	good_spec(&s);
	buf = assemble(&s, &alice, &len);
	set_le32(buf + 16 + 2, UINT32_MAX);	/* the size field's length */
	expect_refused(_metadata, buf, len, PSD_MF_TRUNCATED);
	set_le32(buf + 16 + 2, len);
	expect_refused(_metadata, buf, len, PSD_MF_TRUNCATED);
	free(buf);

	s.f[s.n++] = f_bytes(0x8000, "", 0);
	buf = assemble(&s, &alice, &len);
	/* Shrink the body by 3: the last field header is cut short. */
	set_le32(buf + 12, (uint32_t)(len - 64 - 3));
	expect_refused(_metadata, buf, len - 3, PSD_MF_TRUNCATED);
	free(buf);
}

TEST(missing_fields)
{
	struct psd_mf_err err;
	struct psd_manifest *m;
	struct spec s;
	uint8_t *buf;
	size_t len, i;

	init_keys();
	for (i = 0; i < N_GOOD; i++) {
		if (i == F_PARENT)
			continue;
		good_spec(&s);
		spec_remove(&s, i);
		buf = assemble(&s, &alice, &len);
		expect_refused(_metadata, buf, len, PSD_MF_MISSING_FIELD);
		psd_manifest_decode(buf, len, &m, &err);
		EXPECT_NE(NULL, strstr(err.msg, "missing field"));
		free(buf);
	}
	EXPECT_STREQ("missing field index_hashes (tag 9)", err.msg);
}

/* ---- meaning: counts, sizes, overflow ---------------------------------- */

struct value_case {
	size_t pos;
	int width;		/* 4 or 8 */
	uint64_t v;
	enum psd_mf_code code;
};

static const struct value_case value_cases[] = {
	/* Sizes and counts that overflow or disagree. */
	{ F_SIZE, 8, 0, PSD_MF_BAD_SIZE },
	{ F_SIZE, 8, UINT64_MAX, PSD_MF_BAD_SIZE },
	{ F_SIZE, 8, (1ull << 32) * 4096 + 1, PSD_MF_BAD_SIZE },
	{ F_SIZE, 8, 9 * 4096, PSD_MF_BAD_CHUNK_COUNT },
	{ F_SIZE, 8, 10 * 4096 + 1, PSD_MF_BAD_CHUNK_COUNT },
	{ F_COUNT, 8, 0, PSD_MF_BAD_CHUNK_COUNT },
	{ F_COUNT, 8, 9, PSD_MF_BAD_CHUNK_COUNT },
	{ F_COUNT, 8, 11, PSD_MF_BAD_CHUNK_COUNT },
	{ F_COUNT, 8, UINT64_MAX, PSD_MF_BAD_CHUNK_COUNT },
	{ F_COUNT, 8, 1ull << 32, PSD_MF_BAD_CHUNK_COUNT },
	/* Chunk sizes outside the kernel's range or not powers of two. */
	{ F_CHUNK_SIZE, 4, 0, PSD_MF_BAD_CHUNK_SIZE },
	{ F_CHUNK_SIZE, 4, 2048, PSD_MF_BAD_CHUNK_SIZE },
	{ F_CHUNK_SIZE, 4, 4097, PSD_MF_BAD_CHUNK_SIZE },
	{ F_CHUNK_SIZE, 4, 12288, PSD_MF_BAD_CHUNK_SIZE },
	{ F_CHUNK_SIZE, 4, 8 << 20, PSD_MF_BAD_CHUNK_SIZE },
	{ F_CHUNK_SIZE, 4, 1u << 31, PSD_MF_BAD_CHUNK_SIZE },
	{ F_CHUNK_SIZE, 4, UINT32_MAX, PSD_MF_BAD_CHUNK_SIZE },
	{ F_ISIZE, 4, 0, PSD_MF_BAD_INDEX_CHUNK_SIZE },
	{ F_ISIZE, 4, 2048, PSD_MF_BAD_INDEX_CHUNK_SIZE },
	{ F_ISIZE, 4, 6144, PSD_MF_BAD_INDEX_CHUNK_SIZE },
	{ F_ISIZE, 4, 8 << 20, PSD_MF_BAD_INDEX_CHUNK_SIZE },
	{ F_TIME, 8, 1ull << 63, PSD_MF_BAD_TIME },
	{ F_TIME, 8, UINT64_MAX, PSD_MF_BAD_TIME },
};

TEST(values_out_of_range)
{
	struct spec s;
	size_t i;

	init_keys();
	for (i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
		const struct value_case *c = &value_cases[i];

		good_spec(&s);
		s.f[c->pos] = c->width == 8 ?
				      f_u64(s.f[c->pos].tag, c->v) :
				      f_u32(s.f[c->pos].tag, (uint32_t)c->v);
		expect_spec_refused(_metadata, &s, c->code);
	}
}

/* 2^32 chunks is the limit, but listed in 4 KiB index chunks they need
 * 2^25 of them: too many, refused before anything is multiplied. */
TEST(index_counts_that_overflow)
{
	static uint8_t two[2][PSD_HASH_LEN];
	struct spec s;

	init_keys();
	good_spec(&s);
	s.f[F_SIZE] = f_u64(PSD_MF_TAG_SIZE, (1ull << 32) * 4096);
	s.f[F_COUNT] = f_u64(PSD_MF_TAG_CHUNK_COUNT, 1ull << 32);
	expect_spec_refused(_metadata, &s, PSD_MF_BAD_INDEX_COUNT);
	/* Two index hashes where the geometry has one; 33 bytes. */
	good_spec(&s);
	s.f[F_INDEX] = f_bytes(PSD_MF_TAG_INDEX_HASHES, two, 64);
	expect_spec_refused(_metadata, &s, PSD_MF_BAD_INDEX_COUNT);
	s.f[F_INDEX] = f_bytes(PSD_MF_TAG_INDEX_HASHES, two, 33);
	expect_spec_refused(_metadata, &s, PSD_MF_BAD_INDEX_COUNT);
}

static const char *const bad_names[] = {
	"line\nbreak", "esc\x1b[2J", "del\x7f", "tab\there",
	"c1\xc2\x85", "ff\xff", "overlong\xc0\x80", "overlong3\xe0\x80\x80",
	"surrogate\xed\xa0\x80", "cut\xe2\x82", "past\xf4\x90\x80\x80",
	"cont\x80",
};

/* "débian ✓ 🐧": two-, three- and four-byte sequences. */
#define UTF8_NAME "d\xc3\xa9" "bian \xe2\x9c\x93 \xf0\x9f\x90\xa7"

TEST(names)
{
	char long_ok[PSD_MANIFEST_NAME_MAX + 1];
	struct psd_manifest *m;
	struct spec s;
	size_t i;

	init_keys();
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		good_spec(&s);
		s.f[F_NAME] = f_bytes(PSD_MF_TAG_NAME, bad_names[i],
				      strlen(bad_names[i]));
		expect_spec_refused(_metadata, &s, PSD_MF_BAD_NAME);
	}
	good_spec(&s);
	s.f[F_NAME] = f_bytes(PSD_MF_TAG_NAME, "nul\0inside", 10);
	expect_spec_refused(_metadata, &s, PSD_MF_BAD_NAME);

	/* UTF-8 is fine, and 255 bytes is. */
	good_spec(&s);
	s.f[F_NAME] = f_bytes(PSD_MF_TAG_NAME, UTF8_NAME, strlen(UTF8_NAME));
	m = decode_spec(_metadata, &s);
	ASSERT_NE(NULL, m);
	EXPECT_STREQ(UTF8_NAME, m->name);
	psd_manifest_free(m);
	memset(long_ok, 'n', sizeof(long_ok) - 1);
	long_ok[sizeof(long_ok) - 1] = '\0';
	s.f[F_NAME] = f_bytes(PSD_MF_TAG_NAME, long_ok, 255);
	m = decode_spec(_metadata, &s);
	ASSERT_NE(NULL, m);
	EXPECT_EQ(255, strlen(m->name));
	psd_manifest_free(m);
}

TEST(parent_and_time)
{
	static const uint8_t zero[PSD_HASH_LEN];
	struct psd_manifest *m;
	struct spec s;

	init_keys();
	good_spec(&s);
	s.f[F_PARENT] = f_bytes(PSD_MF_TAG_PARENT, zero, 32);
	expect_spec_refused(_metadata, &s, PSD_MF_BAD_PARENT);
	good_spec(&s);
	s.f[F_TIME] = f_u64(PSD_MF_TAG_CREATED, INT64_MAX);
	m = decode_spec(_metadata, &s);
	ASSERT_NE(NULL, m);
	EXPECT_EQ(INT64_MAX, m->created);
	psd_manifest_free(m);
}

/* The encoder refuses what the decoder would, with the same codes. */
TEST(encoder_refuses_bad_parameters)
{
	static const uint8_t zero[PSD_HASH_LEN];
	struct psd_manifest_params p;
	struct psd_mf_err err;
	uint8_t *buf = NULL;
	size_t len = 0, i;

	init_keys();
#define EXPECT_ENCODE_FAILS(n_index, want)                                  \
	do {                                                                \
		EXPECT_EQ(-EINVAL, psd_manifest_encode(&p, good_index,      \
						       n_index, &alice, &buf,  \
						       &len, &err));           \
		EXPECT_EQ(want, err.code) TH_LOG("%s", err.msg);            \
		EXPECT_EQ(NULL, buf);                                       \
		p = good_params;                                            \
	} while (0)
	p = good_params;
	EXPECT_ENCODE_FAILS(2, PSD_MF_BAD_INDEX_COUNT);
	EXPECT_ENCODE_FAILS(0, PSD_MF_BAD_INDEX_COUNT);
	p.size = 0;
	EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_SIZE);
	p.chunk_size = 1000;
	EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_CHUNK_SIZE);
	p.index_chunk_size = 3;
	EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_INDEX_CHUNK_SIZE);
	p.name = NULL;
	EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_NAME);
	p.name = "";
	EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_NAME);
	p.parent = zero;
	EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_PARENT);
	p.created = UINT64_MAX;
	EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_TIME);
	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		p.name = bad_names[i];
		EXPECT_ENCODE_FAILS(1, PSD_MF_BAD_NAME);
	}
#undef EXPECT_ENCODE_FAILS
}

TEST(error_code_names)
{
	EXPECT_STREQ("truncated", psd_mf_code_str(PSD_MF_TRUNCATED));
	EXPECT_STREQ("untrusted publisher", psd_mf_code_str(PSD_MF_UNTRUSTED));
	EXPECT_STREQ("unknown error", psd_mf_code_str(__PSD_MF_CODE_MAX));
	EXPECT_STREQ("unknown error", psd_mf_code_str((enum psd_mf_code)-1));
}

/* ---- index math -------------------------------------------------------- */

/* Where data chunk `chunk`'s hash lives: index chunk and slot. */
static void expect_locate(struct __test_metadata *_metadata,
			  const struct psd_geometry *g, uint64_t chunk,
			  uint32_t want_index, uint32_t want_slot)
{
	uint32_t index = UINT32_MAX, slot = UINT32_MAX;

	EXPECT_EQ(0, psd_geometry_locate(g, chunk, &index, &slot));
	EXPECT_EQ(want_index, index) TH_LOG("chunk %ju", (uintmax_t)chunk);
	EXPECT_EQ(want_slot, slot) TH_LOG("chunk %ju", (uintmax_t)chunk);
}

struct tib_case {
	uint64_t chunk_size;
	uint64_t chunks;
	uint32_t index_chunk_size;
	uint32_t index_count;
	size_t manifest_len;		/* with a 16-byte name, no parent */
};

/* 1 TiB: the numbers docs/manifest-format.md states. */
static const struct tib_case tib[] = {
	{ 4 * KiB, 1ull << 28, 512 * KiB, 16384, 192 + 16 + 524288 },
	{ 256 * KiB, 1ull << 22, 64 * KiB, 2048, 192 + 16 + 65536 },
	{ 4 * MiB, 1ull << 18, 16 * KiB, 512, 192 + 16 + 16384 },
};

TEST(one_tib_at_4k_256k_4m)
{
	struct psd_geometry g;
	uint32_t index, slot;
	size_t i;

	for (i = 0; i < sizeof(tib) / sizeof(tib[0]); i++) {
		const struct tib_case *c = &tib[i];

		ASSERT_EQ(0, psd_geometry_init(&g, TiB, c->chunk_size, 0,
					       NULL));
		EXPECT_EQ(c->chunks, g.chunk_count);
		EXPECT_EQ(c->index_chunk_size, g.index_chunk_size);
		EXPECT_EQ(c->index_chunk_size / 32, g.index_entries);
		EXPECT_EQ(c->index_count, g.index_count);
		EXPECT_EQ(c->manifest_len,
			  psd_manifest_encoded_len(&g, 16, false));
		/* Body and first index chunk: balanced, so equal here. */
		EXPECT_EQ((size_t)g.index_count * 32, g.index_chunk_size);
		EXPECT_EQ(c->index_chunk_size,
			  psd_geometry_index_len(&g, g.index_count - 1));
		/* The last chunk's hash: last slot of the last index. */
		expect_locate(_metadata, &g, g.chunk_count - 1,
			      g.index_count - 1, g.index_entries - 1);
		EXPECT_EQ(-ERANGE, psd_geometry_locate(&g, g.chunk_count,
						       &index, &slot));
	}
}

/* 1 TiB at the default 256 KiB chunks, encoded and decoded for real. */
TEST(one_tib_manifest_round_trip)
{
	uint8_t (*idx)[PSD_HASH_LEN];
	struct psd_manifest_params p = {
		.size = TiB, .chunk_size = 256 * KiB,
		.name = "one tebibyte 256", .created = 1,
	};
	struct psd_manifest *m;
	uint8_t *buf;
	size_t len;

	init_keys();
	idx = calloc(2048, PSD_HASH_LEN);
	ASSERT_NE(NULL, idx);
	randombytes_buf(idx, 2048 * PSD_HASH_LEN);
	ASSERT_EQ(0, psd_manifest_encode(&p, idx, 2048, &alice, &buf, &len,
					 NULL));
	EXPECT_EQ(192 + 16 + 65536, len);
	m = decode_ok(_metadata, buf, len);
	ASSERT_NE(NULL, m);
	EXPECT_EQ(0, memcmp(idx[2047], m->index_hashes[2047], 32));
	psd_manifest_free(m);
	free(buf);
	free(idx);
}

TEST(locate_at_4k_and_4m_chunks)
{
	struct psd_geometry g;

	/* 4 KiB chunks, 4 KiB index chunks: 128 hashes each. 1000 chunks:
	 * 8 index chunks, the last with 1000 - 7 * 128 = 104 entries. */
	ASSERT_EQ(0, psd_geometry_init(&g, 1000 * 4096, 4096, 4096, NULL));
	EXPECT_EQ(8, g.index_count);
	expect_locate(_metadata, &g, 0, 0, 0);
	expect_locate(_metadata, &g, 127, 0, 127);
	expect_locate(_metadata, &g, 128, 1, 0);
	expect_locate(_metadata, &g, 999, 7, 103);
	EXPECT_EQ(4096, psd_geometry_index_len(&g, 6));
	EXPECT_EQ(104 * 32, psd_geometry_index_len(&g, 7));
	EXPECT_EQ(0, psd_geometry_index_len(&g, 8));
	EXPECT_EQ(0, psd_geometry_index_len(&g, UINT32_MAX));

	/* 4 MiB chunks, 4 MiB index chunks (131072 hashes): 1 TiB + 1 byte
	 * is 262145 chunks, 3 index chunks, the last holding one hash. */
	ASSERT_EQ(0, psd_geometry_init(&g, TiB + 1, 4 * MiB, 4 * MiB, NULL));
	EXPECT_EQ(262145, g.chunk_count);
	EXPECT_EQ(3, g.index_count);
	expect_locate(_metadata, &g, 131071, 0, 131071);
	expect_locate(_metadata, &g, 131072, 1, 0);
	expect_locate(_metadata, &g, 262144, 2, 0);
	EXPECT_EQ(32, psd_geometry_index_len(&g, 2));
}

/* The largest manifest: 2^32 chunks, 2 MiB index chunks, 65536 of them,
 * a 255-byte name and a parent: 2 MiB + 421 bytes of body. */
TEST(limits)
{
	struct psd_geometry g;
	struct psd_mf_err err;

	ASSERT_EQ(0, psd_geometry_init(&g, (1ull << 32) * 4096, 4096, 0,
				       NULL));
	EXPECT_EQ(2 * MiB, g.index_chunk_size);
	EXPECT_EQ(65536, g.index_count);
	EXPECT_EQ(2 * MiB + 421 + 64, psd_manifest_encoded_len(&g, 255, true));
	EXPECT_GE(PSD_MANIFEST_MAX_LEN, psd_manifest_encoded_len(&g, 255, true));
	EXPECT_EQ(-EINVAL, psd_geometry_init(&g, (1ull << 32) * 4096 + 1, 4096,
					     0, &err));
	EXPECT_EQ(PSD_MF_BAD_SIZE, err.code);
	/* 1 TiB in 4 KiB chunks cannot be listed in 4 KiB index chunks. */
	EXPECT_EQ(-EINVAL, psd_geometry_init(&g, TiB, 4096, 4096, &err));
	EXPECT_EQ(PSD_MF_BAD_INDEX_COUNT, err.code);
	EXPECT_STREQ("268435456 chunks need 2097152 index chunks of 4096 bytes; at most 65536",
		     err.msg);
	/* Small images: the smallest index chunk. */
	EXPECT_EQ(4096, psd_geometry_default_index_chunk_size(1));
	EXPECT_EQ(4096, psd_geometry_default_index_chunk_size(0));
	EXPECT_EQ(4096, psd_geometry_default_index_chunk_size(128 * 128));
	EXPECT_EQ(8192, psd_geometry_default_index_chunk_size(128 * 128 + 1));
}

/* ---- zero chunks and index chunks -------------------------------------- */

/*
 * 300 chunks of 4 KiB in 4 KiB index chunks (3 of them: 128, 128, 44
 * entries). Chunks 0..127 are all zeros, so index chunk 0 is all zeros:
 * hash PSD_HASH_ZERO, never fetched. Chunk 200 holds data.
 */
TEST(zero_chunks_and_index_verification)
{
	uint8_t (*data)[PSD_HASH_LEN] = calloc(300, PSD_HASH_LEN);
	uint8_t idx[3][PSD_HASH_LEN], h[PSD_HASH_LEN], chunk[4096] = { 0 };
	struct psd_manifest_params p = {
		.size = 300 * 4096, .chunk_size = 4096,
		.index_chunk_size = 4096, .name = "sparse", .created = 2,
	};
	struct psd_mf_err err;
	struct psd_manifest *m;
	uint8_t *buf, *i1;
	size_t len, i;

	init_keys();
	ASSERT_NE(NULL, data);
	memset(chunk, 0xc3, 17);
	psd_chunkhash(chunk, sizeof(chunk), data[200]);
	for (i = 0; i < 3; i++)
		psd_chunkhash(data[128 * i], (i < 2 ? 128 : 44) * PSD_HASH_LEN,
			      idx[i]);
	EXPECT_TRUE(psd_hash_is_zero(idx[0]));
	EXPECT_FALSE(psd_hash_is_zero(idx[1]));
	EXPECT_TRUE(psd_hash_is_zero(idx[2]));
	ASSERT_EQ(0, psd_manifest_encode(&p, idx, 3, &alice, &buf, &len,
					 NULL));
	m = decode_ok(_metadata, buf, len);
	ASSERT_NE(NULL, m);

	/* Zero index chunk: no bytes needed, every hash is the zero value. */
	ASSERT_EQ(0, psd_manifest_chunk_hash(m, 5, NULL, h));
	EXPECT_TRUE(psd_hash_is_zero(h));
	ASSERT_EQ(0, psd_manifest_chunk_hash(m, 299, NULL, h));
	EXPECT_TRUE(psd_hash_is_zero(h));
	EXPECT_EQ(-EINVAL, psd_manifest_chunk_hash(m, 200, NULL, h));
	EXPECT_EQ(0, psd_manifest_index_verify(m, 2, data[256], 44 * 32,
					       &err));

	/* Index chunk 1 as a peer would send it. */
	i1 = malloc(4096);
	ASSERT_NE(NULL, i1);
	memcpy(i1, data[128], 4096);
	EXPECT_EQ(0, psd_manifest_index_verify(m, 1, i1, 4096, &err));
	ASSERT_EQ(0, psd_manifest_chunk_hash(m, 200, i1, h));
	EXPECT_EQ(0, memcmp(data[200], h, 32));
	EXPECT_EQ(0, psd_chunkhash_verify(chunk, sizeof(chunk), h));
	ASSERT_EQ(0, psd_manifest_chunk_hash(m, 201, i1, h));
	EXPECT_TRUE(psd_hash_is_zero(h));
	EXPECT_EQ(-ERANGE, psd_manifest_chunk_hash(m, 300, i1, h));

	EXPECT_EQ(-EBADMSG, psd_manifest_index_verify(m, 1, i1, 4064, &err));
	EXPECT_EQ(PSD_MF_BAD_INDEX_CHUNK, err.code);
	EXPECT_STREQ("index chunk 1 has 4064 bytes; expected 4096", err.msg);
	i1[4095] ^= 1;
	EXPECT_EQ(-EBADMSG, psd_manifest_index_verify(m, 1, i1, 4096, &err));
	EXPECT_STREQ("index chunk 1 does not match its hash", err.msg);
	EXPECT_EQ(-ERANGE, psd_manifest_index_verify(m, 3, i1, 4096, &err));
	/* A zeroed index chunk is not the listed one either. */
	memset(i1, 0, 4096);
	EXPECT_EQ(-EBADMSG, psd_manifest_index_verify(m, 1, i1, 4096, &err));

	psd_manifest_free(m);
	free(i1);
	free(buf);
	free(data);
}

/* A wholly sparse 1 TiB volume at 4 KiB: every index hash is the zero
 * value; the manifest still round-trips and nothing needs fetching. */
TEST(all_zero_volume)
{
	struct psd_manifest_params p = {
		.size = TiB, .chunk_size = 4096, .name = "empty", .created = 3,
	};
	uint8_t (*idx)[PSD_HASH_LEN] = calloc(16384, PSD_HASH_LEN);
	uint8_t h[PSD_HASH_LEN];
	struct psd_manifest *m;
	uint8_t *buf;
	size_t len;

	init_keys();
	ASSERT_NE(NULL, idx);
	ASSERT_EQ(0, psd_manifest_encode(&p, idx, 16384, &alice, &buf, &len,
					 NULL));
	m = decode_ok(_metadata, buf, len);
	ASSERT_NE(NULL, m);
	EXPECT_EQ(512 * KiB, m->geo.index_chunk_size);
	ASSERT_EQ(0, psd_manifest_chunk_hash(m, (1ull << 28) - 1, NULL, h));
	EXPECT_TRUE(psd_hash_is_zero(h));
	psd_manifest_free(m);
	free(buf);
	free(idx);
}

TEST_HARNESS_MAIN
