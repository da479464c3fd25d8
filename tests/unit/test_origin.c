// SPDX-License-Identifier: GPL-2.0
/* Snapshot ids in hex, the --origin argument, and the origin table. */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "origin.h"

#define HEX64 "0123456789abcdefFEDCBA98765432100123456789ABCDEFfedcba9876543210"

TEST(hex_id_roundtrip)
{
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
	char out[PSD_SNAPSHOT_HEX_LEN + 1];
	char lower[] = HEX64;
	size_t i;

	ASSERT_EQ(0, psd_hex_id_parse(HEX64, 64, id));
	EXPECT_EQ(0x01, id[0]);
	EXPECT_EQ(0xef, id[7]);
	EXPECT_EQ(0xfe, id[8]);
	EXPECT_EQ(0x10, id[31]);
	psd_hex_id_format(id, out);
	for (i = 0; lower[i]; i++)
		lower[i] = (char)tolower((unsigned char)lower[i]);
	EXPECT_STREQ(lower, out);
}

TEST(hex_nibble_and_span)
{
	EXPECT_EQ(0, psd_hex_nibble('0'));
	EXPECT_EQ(9, psd_hex_nibble('9'));
	EXPECT_EQ(10, psd_hex_nibble('a'));
	EXPECT_EQ(15, psd_hex_nibble('F'));
	EXPECT_EQ(-1, psd_hex_nibble('g'));
	EXPECT_EQ(-1, psd_hex_nibble('/'));
	EXPECT_EQ(-1, psd_hex_nibble('\0'));
	EXPECT_EQ(64, psd_hex_span(HEX64, 64));
	EXPECT_EQ(3, psd_hex_span("aB9x12", 6));
	EXPECT_EQ(2, psd_hex_span("aB9x12", 2));
	EXPECT_EQ(0, psd_hex_span("-1", 2));
	EXPECT_EQ(0, psd_hex_span("", 0));
}

TEST(hex_id_rejects)
{
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN] = { 0x5a };
	char bad[] = HEX64;

	EXPECT_EQ(-EINVAL, psd_hex_id_parse(HEX64, 63, id));
	EXPECT_EQ(-EINVAL, psd_hex_id_parse(HEX64 "0", 65, id));
	bad[17] = 'g';
	EXPECT_EQ(-EINVAL, psd_hex_id_parse(bad, 64, id));
	bad[17] = ' ';
	EXPECT_EQ(-EINVAL, psd_hex_id_parse(bad, 64, id));
	/* Untouched on failure. */
	EXPECT_EQ(0x5a, id[0]);
}

TEST(origin_arg_good)
{
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
	const char *path = NULL;
	char err[256];

	ASSERT_EQ(0, psd_origin_arg_parse(HEX64 "=/img/a=b.img", id, &path,
					  err, sizeof(err)));
	EXPECT_STREQ("/img/a=b.img", path);
	EXPECT_EQ(0x01, id[0]);
	ASSERT_EQ(0, psd_origin_arg_parse(HEX64 "=rel.img", id, &path, err,
					  sizeof(err)));
	EXPECT_STREQ("rel.img", path);
}

struct arg_case {
	const char *arg;
	const char *err;
};

static const struct arg_case bad_args[] = {
	{ "nothing-here",
	  "--origin 'nothing-here': expected <64-hex snapshot id>=<image file> (no '=')" },
	{ "abc=/x",
	  "--origin 'abc=/x': snapshot id must be 64 hex characters, got 3" },
	{ HEX64 "0=/x",
	  "--origin '" HEX64 "0=/x': snapshot id must be 64 hex characters, got 65" },
	{ "=/x", "--origin '=/x': snapshot id must be 64 hex characters, got 0" },
	{ "01234z=/x",
	  "--origin '01234z=/x': snapshot id has a non-hex character 'z' at position 6" },
	{ HEX64 "=", "--origin '" HEX64 "=': empty image file name" },
};

TEST(origin_arg_bad)
{
	size_t i;

	for (i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
		uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
		const char *path = NULL;
		char err[512];

		EXPECT_EQ(-EINVAL, psd_origin_arg_parse(bad_args[i].arg, id,
							&path, err,
							sizeof(err)));
		EXPECT_STREQ(bad_args[i].err, err);
		EXPECT_EQ(NULL, path);
	}
}

TEST(origin_table)
{
	char path[] = "/tmp/psd-origin-XXXXXX";
	struct psd_origin_entry e[2] = {
		{ .id = { 1 }, .path = path },
		{ .id = { 2 }, .path = "/nonexistent/image" },
	};
	uint8_t unknown[PEERSNAP_SNAPSHOT_ID_LEN] = { 3 };
	struct psd_origins *o;
	uint64_t size = 0;
	int fd, fd2 = -1, ifd;

	ifd = mkstemp(path);
	ASSERT_GE(ifd, 0);
	ASSERT_EQ(12345, write(ifd, calloc(1, 12345), 12345));
	close(ifd);
	ASSERT_EQ(0, psd_origins_init(&o, e, 2));
	EXPECT_EQ(-ENOENT, psd_origins_open(o, unknown, &fd, &size));
	EXPECT_EQ(-ENOENT, psd_origins_open(o, e[1].id, &fd, &size));
	ASSERT_EQ(0, psd_origins_open(o, e[0].id, &fd, &size));
	EXPECT_EQ(12345, size);
	/* Opened once, then shared. */
	ASSERT_EQ(0, psd_origins_open(o, e[0].id, &fd2, &size));
	EXPECT_EQ(fd, fd2);
	psd_origins_uninit(o);
	unlink(path);
}

TEST(origin_table_refuses_a_directory)
{
	struct psd_origin_entry e = { .id = { 1 }, .path = "/tmp" };
	struct psd_origins *o;
	uint64_t size;
	int fd;

	ASSERT_EQ(0, psd_origins_init(&o, &e, 1));
	EXPECT_EQ(-EINVAL, psd_origins_open(o, e.id, &fd, &size));
	psd_origins_uninit(o);
}

TEST_HARNESS_MAIN
