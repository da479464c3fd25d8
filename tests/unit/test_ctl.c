// SPDX-License-Identifier: GPL-2.0
/*
 * The control protocol codec (docs/control.md): the byte layout (frames
 * built here independently of ctl.c, byte by byte, and compared), round
 * trips of every message, nests, and every malformed frame the parser
 * must refuse: bad header, lengths, attribute framing, sizes per wire type,
 * strings, duplicates, attributes not allowed or missing, nests in nests.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "ctl.h"

/* ---- a spec-driven frame writer, independent of ctl.c ------------------ */

struct raw {
	uint8_t b[8192];
	size_t len;
};

static void raw_le(struct raw *r, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		r->b[r->len++] = (uint8_t)(v >> (8 * i));
}

static void raw_begin(struct raw *r, uint16_t type, uint32_t seq)
{
	r->len = 0;
	raw_le(r, 0x54435350, 4);	/* "PSCT" */
	raw_le(r, 0, 4);		/* patched by raw_end() */
	raw_le(r, type, 2);
	raw_le(r, 0, 2);
	raw_le(r, seq, 4);
}

static void raw_attr(struct raw *r, uint16_t type, const void *v, uint32_t len)
{
	raw_le(r, type, 2);
	raw_le(r, 0, 2);
	raw_le(r, len, 4);
	memcpy(r->b + r->len, v, len);
	r->len += len;
}

static void raw_u32(struct raw *r, uint16_t type, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
			 (uint8_t)(v >> 24) };

	raw_attr(r, type, b, 4);
}

static void raw_str(struct raw *r, uint16_t type, const char *s)
{
	raw_attr(r, type, s, (uint32_t)strlen(s) + 1);
}

static void raw_end(struct raw *r)
{
	uint32_t l = (uint32_t)r->len;

	r->b[4] = (uint8_t)l;
	r->b[5] = (uint8_t)(l >> 8);
	r->b[6] = (uint8_t)(l >> 16);
	r->b[7] = (uint8_t)(l >> 24);
}

static int raw_parse(struct raw *r, struct psd_ctl_msg *m,
		     struct psd_ctl_err *err)
{
	memset(err, 0, sizeof(*err));
	return psd_ctl_parse(r->b, r->len, m, err);
}

static const uint8_t id_a[32] = { 0xaa, 1, 2, 3 };
static const uint8_t id_b[32] = { 0xbb, 9 };

/* ---- layout and round trips ------------------------------------------- */

TEST(builder_writes_the_documented_layout)
{
	struct psd_ctl_buf b = { 0 };
	struct raw r;

	psd_ctl_begin(&b, PSD_CTL_HELLO, 0x01020304);
	psd_ctl_put_u32(&b, PSD_CTL_A_VERSION, 1);
	ASSERT_EQ(0, psd_ctl_finish(&b));

	raw_begin(&r, 1, 0x01020304);
	raw_u32(&r, 1, 1);
	raw_end(&r);
	ASSERT_EQ(r.len, b.len);
	ASSERT_EQ(0, memcmp(r.b, b.p, r.len));
	ASSERT_EQ(28u, b.len);
	ASSERT_EQ(0, memcmp(b.p, "PSCT", 4));
	psd_ctl_buf_free(&b);
}

