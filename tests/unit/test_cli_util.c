// SPDX-License-Identifier: GPL-2.0
/*
 * The peersnap CLI's helpers without I/O: sizes and chunk sizes with
 * suffixes, id arguments, byte / ETA / progress-bar formatting, JSON
 * escaping and the writer's commas, the dmsetup table line, and the
 * target's status line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "json.h"
#include "manifest.h"
#include "origin.h"
#include "parse.h"
#include "progress.h"

TEST(sizes_with_binary_suffixes)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "4k", 4096 },
		{ "256K", 256 << 10 },
		{ "4M", 4 << 20 },
		{ "4MiB", 4 << 20 },
		{ "4mb", 4 << 20 },
		{ "1G", 1ull << 30 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "K", "4X", "4KX", "4KiBs", "-1", " 4", "4 K", "0x10", "1.5M",
	};
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		EXPECT_EQ(0, cli_parse_size(good[i].s, &v)) TH_LOG("case %zu", i);
		EXPECT_EQ(good[i].v, v) TH_LOG("case %zu", i);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(-EINVAL, cli_parse_size(bad[i], &v)) TH_LOG("case %zu", i);
	EXPECT_EQ(-ERANGE, cli_parse_size("18446744073709551616", &v));
	EXPECT_EQ(-ERANGE, cli_parse_size("17179869184G", &v));
}

TEST(chunk_sizes_are_powers_of_two_from_4k_to_4m)
{
	static const char *const bad[] = { "3k", "2k", "8M", "12k", "0",
					   "4095", "abc" };
	uint32_t v = 0;
	size_t i;

	EXPECT_EQ(0, cli_parse_chunk_size("4k", &v));
	EXPECT_EQ(4096u, v);
	EXPECT_EQ(0, cli_parse_chunk_size("4M", &v));
	EXPECT_EQ(4u << 20, v);
	EXPECT_EQ(0, cli_parse_chunk_size("65536", &v));
	EXPECT_EQ(65536u, v);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(-EINVAL, cli_parse_chunk_size(bad[i], &v)) TH_LOG("case %zu", i);
}

TEST(id_arguments_are_8_to_64_hex_digits)
{
	char s[80];

	EXPECT_EQ(0, cli_check_id_arg("0123abcd"));
	EXPECT_EQ(0, cli_check_id_arg("0123ABCD"));
	memset(s, 'f', 64);
	s[64] = '\0';
	EXPECT_EQ(0, cli_check_id_arg(s));
	s[64] = 'f';
	s[65] = '\0';
	EXPECT_EQ(-EINVAL, cli_check_id_arg(s));
	EXPECT_EQ(-EINVAL, cli_check_id_arg("0123abc"));
	EXPECT_EQ(-EINVAL, cli_check_id_arg("0123abcg"));
	EXPECT_EQ(-EINVAL, cli_check_id_arg(""));
}

TEST(bytes_and_eta)
{
	char b[32];

	cli_format_bytes(b, sizeof(b), 0);
	EXPECT_STREQ("0 B", b);
	cli_format_bytes(b, sizeof(b), 1023);
	EXPECT_STREQ("1023 B", b);
	cli_format_bytes(b, sizeof(b), 1024);
	EXPECT_STREQ("1.00 KiB", b);
	cli_format_bytes(b, sizeof(b), 1536);
	EXPECT_STREQ("1.50 KiB", b);
	cli_format_bytes(b, sizeof(b), 256 << 10);
	EXPECT_STREQ("256 KiB", b);
	cli_format_bytes(b, sizeof(b), 10 << 20);
	EXPECT_STREQ("10.0 MiB", b);
	cli_format_bytes(b, sizeof(b), 3.25 * (1ull << 40));
	EXPECT_STREQ("3.25 TiB", b);

	cli_format_eta(b, sizeof(b), 7);
	EXPECT_STREQ("0:07", b);
	cli_format_eta(b, sizeof(b), 754);
	EXPECT_STREQ("12:34", b);
	cli_format_eta(b, sizeof(b), 3723);
	EXPECT_STREQ("1:02:03", b);
	cli_format_eta(b, sizeof(b), -1);
	EXPECT_STREQ("--:--", b);
	cli_format_eta(b, sizeof(b), 1e12);
	EXPECT_STREQ("--:--", b);
}

TEST(progress_line)
{
	char line[CLI_PROGRESS_LINE];

	cli_progress_format(line, sizeof(line), "hashing", 1ull << 30,
			    2ull << 30, 2.0);
	EXPECT_STREQ("hashing  50%  1.00 GiB/2.00 GiB  512 MiB/s  ETA 0:02",
		     line);
	cli_progress_format(line, sizeof(line), "pulling", 0, 4096, 0);
	EXPECT_STREQ("pulling   0%  0 B/4.00 KiB  -  ETA --:--", line);
	cli_progress_format(line, sizeof(line), "hydrating", 4096, 4096, 1.0);
	EXPECT_STREQ("hydrating 100%  4.00 KiB/4.00 KiB  4.00 KiB/s  ETA 0:00",
		     line);
	/* Never wider than the line, whatever the numbers. */
	cli_progress_format(line, sizeof(line), "hashing", UINT64_MAX,
			    UINT64_MAX, 1e-9);
	EXPECT_LT(strlen(line), sizeof(line));
}

/* Runs the writer into a memory buffer. */
static char *json_of(void (*write)(struct cli_json *j))
{
	struct cli_json j;
	size_t len;
	char *out;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		abort();
	cli_json_init(&j, f);
	write(&j);
	fclose(f);
	return out;
}

static void write_escapes(struct cli_json *j)
{
	cli_json_string(j, "a\"b\\c\nd\te\r\x01\x1f\x7f \xc3\xa9/");
}

