// SPDX-License-Identifier: GPL-2.0
/*
 * Chunk hashes: BLAKE2b-256 known answers, the reserved all-zero value at
 * the chunk sizes the kernel allows, and the verify calls the fetch path
 * will make before it writes a chunk to a cache device.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "chunkhash.h"

static const uint8_t zero_hash[PSD_HASH_LEN];

/* Parses 64 hex digits (known answers are written as text). */
static void unhex(const char *s, uint8_t out[PSD_HASH_LEN])
{
	size_t i;

	for (i = 0; i < PSD_HASH_LEN; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
}

static uint8_t *zeros(size_t len)
{
	uint8_t *p = calloc(1, len);

	if (!p)
		abort();
	return p;
}

TEST(blake2b_256_known_answer)
{
	uint8_t want[PSD_HASH_LEN], h[PSD_HASH_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	/* BLAKE2b-256("abc"), as Python's hashlib computes it. */
	unhex("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319",
	      want);
	psd_chunkhash("abc", 3, h);
	EXPECT_EQ(0, memcmp(want, h, sizeof(h)));
	EXPECT_EQ(0, psd_chunkhash_verify("abc", 3, want));
	EXPECT_EQ(-EBADMSG, psd_chunkhash_verify("abd", 3, want));
}

/* 4 KiB, the default 256 KiB and 4 MiB: the kernel's range and default. */
static const size_t sizes[] = { 4096, 256 << 10, 4 << 20 };

TEST(all_zero_chunks_get_the_reserved_value)
{
	uint8_t h[PSD_HASH_LEN];
	size_t i;

	ASSERT_EQ(0, psd_chunkhash_init());
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *buf = zeros(sizes[i]);

		memset(h, 0xaa, sizeof(h));
		EXPECT_TRUE(psd_chunk_is_zero(buf, sizes[i]));
		psd_chunkhash(buf, sizes[i], h);
		EXPECT_EQ(0, memcmp(h, zero_hash, sizeof(h)));
		EXPECT_TRUE(psd_hash_is_zero(h));
		EXPECT_EQ(0, psd_chunkhash_verify(buf, sizes[i], zero_hash));
		free(buf);
	}
	/* Even an empty buffer (never a real chunk) is "all zeros". */
	EXPECT_TRUE(psd_chunk_is_zero(NULL, 0));
}

/* One non-zero byte anywhere makes a real BLAKE2b hash, never the
 * reserved value, and a zero-claimed verify of it fails. */
TEST(one_nonzero_byte_anywhere)
{
	size_t len = 256 << 10, at[] = { 0, 1, 4095, len / 2, len - 1 };
	uint8_t h[PSD_HASH_LEN], want[PSD_HASH_LEN];
	uint8_t *buf = zeros(len);
	size_t i;

	ASSERT_EQ(0, psd_chunkhash_init());
	for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		memset(buf, 0, len);
		buf[at[i]] = 0x01;
		EXPECT_FALSE(psd_chunk_is_zero(buf, len)) TH_LOG("at %zu", at[i]);
		psd_chunkhash(buf, len, h);
		crypto_generichash(want, sizeof(want), buf, len, NULL, 0);
		EXPECT_EQ(0, memcmp(h, want, sizeof(h)));
		EXPECT_FALSE(psd_hash_is_zero(h));
		EXPECT_EQ(-EBADMSG, psd_chunkhash_verify(buf, len, zero_hash));
		EXPECT_EQ(0, psd_chunkhash_verify(buf, len, want));
	}
	free(buf);
}

/* Zeros that a manifest lists with a real hash do not verify: a peer
 * cannot pass off a zeroed chunk for data. */
TEST(zeros_against_a_real_hash)
{
	uint8_t *buf = zeros(4096);
	uint8_t h[PSD_HASH_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	buf[7] = 9;
	psd_chunkhash(buf, 4096, h);
	buf[7] = 0;
	EXPECT_EQ(-EBADMSG, psd_chunkhash_verify(buf, 4096, h));
	free(buf);
}

TEST(every_flipped_bit_is_caught)
{
	uint8_t buf[64], h[PSD_HASH_LEN];
	size_t bit;

	ASSERT_EQ(0, psd_chunkhash_init());
	randombytes_buf(buf, sizeof(buf));
	psd_chunkhash(buf, sizeof(buf), h);
	for (bit = 0; bit < 8 * sizeof(buf); bit++) {
		buf[bit / 8] ^= (uint8_t)(1 << bit % 8);
		EXPECT_EQ(-EBADMSG, psd_chunkhash_verify(buf, sizeof(buf), h));
		buf[bit / 8] ^= (uint8_t)(1 << bit % 8);
	}
	EXPECT_EQ(0, psd_chunkhash_verify(buf, sizeof(buf), h));
}

/* A FETCH of four chunks: zero, data, data, zero; then one corrupted. */
TEST(verify_range_reports_the_first_bad_chunk)
{
	size_t cs = 4096, n = 4, bad = 99;
	uint8_t (*hashes)[PSD_HASH_LEN] = calloc(n, PSD_HASH_LEN);
	uint8_t *buf = zeros(n * cs);

	ASSERT_EQ(0, psd_chunkhash_init());
	ASSERT_NE(NULL, hashes);
	memset(buf + cs, 0x11, cs);
	memset(buf + 2 * cs + 100, 0x22, 10);
	psd_chunkhash(buf + cs, cs, hashes[1]);
	psd_chunkhash(buf + 2 * cs, cs, hashes[2]);
	EXPECT_EQ(0, psd_chunkhash_verify_range(buf, cs, n, hashes, &bad));
	EXPECT_EQ(99, bad);	/* untouched on success */

	buf[2 * cs + 105] ^= 1;
	EXPECT_EQ(-EBADMSG,
		  psd_chunkhash_verify_range(buf, cs, n, hashes, &bad));
	EXPECT_EQ(2, bad);

	buf[3 * cs + cs - 1] = 1;	/* a "zero" chunk that is not */
	buf[2 * cs + 105] ^= 1;
	EXPECT_EQ(-EBADMSG,
		  psd_chunkhash_verify_range(buf, cs, n, hashes, &bad));
	EXPECT_EQ(3, bad);
	EXPECT_EQ(-EINVAL, psd_chunkhash_verify_range(buf, SIZE_MAX / 2, 3,
						      hashes, &bad));
	free(buf);
	free(hashes);
}

/* An index chunk that lists only zero chunks is itself all zeros, so it
 * gets the reserved value too and is never fetched: sparse volumes cost
 * no index. */
TEST(index_chunk_of_zero_entries_is_zero)
{
	uint8_t (*entries)[PSD_HASH_LEN] = calloc(2048, PSD_HASH_LEN);
	uint8_t h[PSD_HASH_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	ASSERT_NE(NULL, entries);
	psd_chunkhash(entries, 2048 * PSD_HASH_LEN, h);
	EXPECT_TRUE(psd_hash_is_zero(h));
	entries[2047][31] = 1;
	psd_chunkhash(entries, 2048 * PSD_HASH_LEN, h);
	EXPECT_FALSE(psd_hash_is_zero(h));
	free(entries);
}

TEST_HARNESS_MAIN