TEST(round_trip_every_wire_type)
{
	struct psd_ctl_buf b = { 0 };
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	const uint8_t *v;
	uint32_t len;

	psd_ctl_begin(&b, PSD_CTL_READ | PSD_CTL_REPLY, 77);
	psd_ctl_put_u64(&b, PSD_CTL_A_FIRST_CHUNK, 0x1122334455667788ull);
	psd_ctl_put_u32(&b, PSD_CTL_A_COUNT, 0xfedcba98);
	psd_ctl_put_bytes(&b, PSD_CTL_A_DATA, "abc", 3);
	ASSERT_EQ(0, psd_ctl_finish(&b));
	ASSERT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err));
	EXPECT_EQ(PSD_CTL_READ | PSD_CTL_REPLY, m.type);
	EXPECT_EQ(77u, m.seq);
	EXPECT_EQ(0x1122334455667788ull,
		  psd_ctl_u64(&m.at, PSD_CTL_A_FIRST_CHUNK));
	EXPECT_EQ(0xfedcba98u, psd_ctl_u32(&m.at, PSD_CTL_A_COUNT));
	v = psd_ctl_bytes(&m.at, PSD_CTL_A_DATA, &len);
	ASSERT_NE(NULL, v);
	EXPECT_EQ(3u, len);
	EXPECT_EQ(0, memcmp(v, "abc", 3));
	EXPECT_FALSE(psd_ctl_has(&m.at, PSD_CTL_A_ID));

	psd_ctl_begin(&b, PSD_CTL_ADD_BEGIN, 3);
	psd_ctl_put_bytes(&b, PSD_CTL_A_MANIFEST, id_a, 0);
	psd_ctl_put_u8(&b, PSD_CTL_A_SOURCE_KIND, PSD_CTL_SOURCE_CACHE);
	psd_ctl_put_str(&b, PSD_CTL_A_PATH, "/dev/vdb");
	ASSERT_EQ(0, psd_ctl_finish(&b));
	ASSERT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err));
	EXPECT_EQ(PSD_CTL_SOURCE_CACHE,
		  psd_ctl_u8(&m.at, PSD_CTL_A_SOURCE_KIND));
	EXPECT_STREQ("/dev/vdb", psd_ctl_str(&m.at, PSD_CTL_A_PATH));
	/* An empty binary attribute is present, with no bytes. */
	EXPECT_TRUE(psd_ctl_has(&m.at, PSD_CTL_A_MANIFEST));
	psd_ctl_bytes(&m.at, PSD_CTL_A_MANIFEST, &len);
	EXPECT_EQ(0u, len);
	psd_ctl_buf_free(&b);
}

TEST(error_reply_round_trip_is_one_line)
{
	struct psd_ctl_buf b = { 0 };
	struct psd_ctl_msg m;
	struct psd_ctl_err err;

	ASSERT_EQ(0, psd_ctl_build_error(&b, 9, -ENOENT,
					 "no snapshot matches '%s'", "ab\ncd"));
	ASSERT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err));
	EXPECT_EQ(PSD_CTL_ERROR, m.type);
	EXPECT_EQ(9u, m.seq);
	EXPECT_EQ(-ENOENT, psd_ctl_s32(&m.at, PSD_CTL_A_ERRNO));
	EXPECT_STREQ("no snapshot matches 'ab cd'",
		     psd_ctl_str(&m.at, PSD_CTL_A_MESSAGE));
	/* A positive errno is stored negative. */
	ASSERT_EQ(0, psd_ctl_build_error(&b, 1, EIO, "x"));
	ASSERT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err));
	EXPECT_EQ(-EIO, psd_ctl_s32(&m.at, PSD_CTL_A_ERRNO));
	psd_ctl_buf_free(&b);
}

TEST(nests_round_trip_and_iterate)
{
	struct psd_ctl_buf b = { 0 };
	struct psd_ctl_attrs s;
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	uint32_t pos = 0, len;
	int n = 0;

	psd_ctl_begin(&b, PSD_CTL_LIST | PSD_CTL_REPLY, 5);
	for (int i = 0; i < 3; i++) {
		psd_ctl_nest_begin(&b, PSD_CTL_A_SNAPSHOT);
		psd_ctl_put_bytes(&b, PSD_CTL_A_ID, i == 1 ? id_b : id_a, 32);
		psd_ctl_put_str(&b, PSD_CTL_A_NAME, i == 1 ? "two" : "one");
		psd_ctl_put_u64(&b, PSD_CTL_A_SIZE, 1000 + i);
		psd_ctl_put_u32(&b, PSD_CTL_A_CHUNK_SIZE, 4096);
		psd_ctl_put_u64(&b, PSD_CTL_A_CHUNK_COUNT, 1);
		psd_ctl_put_u64(&b, PSD_CTL_A_CREATED, 1700000000);
		if (i == 2)
			psd_ctl_put_bytes(&b, PSD_CTL_A_PARENT, id_b, 32);
		psd_ctl_put_bytes(&b, PSD_CTL_A_PUBLISHER, id_b, 32);
		psd_ctl_put_u8(&b, PSD_CTL_A_HAS_ORIGIN, i & 1);
		psd_ctl_nest_end(&b);
	}
	psd_ctl_put_u8(&b, PSD_CTL_A_MORE, 1);
	ASSERT_EQ(0, psd_ctl_finish(&b));
	ASSERT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err)) TH_LOG("%s", err.msg);
	EXPECT_EQ(1, psd_ctl_u8(&m.at, PSD_CTL_A_MORE));
	while (psd_ctl_nest_next(&m, PSD_CTL_A_SNAPSHOT, &pos, &s) == 1) {
		EXPECT_EQ(1000u + n, psd_ctl_u64(&s, PSD_CTL_A_SIZE));
		EXPECT_STREQ(n == 1 ? "two" : "one",
			     psd_ctl_str(&s, PSD_CTL_A_NAME));
		EXPECT_EQ(0, memcmp(psd_ctl_bytes(&s, PSD_CTL_A_ID, &len),
				    n == 1 ? id_b : id_a, 32));
		EXPECT_EQ(n == 2, psd_ctl_has(&s, PSD_CTL_A_PARENT));
		EXPECT_EQ(n & 1, psd_ctl_u8(&s, PSD_CTL_A_HAS_ORIGIN));
		n++;
	}
	EXPECT_EQ(3, n);
	/* An empty list iterates nothing. */
	psd_ctl_begin(&b, PSD_CTL_PEERS | PSD_CTL_REPLY, 6);
	ASSERT_EQ(0, psd_ctl_finish(&b));
	ASSERT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err));
	pos = 0;
	EXPECT_EQ(0, psd_ctl_nest_next(&m, PSD_CTL_A_PEER, &pos, &s));
	psd_ctl_buf_free(&b);
}