static void write_nested(struct cli_json *j)
{
	cli_json_begin_object(j);
	cli_json_key(j, "list");
	cli_json_begin_array(j);
	cli_json_u64(j, 1);
	cli_json_i64(j, -2);
	cli_json_begin_object(j);
	cli_json_end_object(j);
	cli_json_bool(j, true);
	cli_json_null(j);
	cli_json_end_array(j);
	cli_json_key(j, "k\"ey");
	cli_json_string(j, "");
	cli_json_key(j, "max");
	cli_json_u64(j, UINT64_MAX);
	cli_json_end_object(j);
	cli_json_finish(j);
}

TEST(json_escapes_every_control_character)
{
	char *out = json_of(write_escapes);

	EXPECT_STREQ("\"a\\\"b\\\\c\\nd\\te\\r\\u0001\\u001f\\u007f \xc3\xa9/\"",
		     out);
	free(out);
}

TEST(json_commas_and_nesting)
{
	char *out = json_of(write_nested);

	EXPECT_STREQ("{\"list\":[1,-2,{},true,null],\"k\\\"ey\":\"\","
		     "\"max\":18446744073709551615}\n", out);
	free(out);
}

/* One object of members, as the verbs print them (init again: same f). */
static void write_members(struct cli_json *j)
{
	static const uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN] = {
		0x01, 0xab, [PEERSNAP_SNAPSHOT_ID_LEN - 1] = 0xff
	};

	cli_json_start_object(j, j->f);
	cli_json_key_string(j, "name", "a\"b");
	cli_json_key_u64(j, "size", 4096);
	cli_json_key_id(j, "id", id);
	cli_json_key_id(j, "parent", NULL);
	cli_json_finish_object(j);
}

TEST(json_member_helpers)
{
	char *out = json_of(write_members);

	EXPECT_STREQ("{\"name\":\"a\\\"b\",\"size\":4096,"
		     "\"id\":\"01ab0000000000000000000000000000"
		     "000000000000000000000000000000ff\","
		     "\"parent\":null}\n", out);
	free(out);
}

/* A signed manifest of size bytes in 256 KiB chunks (fixed key). */
static struct psd_manifest *manifest_of(uint64_t size)
{
	const struct psd_manifest_params p = {
		.size = size, .chunk_size = 256 << 10, .name = "t",
	};
	uint8_t seed[PSD_SEED_LEN] = { 7 }, (*ih)[PSD_HASH_LEN];
	struct psd_geometry g;
	struct psd_identity id;
	struct psd_manifest *m = NULL;
	uint8_t *buf;
	size_t len;

	if (psd_chunkhash_init() || psd_geometry_init(&g, size, p.chunk_size,
						      0, NULL))
		abort();
	ih = calloc(g.index_count, PSD_HASH_LEN);
	psd_identity_from_seed(seed, &id);
	if (!ih || psd_manifest_encode(&p, (const uint8_t (*)[PSD_HASH_LEN])ih,
				       g.index_count, &id, &buf, &len, NULL) ||
	    psd_manifest_decode(buf, len, &m, NULL))
		abort();
	free(buf);
	free(ih);
	return m;
}

TEST(table_line_covers_whole_chunks)
{
	struct psd_manifest *m = manifest_of((256 << 10) + 1);
	char line[256], want[256], hex[65];
	size_t i;

	for (i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", m->id[i]);
	ASSERT_EQ(0, cli_format_table(line, sizeof(line), m, "/dev/meta",
				      "/dev/cache"));
	snprintf(want, sizeof(want),
		 "0 1024 peersnap /dev/meta /dev/cache 512 %s", hex);
	EXPECT_STREQ(want, line);
	snprintf(want, sizeof(want), "/dev/meta /dev/cache 512 %s", hex);
	EXPECT_STREQ(want, cli_table_params(line));
	EXPECT_EQ(-ENOSPC, cli_format_table(line, 40, m, "/dev/meta",
					    "/dev/cache"));
	psd_manifest_free(m);
}

TEST(status_line)
{
	struct cli_target_status s;

	ASSERT_EQ(0, cli_parse_status("3/4096 512 17/1024 2 1 17 3 0 connected hydrating 0 rw", &s));
	EXPECT_EQ(512u, s.chunk_sectors);
	EXPECT_EQ(17u, s.present);
	EXPECT_EQ(1024u, s.total);
	EXPECT_EQ(2u, s.dirty);
	EXPECT_EQ(1u, s.inflight);
	EXPECT_EQ(17u, s.fetched);
	EXPECT_EQ(3u, s.failed);
	EXPECT_TRUE(s.hydrating);
	EXPECT_TRUE(s.agent_connected);
	ASSERT_EQ(0, cli_parse_status("3/4096 8 4/4 0 0 4 0 0 disconnected idle 1 fail_if_no_agent ro", &s));
	EXPECT_FALSE(s.hydrating);
	EXPECT_FALSE(s.agent_connected);
	EXPECT_EQ(s.total, s.present);
	EXPECT_EQ(-EINVAL, cli_parse_status("", &s));
	EXPECT_EQ(-EINVAL, cli_parse_status("3/4096 512 17/1024", &s));
	EXPECT_EQ(-EINVAL, cli_parse_status("3/4096 512 5/4 0 0 4 0 0 connected idle 0 rw", &s));
	EXPECT_EQ(-EINVAL, cli_parse_status("3/4096 512 1/4 0 0 4 0 0 connected busy 0 rw", &s));
	EXPECT_EQ(-EINVAL, cli_parse_status("3/4096 512 1/4 0 0 4 0 0 maybe idle 0 rw", &s));
}

TEST_HARNESS_MAIN
