// SPDX-License-Identifier: GPL-2.0
/*
 * FETCH validation against messages built here with libnl, and the
 * REGISTER / FETCH_DONE encoders read back through a strict parse.
 */
#include <string.h>

#include "kselftest_harness.h"

#include "proto.h"

#define FAMILY	0x1c
#define NO_ATTR	-1

static const struct psd_fetch_msg good = {
	.request_id = 0x1122334455667788ull,
	.device_id = 7,
	.snapshot_id = { 0xde, 0xad, [31] = 0xef },
	.first_chunk = 1000,
	.chunk_count = 4,
	.cache_dev = 0x00100703,
	.chunk_sectors = 128,
	.priority = PEERSNAP_PRIO_PREFETCH,
};

/*
 * A FETCH for m, without attribute `omit`, with attribute `resize` one
 * byte longer (+1) or shorter (-1) than it should be.
 */
static struct nl_msg *fetch_msg(const struct psd_fetch_msg *m, int omit,
				int resize, int delta)
{
	struct nl_msg *msg = nlmsg_alloc();
	uint8_t raw[64] = { 0 };
	struct {
		int type;
		const void *data;
		int len;
	} attrs[] = {
		{ PEERSNAP_A_REQUEST_ID, &m->request_id, 8 },
		{ PEERSNAP_A_DEVICE_ID, &m->device_id, 4 },
		{ PEERSNAP_A_SNAPSHOT_ID, m->snapshot_id, 32 },
		{ PEERSNAP_A_FIRST_CHUNK, &m->first_chunk, 8 },
		{ PEERSNAP_A_CHUNK_COUNT, &m->chunk_count, 4 },
		{ PEERSNAP_A_CACHE_DEV, &m->cache_dev, 4 },
		{ PEERSNAP_A_CHUNK_SECTORS, &m->chunk_sectors, 4 },
		{ PEERSNAP_A_PRIORITY, &m->priority, 1 },
	};
	size_t i;

	genlmsg_put(msg, 0, 1, FAMILY, 0, 0, PEERSNAP_CMD_FETCH, 1);
	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		int len = attrs[i].len;

		if (attrs[i].type == omit)
			continue;
		if (attrs[i].type == resize)
			len += delta;
		memcpy(raw, attrs[i].data, (size_t)attrs[i].len);
		nla_put(msg, attrs[i].type, len, raw);
		memset(raw, 0, sizeof(raw));
	}
	return msg;
}

static int parse(struct nl_msg *msg, struct psd_fetch_msg *out,
		 const char **why)
{
	int r = psd_proto_fetch_parse(nlmsg_hdr(msg), out, why);

	nlmsg_free(msg);
	return r;
}

static int parse_variant(const struct psd_fetch_msg *m,
			 struct psd_fetch_msg *out)
{
	const char *why;

	return parse(fetch_msg(m, NO_ATTR, NO_ATTR, 0), out, &why);
}

TEST(valid_fetch)
{
	struct psd_fetch_msg out;
	const char *why = NULL;

	ASSERT_EQ(0, parse(fetch_msg(&good, NO_ATTR, NO_ATTR, 0), &out, &why));
	EXPECT_EQ(0, memcmp(&good, &out, sizeof(good)));
	EXPECT_EQ(4 * 128 * 512, psd_fetch_bytes(&out));
}

TEST(unknown_and_pad_attributes_are_ignored)
{
	struct nl_msg *msg = fetch_msg(&good, NO_ATTR, NO_ATTR, 0);
	struct psd_fetch_msg out;
	const char *why;

	nla_put_u32(msg, PEERSNAP_A_MAX + 5, 1);
	nla_put(msg, PEERSNAP_A_PAD, 0, NULL);
	nla_put_u64(msg, PEERSNAP_A_FETCHED, 3);
	ASSERT_EQ(0, parse(msg, &out, &why));
	EXPECT_EQ(good.request_id, out.request_id);
}

static const int echo_attrs[] = {
	PEERSNAP_A_REQUEST_ID, PEERSNAP_A_DEVICE_ID,
	PEERSNAP_A_FIRST_CHUNK, PEERSNAP_A_CHUNK_COUNT,
};

static const int other_attrs[] = {
	PEERSNAP_A_SNAPSHOT_ID, PEERSNAP_A_CACHE_DEV,
	PEERSNAP_A_CHUNK_SECTORS, PEERSNAP_A_PRIORITY,
};