TEST(every_request_and_reply_type_has_a_policy)
{
	struct psd_ctl_buf b = { 0 };
	struct psd_ctl_msg m;
	struct psd_ctl_err err;

	for (uint16_t t = 1; t < __PSD_CTL_TYPE_MAX; t++) {
		EXPECT_STRNE("unknown", psd_ctl_type_name(t));
		EXPECT_STRNE("unknown", psd_ctl_type_name(t | PSD_CTL_REPLY));
	}
	/* Requests without required attributes parse empty. */
	const uint16_t empty_ok[] = {
		PSD_CTL_STATUS, PSD_CTL_LIST, PSD_CTL_GET_MANIFEST,
		PSD_CTL_ADD_COMMIT, PSD_CTL_ADD_ABORT, PSD_CTL_PEERS,
		PSD_CTL_ADD_INDEX | PSD_CTL_REPLY,
		PSD_CTL_ATTACHED | PSD_CTL_REPLY,
	};
	for (size_t i = 0; i < sizeof(empty_ok) / sizeof(empty_ok[0]); i++) {
		psd_ctl_begin(&b, empty_ok[i], 1);
		ASSERT_EQ(0, psd_ctl_finish(&b));
		EXPECT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err))
			TH_LOG("%s: %s", psd_ctl_type_name(empty_ok[i]), err.msg);
	}
	/* Those with required attributes do not. */
	const uint16_t need[] = {
		PSD_CTL_HELLO, PSD_CTL_GET_INDEX, PSD_CTL_ADD_BEGIN,
		PSD_CTL_ADD_INDEX, PSD_CTL_ADD_PRESENT, PSD_CTL_ATTACHED,
		PSD_CTL_DETACHED, PSD_CTL_READ, PSD_CTL_ERROR,
		PSD_CTL_HELLO | PSD_CTL_REPLY, PSD_CTL_STATUS | PSD_CTL_REPLY,
		PSD_CTL_READ | PSD_CTL_REPLY,
	};
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		psd_ctl_begin(&b, need[i], 1);
		ASSERT_EQ(0, psd_ctl_finish(&b));
		EXPECT_EQ(-EBADMSG, psd_ctl_parse(b.p, b.len, &m, &err));
		EXPECT_NE(NULL, strstr(err.msg, "missing"));
	}
	psd_ctl_buf_free(&b);
}

/* ---- builder limits ---------------------------------------------------- */

