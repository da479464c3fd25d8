// SPDX-License-Identifier: GPL-2.0
/*
 * The key schedule (kdf.h): the test vectors of docs/protocol.md (also
 * computed with Python's hashlib.blake2b, an implementation apart from
 * libsodium), and the KDF recomputed here step by step with one-shot
 * BLAKE2b calls, on many inputs; outputs aliasing the chaining key.
 */
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "kdf.h"

static void unhex(const char *hex, uint8_t *out, size_t len)
{
	if (strlen(hex) != 2 * len ||
	    sodium_hex2bin(out, len, hex, 2 * len, NULL, NULL, NULL))
		abort();
}

/* ck = 00 01 .. 1f, ikm = 20 21 .. 3f: docs/protocol.md. */
static void vector_inputs(uint8_t ck[PSD_KDF_LEN], uint8_t ikm[PSD_KDF_LEN])
{
	for (int i = 0; i < PSD_KDF_LEN; i++) {
		ck[i] = (uint8_t)i;
		ikm[i] = (uint8_t)(32 + i);
	}
}

TEST(vectors_of_the_protocol_document)
{
	uint8_t ck[PSD_KDF_LEN], ikm[PSD_KDF_LEN], want[PSD_KDF_LEN];
	uint8_t t1[PSD_KDF_LEN], t2[PSD_KDF_LEN], t3[PSD_KDF_LEN];
	uint8_t m16[PSD_MAC16_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	vector_inputs(ck, ikm);

	psd_kdf_hash2(t1, "peer", 4, "snap", 4);
	unhex("4c13ee8e41298cdc41112ac0850f97e0b0774b61185ccfa70df6a9a1a9595345",
	      want, sizeof(want));
	EXPECT_EQ(0, memcmp(want, t1, sizeof(want)));

	psd_kdf_mac(t1, ck, "abc", 3);
	unhex("d63a32d3e44738d7907f964316c241adaba0abfeabc32349677578a15a203f7f",
	      want, sizeof(want));
	EXPECT_EQ(0, memcmp(want, t1, sizeof(want)));

	psd_kdf_mac16(m16, ck, "abc", 3);
	unhex("1a64be47e4729d951c302ee543f97cf3", want, PSD_MAC16_LEN);
	EXPECT_EQ(0, memcmp(want, m16, sizeof(m16)));

	psd_kdf(t1, t2, t3, ck, ikm, sizeof(ikm));
	unhex("0861b658879b7293576bf181fe24722004d5cd3d727c7c32c192573a9a8a74bb",
	      want, sizeof(want));
	EXPECT_EQ(0, memcmp(want, t1, sizeof(want)));
	unhex("56fa75c6f3e2019cc93765a390ea89d2c20e4bb2767238a8e79d388b0c3ecc47",
	      want, sizeof(want));
	EXPECT_EQ(0, memcmp(want, t2, sizeof(want)));
	unhex("b30b8bc07a44deb1ac9879832648c2d849c3ad656a50639682464f1b77c0fbc2",
	      want, sizeof(want));
	EXPECT_EQ(0, memcmp(want, t3, sizeof(want)));

	psd_kdf(t1, t2, NULL, ck, NULL, 0);
	unhex("ce06e7b808bed51a8c14e43f47ffcfb8e1834d5d84b95e81232e3c974e5946b1",
	      want, sizeof(want));
	EXPECT_EQ(0, memcmp(want, t1, sizeof(want)));
	unhex("b554188c0918b13a13f020422bb87f4b67d1f4e3d39685908e1c42752b790abf",
	      want, sizeof(want));
	EXPECT_EQ(0, memcmp(want, t2, sizeof(want)));
}

/* KDF3 by the letter of docs/protocol.md, one-shot calls only. */
static void reference_kdf3(uint8_t t[3][PSD_KDF_LEN], const uint8_t *ck,
			   const uint8_t *ikm, size_t ikm_len)
{
	uint8_t prk[PSD_KDF_LEN], in[PSD_KDF_LEN + 1];

	crypto_generichash(prk, PSD_KDF_LEN, ikm, ikm_len, ck, PSD_KDF_LEN);
	in[0] = 1;
	crypto_generichash(t[0], PSD_KDF_LEN, in, 1, prk, PSD_KDF_LEN);
	for (int i = 1; i < 3; i++) {
		memcpy(in, t[i - 1], PSD_KDF_LEN);
		in[PSD_KDF_LEN] = (uint8_t)(i + 1);
		crypto_generichash(t[i], PSD_KDF_LEN, in, sizeof(in), prk,
				   PSD_KDF_LEN);
	}
}

TEST(kdf_matches_a_step_by_step_recomputation)
{
	uint8_t ck[PSD_KDF_LEN], ikm[200], ref[3][PSD_KDF_LEN];
	uint8_t t1[PSD_KDF_LEN], t2[PSD_KDF_LEN], t3[PSD_KDF_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	for (size_t len = 0; len <= sizeof(ikm); len += 25) {
		randombytes_buf(ck, sizeof(ck));
		randombytes_buf(ikm, sizeof(ikm));
		reference_kdf3(ref, ck, ikm, len);
		psd_kdf(t1, t2, t3, ck, ikm, len);
		EXPECT_EQ(0, memcmp(ref[0], t1, PSD_KDF_LEN));
		EXPECT_EQ(0, memcmp(ref[1], t2, PSD_KDF_LEN));
		EXPECT_EQ(0, memcmp(ref[2], t3, PSD_KDF_LEN));
		/* Fewer outputs are a prefix of more. */
		psd_kdf(t1, NULL, NULL, ck, ikm, len);
		EXPECT_EQ(0, memcmp(ref[0], t1, PSD_KDF_LEN));
		psd_kdf(t1, t2, NULL, ck, ikm, len);
		EXPECT_EQ(0, memcmp(ref[1], t2, PSD_KDF_LEN));
	}
}

TEST(outputs_may_alias_the_chaining_key)
{
	uint8_t ck[PSD_KDF_LEN], ikm[PSD_KDF_LEN], ref[3][PSD_KDF_LEN];
	uint8_t k[PSD_KDF_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	vector_inputs(ck, ikm);
	reference_kdf3(ref, ck, ikm, sizeof(ikm));
	psd_kdf(ck, k, NULL, ck, ikm, sizeof(ikm));
	EXPECT_EQ(0, memcmp(ref[0], ck, PSD_KDF_LEN));
	EXPECT_EQ(0, memcmp(ref[1], k, PSD_KDF_LEN));

	vector_inputs(ck, ikm);
	psd_kdf(k, ck, NULL, ck, ikm, sizeof(ikm));
	EXPECT_EQ(0, memcmp(ref[0], k, PSD_KDF_LEN));
	EXPECT_EQ(0, memcmp(ref[1], ck, PSD_KDF_LEN));
}

TEST(hash2_is_the_hash_of_the_concatenation)
{
	uint8_t buf[100], one[PSD_KDF_LEN], two[PSD_KDF_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	randombytes_buf(buf, sizeof(buf));
	crypto_generichash(one, sizeof(one), buf, sizeof(buf), NULL, 0);
	for (size_t split = 0; split <= sizeof(buf); split += 10) {
		psd_kdf_hash2(two, buf, split, buf + split,
			      sizeof(buf) - split);
		EXPECT_EQ(0, memcmp(one, two, sizeof(one)));
	}
}

TEST_HARNESS_MAIN