TEST(missing_echo_attribute_is_unanswerable)
{
	size_t i;

	for (i = 0; i < 4; i++) {
		struct psd_fetch_msg out = { .request_id = 99 };
		const char *why = NULL;

		EXPECT_EQ(-EBADMSG, parse(fetch_msg(&good, echo_attrs[i],
						    NO_ATTR, 0), &out, &why));
		EXPECT_EQ(0, strncmp(why, "missing ", 8));
		EXPECT_EQ(99, out.request_id);	/* untouched */
	}
}

TEST(missing_other_attribute_is_answered_einval)
{
	size_t i;

	for (i = 0; i < 4; i++) {
		struct psd_fetch_msg out = { 0 };
		const char *why = NULL;

		EXPECT_EQ(-EINVAL, parse(fetch_msg(&good, other_attrs[i],
						   NO_ATTR, 0), &out, &why));
		EXPECT_EQ(0, strncmp(why, "missing ", 8));
		/* Enough to answer it. */
		EXPECT_EQ(good.request_id, out.request_id);
		EXPECT_EQ(good.device_id, out.device_id);
		EXPECT_EQ(good.first_chunk, out.first_chunk);
		EXPECT_EQ(good.chunk_count, out.chunk_count);
	}
}

TEST(wrong_attribute_sizes_are_malformed)
{
	size_t i;
	int delta;

	for (delta = -1; delta <= 1; delta += 2) {
		for (i = 0; i < 8; i++) {
			int type = i < 4 ? echo_attrs[i] : other_attrs[i - 4];
			struct psd_fetch_msg out;
			const char *why = NULL;

			EXPECT_EQ(-EBADMSG, parse(fetch_msg(&good, NO_ATTR,
							    type, delta),
						  &out, &why))
				TH_LOG("attr %d delta %d", type, delta);
			EXPECT_STREQ("attribute of the wrong size", why);
		}
	}
}

TEST(request_id_zero)
{
	struct psd_fetch_msg m = good, out;
	const char *why;

	m.request_id = 0;
	EXPECT_EQ(-EBADMSG, parse(fetch_msg(&m, NO_ATTR, NO_ATTR, 0), &out,
				  &why));
	EXPECT_STREQ("request id 0", why);
}

TEST(semantic_limits)
{
	struct psd_fetch_msg m, out;

	m = good;
	m.chunk_count = 0;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m = good;
	m.chunk_sectors = 4;		/* 2 KiB chunk */
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m.chunk_sectors = 12;		/* not a power of two */
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m.chunk_sectors = 16384;	/* 8 MiB chunk */
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m.chunk_sectors = 0;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m = good;
	m.priority = __PEERSNAP_PRIO_MAX;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m = good;
	m.cache_dev = 0;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
}

TEST(size_limit_is_64_mib)
{
	struct psd_fetch_msg m = good, out;

	m.chunk_sectors = 8192;		/* 4 MiB chunks */
	m.chunk_count = 16;		/* 64 MiB: the limit */
	EXPECT_EQ(0, parse_variant(&m, &out));
	m.chunk_count = 17;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m.chunk_sectors = 8;		/* 4 KiB chunks */
	m.chunk_count = 16384;		/* 64 MiB */
	EXPECT_EQ(0, parse_variant(&m, &out));
	m.chunk_count = 16385;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m.chunk_count = UINT32_MAX;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
}

TEST(range_must_fit_an_off_t)
{
	struct psd_fetch_msg m = good, out;

	m.chunk_sectors = 8;		/* 4096-byte chunks */
	m.first_chunk = UINT64_MAX;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	m.first_chunk = UINT64_MAX - 2;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
	/* Last chunk ends exactly at 2^63 - 4096 + 4096 - 1: fine. */
	m.chunk_count = 1;
	m.first_chunk = ((uint64_t)INT64_MAX >> 12) - 1;
	EXPECT_EQ(0, parse_variant(&m, &out));
	m.first_chunk = (uint64_t)INT64_MAX >> 12;
	EXPECT_EQ(-EINVAL, parse_variant(&m, &out));
}