TEST(builder_refuses_oversize_and_misuse)
{
	struct psd_ctl_buf b = { 0 };
	uint8_t *big = calloc(1, PSD_CTL_FRAME_MAX);

	ASSERT_NE(NULL, big);
	psd_ctl_begin(&b, PSD_CTL_READ | PSD_CTL_REPLY, 1);
	psd_ctl_put_bytes(&b, PSD_CTL_A_DATA, big, PSD_CTL_FRAME_MAX);
	EXPECT_EQ(-E2BIG, psd_ctl_finish(&b));
	/* Sticky: a later small put does not clear it. */
	psd_ctl_put_u32(&b, PSD_CTL_A_COUNT, 1);
	EXPECT_EQ(-E2BIG, psd_ctl_finish(&b));
	/* Exactly the maximum is fine. */
	psd_ctl_begin(&b, PSD_CTL_READ | PSD_CTL_REPLY, 1);
	psd_ctl_put_bytes(&b, PSD_CTL_A_DATA, big, PSD_CTL_FRAME_MAX -
			  PSD_CTL_HDR_LEN - PSD_CTL_ATTR_HDR_LEN);
	EXPECT_EQ(0, psd_ctl_finish(&b));
	EXPECT_EQ(PSD_CTL_FRAME_MAX, b.len);

	psd_ctl_begin(&b, PSD_CTL_LIST | PSD_CTL_REPLY, 1);
	psd_ctl_nest_begin(&b, PSD_CTL_A_SNAPSHOT);
	EXPECT_EQ(-EINVAL, psd_ctl_finish(&b));		/* nest left open */
	psd_ctl_begin(&b, PSD_CTL_LIST | PSD_CTL_REPLY, 1);
	psd_ctl_nest_begin(&b, PSD_CTL_A_SNAPSHOT);
	psd_ctl_nest_begin(&b, PSD_CTL_A_SNAPSHOT);
	EXPECT_EQ(-EINVAL, psd_ctl_finish(&b));		/* nest in a nest */
	psd_ctl_begin(&b, PSD_CTL_LIST, 1);
	psd_ctl_nest_end(&b);
	EXPECT_EQ(-EINVAL, psd_ctl_finish(&b));		/* end without begin */
	/* begin clears the sticky error. */
	psd_ctl_begin(&b, PSD_CTL_LIST, 1);
	EXPECT_EQ(0, psd_ctl_finish(&b));
	psd_ctl_buf_free(&b);
	psd_ctl_buf_free(NULL);
	free(big);
}

TEST(shrink_last_attribute)
{
	struct psd_ctl_buf b = { 0 };
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	uint32_t len;
	uint8_t *p;

	psd_ctl_begin(&b, PSD_CTL_READ | PSD_CTL_REPLY, 2);
	psd_ctl_put_u64(&b, PSD_CTL_A_FIRST_CHUNK, 4);
	psd_ctl_put_u32(&b, PSD_CTL_A_COUNT, 1);
	p = psd_ctl_put_reserve(&b, PSD_CTL_A_DATA, 4096);
	ASSERT_NE(NULL, p);
	memset(p, 0x5a, 4096);
	psd_ctl_shrink_last(&b, 100);
	ASSERT_EQ(0, psd_ctl_finish(&b));
	ASSERT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err));
	p = (uint8_t *)psd_ctl_bytes(&m.at, PSD_CTL_A_DATA, &len);
	EXPECT_EQ(100u, len);
	EXPECT_EQ(0x5a, p[99]);
	/* Growing, or shrinking a closed nest's member, is refused. */
	psd_ctl_shrink_last(&b, 101);
	EXPECT_EQ(-EINVAL, psd_ctl_finish(&b));
	psd_ctl_begin(&b, PSD_CTL_STATUS | PSD_CTL_REPLY, 2);
	psd_ctl_put_u64(&b, PSD_CTL_A_UPTIME, 1);
	psd_ctl_nest_begin(&b, PSD_CTL_A_COUNTER);
	psd_ctl_put_str(&b, PSD_CTL_A_NAME, "abc");
	psd_ctl_put_u64(&b, PSD_CTL_A_VALUE, 1);
	psd_ctl_nest_end(&b);
	psd_ctl_shrink_last(&b, 0);
	EXPECT_EQ(-EINVAL, psd_ctl_finish(&b));
	psd_ctl_buf_free(&b);
}

/* ---- malformed frames -------------------------------------------------- */

static void hello(struct raw *r)
{
	raw_begin(r, PSD_CTL_HELLO, 7);
	raw_u32(r, PSD_CTL_A_VERSION, 1);
	raw_end(r);
}

