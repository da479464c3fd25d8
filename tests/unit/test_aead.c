// SPDX-License-Identifier: GPL-2.0
/*
 * Packet protection (aead.h), once per algorithm: round trips (also in
 * place), the nonce construction against libsodium called by hand, and
 * every way a packet must be refused: a changed header, ciphertext or tag
 * byte, another packet number, another key, a truncated packet.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "aead.h"
#include "chunkhash.h"

#define PT_LEN	1200
#define AD_LEN	21

FIXTURE(aead)
{
	struct psd_aead_key key;
	uint8_t ad[AD_LEN];
	uint8_t pt[PT_LEN];
	uint8_t ct[PT_LEN + PSD_AEAD_TAG_LEN];
	uint8_t out[PT_LEN + PSD_AEAD_TAG_LEN];
};

FIXTURE_VARIANT(aead)
{
	enum psd_aead_alg alg;
};

FIXTURE_VARIANT_ADD(aead, chacha20_poly1305)
{
	.alg = PSD_AEAD_CHACHA20_POLY1305,
};

FIXTURE_VARIANT_ADD(aead, aes256_gcm)
{
	.alg = PSD_AEAD_AES256_GCM,
};

FIXTURE_SETUP(aead)
{
	uint8_t raw[PSD_AEAD_KEY_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	if (!psd_aead_available(variant->alg))
		SKIP(return, "%s not available on this CPU",
		     psd_aead_name(variant->alg));
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(0x80 + i);
	ASSERT_EQ(0, psd_aead_key_init(&self->key, variant->alg, raw));
	for (size_t i = 0; i < AD_LEN; i++)
		self->ad[i] = (uint8_t)(0xc0 ^ i);
	for (size_t i = 0; i < PT_LEN; i++)
		self->pt[i] = (uint8_t)(i * 7 + 3);
	ASSERT_EQ(0, psd_aead_seal(&self->key, 42, self->ad, AD_LEN,
				   self->pt, PT_LEN, self->ct));
}

FIXTURE_TEARDOWN(aead)
{
	psd_aead_key_wipe(&self->key);
}

static int open_ct(struct _test_data_aead *self, uint64_t pn, size_t len)
{
	return psd_aead_open(&self->key, pn, self->ad, AD_LEN, self->ct, len,
			     self->out);
}

TEST_F(aead, round_trip)
{
	EXPECT_NE(0, memcmp(self->ct, self->pt, PT_LEN));
	ASSERT_EQ(0, open_ct(self, 42, sizeof(self->ct)));
	EXPECT_EQ(0, memcmp(self->out, self->pt, PT_LEN));
}

TEST_F(aead, empty_payload_is_just_a_tag)
{
	uint8_t tag[PSD_AEAD_TAG_LEN];

	ASSERT_EQ(0, psd_aead_seal(&self->key, 0, self->ad, AD_LEN, NULL, 0,
				   tag));
	EXPECT_EQ(0, psd_aead_open(&self->key, 0, self->ad, AD_LEN, tag,
				   sizeof(tag), self->out));
	EXPECT_EQ(-EBADMSG, psd_aead_open(&self->key, 1, self->ad, AD_LEN,
					  tag, sizeof(tag), self->out));
}

TEST_F(aead, in_place_both_ways)
{
	memcpy(self->out, self->pt, PT_LEN);
	ASSERT_EQ(0, psd_aead_seal(&self->key, 42, self->ad, AD_LEN,
				   self->out, PT_LEN, self->out));
	EXPECT_EQ(0, memcmp(self->out, self->ct, sizeof(self->ct)));
	ASSERT_EQ(0, psd_aead_open(&self->key, 42, self->ad, AD_LEN,
				   self->out, sizeof(self->ct), self->out));
	EXPECT_EQ(0, memcmp(self->out, self->pt, PT_LEN));
}

/* aead.h's nonce: 00 00 00 00 || le64(pn), built here by hand. */
TEST_F(aead, nonce_is_zero_prefix_and_le64_pn)
{
	const uint64_t pn = 0x0807060504030201ull;
	uint8_t nonce[PSD_AEAD_NONCE_LEN] = { 0, 0, 0, 0, 1, 2, 3, 4,
					      5, 6, 7, 8 };
	uint8_t mine[64 + PSD_AEAD_TAG_LEN], theirs[sizeof(mine)];

	ASSERT_EQ(0, psd_aead_seal(&self->key, pn, self->ad, AD_LEN,
				   self->pt, 64, mine));
	if (variant->alg == PSD_AEAD_AES256_GCM)
		crypto_aead_aes256gcm_encrypt(theirs, NULL, self->pt, 64,
					      self->ad, AD_LEN, NULL, nonce,
					      self->key.key);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt(theirs, NULL,
							  self->pt, 64,
							  self->ad, AD_LEN,
							  NULL, nonce,
							  self->key.key);
	EXPECT_EQ(0, memcmp(mine, theirs, sizeof(mine)));
}