TEST(broken_headers)
{
	struct nl_msg *msg;
	struct psd_fetch_msg out;
	const char *why;

	/* No room for the genl header. */
	msg = nlmsg_alloc();
	nlmsg_put(msg, 0, 1, FAMILY, 0, 0);
	EXPECT_EQ(-EBADMSG, parse(msg, &out, &why));
	EXPECT_STREQ("short generic netlink header", why);

	msg = nlmsg_alloc();
	genlmsg_put(msg, 0, 1, FAMILY, 0, 0, PEERSNAP_CMD_FETCH_DONE, 1);
	EXPECT_EQ(-EBADMSG, parse(msg, &out, &why));
	EXPECT_STREQ("not a FETCH", why);
}

/* An attribute whose length claims more than the message holds. */
TEST(truncated_attribute)
{
	struct nl_msg *msg = fetch_msg(&good, NO_ATTR, NO_ATTR, 0);
	struct nlattr *nla = nla_reserve(msg, PEERSNAP_A_FLAGS, 4);
	struct psd_fetch_msg out;
	const char *why;

	nla->nla_len = 200;
	/* libnl alone would stop there quietly and accept the rest. */
	EXPECT_EQ(-EBADMSG, parse(msg, &out, &why));
	EXPECT_STREQ("attribute runs past the message", why);
}

static const struct nla_policy done_policy[PEERSNAP_A_MAX + 1] = {
	[PEERSNAP_A_REQUEST_ID] = { .type = NLA_U64, .minlen = 8, .maxlen = 8 },
	[PEERSNAP_A_DEVICE_ID] = { .type = NLA_U32, .minlen = 4, .maxlen = 4 },
	[PEERSNAP_A_FIRST_CHUNK] = { .type = NLA_U64, .minlen = 8, .maxlen = 8 },
	[PEERSNAP_A_CHUNK_COUNT] = { .type = NLA_U32, .minlen = 4, .maxlen = 4 },
	[PEERSNAP_A_STATUS] = { .type = NLA_S32, .minlen = 4, .maxlen = 4 },
};

TEST(done_roundtrip)
{
	struct psd_fetch_done d = psd_proto_done_for(&good, -ENOENT);
	struct nlattr *tb[PEERSNAP_A_MAX + 1];
	struct nl_msg *msg = nlmsg_alloc();
	struct nlmsghdr *nlh;
	int n = 0, i;

	ASSERT_EQ(0, psd_proto_done_build(msg, FAMILY, &d));
	nlh = nlmsg_hdr(msg);
	EXPECT_EQ(FAMILY, nlh->nlmsg_type);
	EXPECT_EQ(0, nlh->nlmsg_flags & NLM_F_ACK);
	EXPECT_EQ(PEERSNAP_CMD_FETCH_DONE, genlmsg_hdr(nlh)->cmd);
	EXPECT_EQ(PEERSNAP_GENL_VERSION, genlmsg_hdr(nlh)->version);
	ASSERT_EQ(0, genlmsg_parse(nlh, 0, tb, PEERSNAP_A_MAX, done_policy));
	for (i = 0; i <= PEERSNAP_A_MAX; i++)
		n += tb[i] != NULL;
	EXPECT_EQ(5, n);
	EXPECT_EQ(good.request_id, nla_get_u64(tb[PEERSNAP_A_REQUEST_ID]));
	EXPECT_EQ(good.device_id, nla_get_u32(tb[PEERSNAP_A_DEVICE_ID]));
	EXPECT_EQ(good.first_chunk, nla_get_u64(tb[PEERSNAP_A_FIRST_CHUNK]));
	EXPECT_EQ(good.chunk_count, nla_get_u32(tb[PEERSNAP_A_CHUNK_COUNT]));
	EXPECT_EQ(-ENOENT, nla_get_s32(tb[PEERSNAP_A_STATUS]));
	nlmsg_free(msg);
}

TEST(register_message)
{
	struct nl_msg *msg = nlmsg_alloc();
	struct nlmsghdr *nlh;

	ASSERT_EQ(0, psd_proto_register_build(msg, FAMILY));
	nlh = nlmsg_hdr(msg);
	EXPECT_EQ(PEERSNAP_CMD_REGISTER, genlmsg_hdr(nlh)->cmd);
	EXPECT_TRUE(nlh->nlmsg_flags & NLM_F_ACK);
	EXPECT_EQ(0, genlmsg_attrlen(genlmsg_hdr(nlh), 0));
	nlmsg_free(msg);
}

TEST_HARNESS_MAIN