TEST(header_checks)
{
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	uint32_t flen;
	struct raw r;

	hello(&r);
	ASSERT_EQ(0, raw_parse(&r, &m, &err));
	ASSERT_EQ(0, psd_ctl_frame_len(r.b, PSD_CTL_HDR_LEN, &flen, &err));
	EXPECT_EQ(r.len, flen);
	EXPECT_EQ(-EAGAIN, psd_ctl_frame_len(r.b, PSD_CTL_HDR_LEN - 1,
					     &flen, &err));

	/* Every truncation. */
	for (size_t l = 0; l < r.len; l++)
		EXPECT_EQ(-EBADMSG, psd_ctl_parse(r.b, l, &m, &err));

	hello(&r);
	r.b[0] ^= 1;
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "magic"));

	hello(&r);
	r.b[10] = 1;
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "flags"));

	/* Length says more than the bytes given, and less. */
	hello(&r);
	r.b[4]++;
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	hello(&r);
	r.b[4]--;
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));

	/* Length outside 16..max: -EMSGSIZE, also from the stream peek. */
	hello(&r);
	r.b[4] = 15;
	EXPECT_EQ(-EMSGSIZE, psd_ctl_frame_len(r.b, r.len, &flen, &err));
	hello(&r);
	r.b[4] = 0x01;
	r.b[5] = 0x00;
	r.b[6] = 0x41;	/* 0x410001 = 4 MiB + 64 KiB + 1 */
	EXPECT_EQ(-EMSGSIZE, psd_ctl_frame_len(r.b, r.len, &flen, &err));
	EXPECT_NE(NULL, strstr(err.msg, "4259841"));
	r.b[4] = 0x00;
	EXPECT_EQ(0, psd_ctl_frame_len(r.b, r.len, &flen, &err));
	EXPECT_EQ(PSD_CTL_FRAME_MAX, flen);
}

TEST(unknown_message_type_is_answerable)
{
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	struct raw r;

	const uint16_t bad[] = { 0, __PSD_CTL_TYPE_MAX, 0x7ffe,
				 PSD_CTL_REPLY, PSD_CTL_REPLY | 0x7ffe };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_begin(&r, bad[i], 4242);
		raw_end(&r);
		memset(&m, 0, sizeof(m));
		EXPECT_EQ(-EOPNOTSUPP, raw_parse(&r, &m, &err));
		EXPECT_EQ(bad[i], m.type);
		EXPECT_EQ(4242u, m.seq);
		EXPECT_STREQ("unknown", psd_ctl_type_name(bad[i]));
	}
}

TEST(attribute_framing)
{
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	struct raw r;

	/* A trailing partial attribute header (1..7 bytes). */
	for (int extra = 1; extra < 8; extra++) {
		hello(&r);
		for (int i = 0; i < extra; i++)
			r.b[r.len++] = 0;
		raw_end(&r);
		EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
		EXPECT_NE(NULL, strstr(err.msg, "trailing"));
	}
	/* Reserved u16 of an attribute header. */
	hello(&r);
	r.b[PSD_CTL_HDR_LEN + 2] = 1;
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "reserved"));
	/* Length past the end, including a huge one that would wrap. */
	hello(&r);
	r.b[PSD_CTL_HDR_LEN + 4] = 5;
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "past the end"));
	hello(&r);
	memset(r.b + PSD_CTL_HDR_LEN + 4, 0xff, 4);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	/* Type 0. */
	raw_begin(&r, PSD_CTL_STATUS, 1);
	raw_u32(&r, 0, 1);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
}

TEST(sizes_per_wire_type)
{
	static const struct {
		uint16_t msg, attr;
		uint32_t good;
	} cases[] = {
		{ PSD_CTL_HELLO, PSD_CTL_A_VERSION, 4 },		/* u32 */
		{ PSD_CTL_READ | PSD_CTL_REPLY, PSD_CTL_A_FIRST_CHUNK, 8 },
		{ PSD_CTL_LIST, PSD_CTL_A_AFTER, 32 },			/* id */
		{ PSD_CTL_LIST | PSD_CTL_REPLY, PSD_CTL_A_MORE, 1 },	/* u8 */
		{ PSD_CTL_ERROR, PSD_CTL_A_ERRNO, 4 },			/* s32 */
	};
	uint8_t zeros[64] = { 0 };
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	struct raw r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (uint32_t l = 0; l <= 40; l++) {
			raw_begin(&r, cases[i].msg, 1);
			raw_attr(&r, cases[i].attr, zeros, l);
			raw_end(&r);
			int ret = raw_parse(&r, &m, &err);

			if (l != cases[i].good) {
				EXPECT_EQ(-EBADMSG, ret);
				EXPECT_NE(NULL, strstr(err.msg,
					psd_ctl_attr_name(cases[i].attr)));
			} else {
				/* Only a missing required one may remain. */
				EXPECT_TRUE(ret == 0 ||
					    strstr(err.msg, "missing"));
			}
		}
	}
}