TEST_F(aead, every_header_byte_is_authenticated)
{
	for (size_t i = 0; i < AD_LEN; i++) {
		self->ad[i] ^= 0x01;
		EXPECT_EQ(-EBADMSG, open_ct(self, 42, sizeof(self->ct)))
			TH_LOG("header byte %zu changed, still opened", i);
		self->ad[i] ^= 0x01;
	}
	EXPECT_EQ(-EBADMSG, psd_aead_open(&self->key, 42, self->ad,
					  AD_LEN - 1, self->ct,
					  sizeof(self->ct), self->out));
}

/* Every ciphertext and tag byte, one bit each (a different bit per byte). */
TEST_F(aead, every_ciphertext_and_tag_byte_is_authenticated)
{
	for (size_t i = 0; i < sizeof(self->ct); i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));

		self->ct[i] ^= bit;
		EXPECT_EQ(-EBADMSG, open_ct(self, 42, sizeof(self->ct)))
			TH_LOG("byte %zu changed, still opened", i);
		self->ct[i] ^= bit;
	}
	ASSERT_EQ(0, open_ct(self, 42, sizeof(self->ct)));
}

TEST_F(aead, wrong_packet_number_is_refused)
{
	static const uint64_t wrong[] = { 0, 41, 43, 42 + (1ull << 32),
					  42ull << 56, UINT64_MAX };

	for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		EXPECT_EQ(-EBADMSG, open_ct(self, wrong[i], sizeof(self->ct)))
			TH_LOG("pn %llu opened a packet sealed as 42",
			       (unsigned long long)wrong[i]);
	}
}

TEST_F(aead, truncated_packets_are_refused)
{
	EXPECT_EQ(-EBADMSG, open_ct(self, 42, sizeof(self->ct) - 1));
	EXPECT_EQ(-EBADMSG, open_ct(self, 42, PSD_AEAD_TAG_LEN));
	EXPECT_EQ(-EBADMSG, open_ct(self, 42, PSD_AEAD_TAG_LEN - 1));
	EXPECT_EQ(-EBADMSG, open_ct(self, 42, 0));
}

TEST_F(aead, other_key_or_algorithm_is_refused)
{
	struct psd_aead_key other = self->key;
	enum psd_aead_alg alg2 = variant->alg == PSD_AEAD_AES256_GCM ?
				 PSD_AEAD_CHACHA20_POLY1305 :
				 PSD_AEAD_AES256_GCM;

	other.key[31] ^= 0x80;
	EXPECT_EQ(-EBADMSG, psd_aead_open(&other, 42, self->ad, AD_LEN,
					  self->ct, sizeof(self->ct),
					  self->out));
	if (psd_aead_available(alg2)) {
		ASSERT_EQ(0, psd_aead_key_init(&other, alg2, self->key.key));
		EXPECT_EQ(-EBADMSG, psd_aead_open(&other, 42, self->ad,
						  AD_LEN, self->ct,
						  sizeof(self->ct),
						  self->out));
	}
	psd_aead_key_wipe(&other);
}

TEST(key_init_rules_and_wipe)
{
	uint8_t raw[PSD_AEAD_KEY_LEN];
	struct psd_aead_key k;

	ASSERT_EQ(0, psd_chunkhash_init());
	memset(raw, 0xa5, sizeof(raw));
	memset(&k, 0, sizeof(k));
	EXPECT_EQ(-EINVAL, psd_aead_key_init(&k, (enum psd_aead_alg)0, raw));
	EXPECT_EQ(-EINVAL, psd_aead_key_init(&k, (enum psd_aead_alg)3, raw));
	EXPECT_EQ(0, k.key[0]);			/* untouched on failure */
	EXPECT_FALSE(psd_aead_available((enum psd_aead_alg)3));
	EXPECT_STREQ("unknown", psd_aead_name((enum psd_aead_alg)3));
	EXPECT_EQ(crypto_aead_aes256gcm_is_available() == 1,
		  psd_aead_available(PSD_AEAD_AES256_GCM));
	EXPECT_EQ(psd_aead_available(PSD_AEAD_AES256_GCM) ?
		  PSD_AEAD_AES256_GCM : PSD_AEAD_CHACHA20_POLY1305,
		  psd_aead_preferred());
	ASSERT_EQ(0, psd_aead_key_init(&k, PSD_AEAD_CHACHA20_POLY1305, raw));
	EXPECT_EQ(0xa5, k.key[17]);
	psd_aead_key_wipe(&k);
	for (size_t i = 0; i < sizeof(k.key); i++)
		ASSERT_EQ(0, k.key[i]);
	psd_aead_key_wipe(NULL);
}

TEST_HARNESS_MAIN