TEST(strings)
{
	char long_str[PSD_CTL_STRING_MAX + 2];
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	struct raw r;

	raw_begin(&r, PSD_CTL_DETACHED, 1);
	raw_attr(&r, PSD_CTL_A_DM_NAME, "", 1);		/* empty */
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	raw_begin(&r, PSD_CTL_DETACHED, 1);
	raw_attr(&r, PSD_CTL_A_DM_NAME, "abc", 3);	/* no NUL */
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	raw_begin(&r, PSD_CTL_DETACHED, 1);
	raw_attr(&r, PSD_CTL_A_DM_NAME, "a\0c", 4);	/* inner NUL */
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	raw_begin(&r, PSD_CTL_DETACHED, 1);
	raw_attr(&r, PSD_CTL_A_DM_NAME, "a", 2);
	raw_end(&r);
	ASSERT_EQ(0, raw_parse(&r, &m, &err));
	EXPECT_STREQ("a", psd_ctl_str(&m.at, PSD_CTL_A_DM_NAME));

	/* The longest string fits; one more byte does not. */
	memset(long_str, 'x', sizeof(long_str));
	long_str[PSD_CTL_STRING_MAX - 1] = '\0';
	raw_begin(&r, PSD_CTL_DETACHED, 1);
	raw_attr(&r, PSD_CTL_A_DM_NAME, long_str, PSD_CTL_STRING_MAX);
	raw_end(&r);
	EXPECT_EQ(0, raw_parse(&r, &m, &err));
	long_str[PSD_CTL_STRING_MAX - 1] = 'x';
	long_str[PSD_CTL_STRING_MAX] = '\0';
	raw_begin(&r, PSD_CTL_DETACHED, 1);
	raw_attr(&r, PSD_CTL_A_DM_NAME, long_str, PSD_CTL_STRING_MAX + 1);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	/* A string accessor on a non-string attribute gives NULL. */
	hello(&r);
	ASSERT_EQ(0, raw_parse(&r, &m, &err));
	EXPECT_EQ(NULL, psd_ctl_str(&m.at, PSD_CTL_A_VERSION));
}

TEST(binary_maximum)
{
	struct psd_ctl_buf b = { 0 };
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	uint8_t *big = calloc(1, PSD_CTL_BITMAP_MAX + 1);

	ASSERT_NE(NULL, big);
	psd_ctl_begin(&b, PSD_CTL_ADD_PRESENT, 1);
	psd_ctl_put_u64(&b, PSD_CTL_A_FIRST_CHUNK, 0);
	psd_ctl_put_bytes(&b, PSD_CTL_A_BITMAP, big, PSD_CTL_BITMAP_MAX);
	ASSERT_EQ(0, psd_ctl_finish(&b));
	EXPECT_EQ(0, psd_ctl_parse(b.p, b.len, &m, &err));
	psd_ctl_begin(&b, PSD_CTL_ADD_PRESENT, 1);
	psd_ctl_put_u64(&b, PSD_CTL_A_FIRST_CHUNK, 0);
	psd_ctl_put_bytes(&b, PSD_CTL_A_BITMAP, big, PSD_CTL_BITMAP_MAX + 1);
	ASSERT_EQ(0, psd_ctl_finish(&b));
	EXPECT_EQ(-EBADMSG, psd_ctl_parse(b.p, b.len, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "BITMAP"));
	psd_ctl_buf_free(&b);
	free(big);
}

TEST(duplicates_not_allowed_missing_and_unknown)
{
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	struct raw r;

	raw_begin(&r, PSD_CTL_HELLO, 1);
	raw_u32(&r, PSD_CTL_A_VERSION, 1);
	raw_u32(&r, PSD_CTL_A_VERSION, 2);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "twice"));

	/* A known attribute the message does not carry. */
	raw_begin(&r, PSD_CTL_HELLO, 1);
	raw_u32(&r, PSD_CTL_A_VERSION, 1);
	raw_u32(&r, PSD_CTL_A_INDEX, 1);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_NE(NULL, strstr(err.msg, "INDEX not allowed"));

	/* A missing required one is named. */
	raw_begin(&r, PSD_CTL_GET_INDEX, 1);
	raw_attr(&r, PSD_CTL_A_ID, id_a, 32);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_STREQ("attribute INDEX missing", err.msg);

	/* Unknown types are skipped (but still framed), even twice. */
	raw_begin(&r, PSD_CTL_HELLO, 1);
	raw_u32(&r, 999, 5);
	raw_u32(&r, PSD_CTL_A_VERSION, 3);
	raw_attr(&r, 999, "", 0);
	raw_end(&r);
	ASSERT_EQ(0, raw_parse(&r, &m, &err));
	EXPECT_EQ(3u, psd_ctl_u32(&m.at, PSD_CTL_A_VERSION));
	EXPECT_FALSE(psd_ctl_has(&m.at, 999));
}

TEST(nest_rules)
{
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	struct raw r, inner;

	/* A COUNTER nest missing VALUE. */
	inner.len = 0;
	raw_str(&inner, PSD_CTL_A_NAME, "x");
	raw_begin(&r, PSD_CTL_STATUS | PSD_CTL_REPLY, 1);
	raw_attr(&r, PSD_CTL_A_UPTIME, "\0\0\0\0\0\0\0\0", 8);
	raw_attr(&r, PSD_CTL_A_COUNTER, inner.b, (uint32_t)inner.len);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));
	EXPECT_STREQ("attribute VALUE missing", err.msg);

	/* A nest inside a nest. */
	inner.len = 0;
	raw_str(&inner, PSD_CTL_A_ADDRESS, "x");
	raw_attr(&inner, PSD_CTL_A_PEER, "", 0);
	raw_begin(&r, PSD_CTL_PEERS | PSD_CTL_REPLY, 1);
	raw_attr(&r, PSD_CTL_A_PEER, inner.b, (uint32_t)inner.len);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));

	/* A nest's contents framed badly. */
	raw_begin(&r, PSD_CTL_PEERS | PSD_CTL_REPLY, 1);
	raw_attr(&r, PSD_CTL_A_PEER, "abc", 3);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));

	/* A nest where none is allowed. */
	raw_begin(&r, PSD_CTL_STATUS, 1);
	raw_attr(&r, PSD_CTL_A_PEER, "", 0);
	raw_end(&r);
	EXPECT_EQ(-EBADMSG, raw_parse(&r, &m, &err));

	/* Two good PEER nests, and a COUNTER in between is not a PEER. */
	inner.len = 0;
	raw_str(&inner, PSD_CTL_A_ADDRESS, "10.0.0.1:7390");
	raw_begin(&r, PSD_CTL_PEERS | PSD_CTL_REPLY, 1);
	raw_attr(&r, PSD_CTL_A_PEER, inner.b, (uint32_t)inner.len);
	raw_attr(&r, PSD_CTL_A_PEER, inner.b, (uint32_t)inner.len);
	raw_end(&r);
	ASSERT_EQ(0, raw_parse(&r, &m, &err));
	struct psd_ctl_attrs p;
	uint32_t pos = 0;
	int n = 0;

	while (psd_ctl_nest_next(&m, PSD_CTL_A_PEER, &pos, &p) == 1) {
		EXPECT_STREQ("10.0.0.1:7390",
			     psd_ctl_str(&p, PSD_CTL_A_ADDRESS));
		n++;
	}
	EXPECT_EQ(2, n);
	pos = 0;
	EXPECT_EQ(0, psd_ctl_nest_next(&m, PSD_CTL_A_ADDRESS, &pos, &p));
}

TEST(names)
{
	EXPECT_STREQ("HELLO", psd_ctl_type_name(PSD_CTL_HELLO));
	EXPECT_STREQ("READ reply",
		     psd_ctl_type_name(PSD_CTL_READ | PSD_CTL_REPLY));
	EXPECT_STREQ("ERROR", psd_ctl_type_name(PSD_CTL_ERROR));
	EXPECT_STREQ("INDEX_DATA", psd_ctl_attr_name(PSD_CTL_A_INDEX_DATA));
	EXPECT_STREQ("unknown", psd_ctl_attr_name(0));
	EXPECT_STREQ("unknown", psd_ctl_attr_name(__PSD_CTL_A_MAX));
	for (uint16_t a = 1; a < __PSD_CTL_A_MAX; a++)
		EXPECT_STRNE("unknown", psd_ctl_attr_name(a));
}

TEST_HARNESS_MAIN
