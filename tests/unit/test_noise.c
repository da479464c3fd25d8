// SPDX-License-Identifier: GPL-2.0
/*
 * The Noise IK handshake (noise.h) between fixed identities: A initiates,
 * B responds and trusts A, C is a stranger that B does not trust. Matching
 * keys in both directions; every byte of an initiation or a response
 * changed -> refused (and the state untouched); a replayed initiation, one
 * sent too fast, one meant for someone else, one from a stranger ->
 * refused; states enforced; handshake secrets wiped.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "noise.h"

#define WALL0	(1764300000ull * 1000000000ull)	/* Nov 2025, in ns */
#define SEC	1000000000ull

struct node {
	struct psd_identity id;
	struct psd_noise_local local;
	struct psd_noise_peer peers[2];
	size_t n_peers;
};

FIXTURE(noise)
{
	struct node a, b, c;
	struct psd_noise_handshake hs_a, hs_b;
	struct psd_msg_initiation init;
	struct psd_msg_response resp;
	uint64_t now;
};

static struct psd_noise_peer *lookup(void *ctx, const uint8_t *pub)
{
	struct node *n = ctx;

	for (size_t i = 0; i < n->n_peers; i++)
		if (!sodium_memcmp(n->peers[i].static_pub, pub,
				   PSD_NOISE_KEY_LEN))
			return &n->peers[i];
	return NULL;
}

static void make_node(struct node *n, uint8_t seed_byte)
{
	uint8_t seed[PSD_SEED_LEN];

	memset(n, 0, sizeof(*n));
	memset(seed, seed_byte, sizeof(seed));
	psd_identity_from_seed(seed, &n->id);
	if (psd_noise_local_init(&n->local, &n->id))
		abort();
}

static void trust(struct node *n, const struct node *other)
{
	if (psd_noise_peer_init(&n->peers[n->n_peers++], &n->local,
				other->id.pk))
		abort();
}

FIXTURE_SETUP(noise)
{
	ASSERT_EQ(0, psd_chunkhash_init());
	make_node(&self->a, 0xaa);
	make_node(&self->b, 0xbb);
	make_node(&self->c, 0xcc);
	trust(&self->a, &self->b);	/* A's peers[0] is B */
	trust(&self->a, &self->c);	/* A's peers[1] is C */
	trust(&self->b, &self->a);	/* B's peers[0] is A */
	trust(&self->c, &self->a);	/* C trusts A, B does not trust C */
	trust(&self->c, &self->b);
	self->now = 1000 * SEC;
	ASSERT_EQ(0, psd_noise_create_initiation(&self->hs_a, &self->a.local,
						 &self->a.peers[0], WALL0,
						 &self->init));
}

FIXTURE_TEARDOWN(noise)
{
	psd_noise_handshake_wipe(&self->hs_a);
	psd_noise_handshake_wipe(&self->hs_b);
}

static int b_consumes(struct _test_data_noise *self, const void *msg,
		      uint64_t now)
{
	return psd_noise_consume_initiation(&self->hs_b, &self->b.local,
					    lookup, &self->b, msg,
					    PSD_HANDSHAKE_LEN, now);
}

/* B consumes the initiation and writes its response. */
static void respond(struct __test_metadata *_metadata,
		    struct _test_data_noise *self)
{
	ASSERT_EQ(0, b_consumes(self, &self->init, self->now));
	ASSERT_EQ(0, psd_noise_create_response(&self->hs_b, &self->resp));
}

static void expect_same_key(struct __test_metadata *_metadata,
			    const struct psd_aead_key *x,
			    const struct psd_aead_key *y)
{
	EXPECT_EQ(x->alg, y->alg);
	EXPECT_EQ(0, memcmp(x->key, y->key, PSD_AEAD_KEY_LEN));
}

TEST_F(noise, handshake_gives_matching_keys_both_ways)
{
	struct psd_noise_keys ka, kb;
	uint8_t pkt[64 + PSD_AEAD_TAG_LEN], out[64], hdr[8] = "hdr";

	respond(_metadata, self);
	ASSERT_EQ(0, psd_noise_derive_keys(&self->hs_b, &kb));
	ASSERT_EQ(0, psd_noise_consume_response(&self->hs_a, &self->a.local,
						(const uint8_t *)&self->resp,
						sizeof(self->resp)));
	ASSERT_EQ(0, psd_noise_derive_keys(&self->hs_a, &ka));

	EXPECT_TRUE(ka.initiator);
	EXPECT_FALSE(kb.initiator);
	EXPECT_EQ(psd_aead_preferred(), ka.send.alg);
	expect_same_key(_metadata, &ka.send, &kb.recv);
	expect_same_key(_metadata, &ka.recv, &kb.send);
	EXPECT_NE(0, memcmp(ka.send.key, ka.recv.key, PSD_AEAD_KEY_LEN));
	EXPECT_EQ(0, memcmp(ka.local_cid, kb.remote_cid, PSD_CID_LEN));
	EXPECT_EQ(0, memcmp(ka.remote_cid, kb.local_cid, PSD_CID_LEN));
	EXPECT_EQ(0, memcmp(ka.local_cid, self->init.sender_cid, PSD_CID_LEN));

	/* A packet each way under the new keys. */
	memset(out, 0x5a, sizeof(out));
	ASSERT_EQ(0, psd_aead_seal(&ka.send, 0, hdr, sizeof(hdr), out,
				   sizeof(out), pkt));
	ASSERT_EQ(0, psd_aead_open(&kb.recv, 0, hdr, sizeof(hdr), pkt,
				   sizeof(pkt), out));
	ASSERT_EQ(0, psd_aead_seal(&kb.send, 0, hdr, sizeof(hdr), out,
				   sizeof(out), pkt));
	ASSERT_EQ(0, psd_aead_open(&ka.recv, 0, hdr, sizeof(hdr), pkt,
				   sizeof(pkt), out));
	EXPECT_EQ(0x5a, out[63]);

	/* derive_keys wiped both handshakes. */
	EXPECT_TRUE(sodium_is_zero((const uint8_t *)&self->hs_a,
				   sizeof(self->hs_a)));
	EXPECT_TRUE(sodium_is_zero((const uint8_t *)&self->hs_b,
				   sizeof(self->hs_b)));
	psd_noise_keys_wipe(&ka);
	psd_noise_keys_wipe(&kb);
	EXPECT_TRUE(sodium_is_zero((const uint8_t *)&ka, sizeof(ka)));
}

TEST_F(noise, two_handshakes_give_different_keys)
{
	struct psd_noise_keys k1, k2;

	respond(_metadata, self);
	ASSERT_EQ(0, psd_noise_derive_keys(&self->hs_b, &k1));
	ASSERT_EQ(0, psd_noise_create_initiation(&self->hs_a, &self->a.local,
						 &self->a.peers[0],
						 WALL0 + SEC, &self->init));
	self->now += SEC;
	respond(_metadata, self);
	ASSERT_EQ(0, psd_noise_derive_keys(&self->hs_b, &k2));
	EXPECT_NE(0, memcmp(k1.send.key, k2.send.key, PSD_AEAD_KEY_LEN));
	EXPECT_NE(0, memcmp(k1.local_cid, k2.local_cid, PSD_CID_LEN));
}

/* Bytes before mac1 (the macs are cookie.h's: test_cookie.c). */
TEST_F(noise, every_changed_initiation_byte_is_refused)
{
	size_t macs = offsetof(struct psd_msg_initiation, mac1);
	uint8_t msg[PSD_HANDSHAKE_LEN];

	for (size_t i = 0; i < macs; i++) {
		memcpy(msg, &self->init, sizeof(msg));
		msg[i] ^= (uint8_t)(1u << (i % 8));
		ASSERT_NE(0, b_consumes(self, msg, self->now))
			TH_LOG("byte %zu changed, initiation accepted", i);
	}
	EXPECT_EQ(PSD_NOISE_ZEROED, self->hs_b.state);
	EXPECT_FALSE(self->b.peers[0].any_initiation);
	EXPECT_EQ(0, b_consumes(self, &self->init, self->now));
}

TEST_F(noise, every_changed_response_byte_is_refused)
{
	size_t macs = offsetof(struct psd_msg_response, mac1);
	struct psd_noise_handshake before = self->hs_a;
	uint8_t msg[PSD_HANDSHAKE_LEN];

	respond(_metadata, self);
	for (size_t i = 0; i < macs; i++) {
		memcpy(msg, &self->resp, sizeof(msg));
		msg[i] ^= (uint8_t)(1u << (i % 8));
		ASSERT_NE(0, psd_noise_consume_response(&self->hs_a,
							&self->a.local, msg,
							sizeof(msg)))
			TH_LOG("byte %zu changed, response accepted", i);
	}
	/* A forged response leaves the handshake able to take the real one. */
	EXPECT_EQ(0, memcmp(&before, &self->hs_a, sizeof(before)));
	EXPECT_EQ(0, psd_noise_consume_response(&self->hs_a, &self->a.local,
						(const uint8_t *)&self->resp,
						sizeof(self->resp)));
}

TEST_F(noise, wrong_sizes_are_refused)
{
	uint8_t big[PSD_HANDSHAKE_LEN + 1];

	memcpy(big, &self->init, PSD_HANDSHAKE_LEN);
	big[PSD_HANDSHAKE_LEN] = 0;
	EXPECT_EQ(-EBADMSG, psd_noise_consume_initiation(&self->hs_b,
			&self->b.local, lookup, &self->b, big,
			PSD_HANDSHAKE_LEN - 1, self->now));
	EXPECT_EQ(-EBADMSG, psd_noise_consume_initiation(&self->hs_b,
			&self->b.local, lookup, &self->b, big, sizeof(big),
			self->now));
	respond(_metadata, self);
	memcpy(big, &self->resp, PSD_HANDSHAKE_LEN);
	EXPECT_EQ(-EBADMSG, psd_noise_consume_response(&self->hs_a,
			&self->a.local, big, PSD_HANDSHAKE_LEN - 1));
	EXPECT_EQ(-EBADMSG, psd_noise_consume_response(&self->hs_a,
			&self->a.local, big, sizeof(big)));
}

TEST_F(noise, replayed_initiation_is_refused)
{
	struct psd_msg_initiation older, newer;
	struct psd_noise_handshake hs;

	ASSERT_EQ(0, psd_noise_create_initiation(&hs, &self->a.local,
						 &self->a.peers[0],
						 WALL0 - SEC, &older));
	ASSERT_EQ(0, psd_noise_create_initiation(&hs, &self->a.local,
						 &self->a.peers[0],
						 WALL0 + SEC, &newer));
	ASSERT_EQ(0, b_consumes(self, &self->init, self->now));
	EXPECT_EQ(-ESTALE, b_consumes(self, &self->init, self->now + SEC));
	EXPECT_EQ(-ESTALE, b_consumes(self, &older, self->now + SEC));
	EXPECT_EQ(0, b_consumes(self, &newer, self->now + SEC));
	EXPECT_EQ(-ESTALE, b_consumes(self, &newer, self->now + 2 * SEC));
	psd_noise_handshake_wipe(&hs);
}

/* Within the timestamp's 2^24 ns grain two initiations look the same. */
TEST_F(noise, timestamps_are_coarse)
{
	struct psd_msg_initiation same_grain;
	struct psd_noise_handshake hs;

	ASSERT_EQ(0, psd_noise_create_initiation(&hs, &self->a.local,
						 &self->a.peers[0],
						 WALL0 + 1000, &same_grain));
	ASSERT_EQ(0, b_consumes(self, &self->init, self->now));
	EXPECT_EQ(-ESTALE, b_consumes(self, &same_grain, self->now + SEC));
	psd_noise_handshake_wipe(&hs);
}

TEST_F(noise, initiation_flood_from_a_peer_is_refused)
{
	struct psd_msg_initiation next;
	struct psd_noise_handshake hs;
	uint64_t gap = SEC / PSD_NOISE_INITIATIONS_PER_SECOND;

	ASSERT_EQ(0, psd_noise_create_initiation(&hs, &self->a.local,
						 &self->a.peers[0],
						 WALL0 + SEC, &next));
	ASSERT_EQ(0, b_consumes(self, &self->init, self->now));
	EXPECT_EQ(-EBUSY, b_consumes(self, &next, self->now + gap - 1));
	EXPECT_EQ(0, b_consumes(self, &next, self->now + gap));
	psd_noise_handshake_wipe(&hs);
}

TEST_F(noise, initiation_for_another_responder_is_refused)
{
	struct psd_noise_handshake hs_c;

	/* C trusts A, but A's initiation was sealed to B's key. */
	EXPECT_EQ(-EBADMSG, psd_noise_consume_initiation(&hs_c,
			&self->c.local, lookup, &self->c,
			(const uint8_t *)&self->init, PSD_HANDSHAKE_LEN,
			self->now));
}

TEST_F(noise, untrusted_initiator_is_refused)
{
	struct psd_msg_initiation from_c;
	struct psd_noise_handshake hs_c;

	ASSERT_EQ(0, psd_noise_create_initiation(&hs_c, &self->c.local,
						 &self->c.peers[1], WALL0,
						 &from_c));
	EXPECT_EQ(-ENOKEY, b_consumes(self, &from_c, self->now));
	EXPECT_EQ(PSD_NOISE_ZEROED, self->hs_b.state);
	psd_noise_handshake_wipe(&hs_c);
}

/*
 * A (handshake to B) gets a response made by C to another initiation of
 * A's, addressed to the B handshake's connection id: refused.
 */
TEST_F(noise, response_from_the_wrong_responder_is_refused)
{
	struct psd_noise_handshake hs_ac, hs_c;
	struct psd_msg_initiation to_c;
	struct psd_msg_response from_c;

	ASSERT_EQ(0, psd_noise_create_initiation(&hs_ac, &self->a.local,
						 &self->a.peers[1], WALL0,
						 &to_c));
	ASSERT_EQ(0, psd_noise_consume_initiation(&hs_c, &self->c.local,
			lookup, &self->c, (const uint8_t *)&to_c,
			sizeof(to_c), self->now));
	ASSERT_EQ(0, psd_noise_create_response(&hs_c, &from_c));
	memcpy(from_c.receiver_cid, self->hs_a.local_cid, PSD_CID_LEN);
	EXPECT_EQ(-EBADMSG, psd_noise_consume_response(&self->hs_a,
			&self->a.local, (const uint8_t *)&from_c,
			sizeof(from_c)));
	/* Nor does B's response open A's handshake with C. */
	respond(_metadata, self);
	memcpy(self->resp.receiver_cid, hs_ac.local_cid, PSD_CID_LEN);
	EXPECT_EQ(-EBADMSG, psd_noise_consume_response(&hs_ac,
			&self->a.local, (const uint8_t *)&self->resp,
			sizeof(self->resp)));
	psd_noise_handshake_wipe(&hs_ac);
	psd_noise_handshake_wipe(&hs_c);
}

TEST_F(noise, states_are_enforced)
{
	struct psd_noise_keys k;
	uint8_t cid[PSD_CID_LEN];

	EXPECT_EQ(-EINVAL, psd_noise_derive_keys(&self->hs_a, &k));
	EXPECT_EQ(-EINVAL, psd_noise_create_response(&self->hs_a,
						     &self->resp));
	respond(_metadata, self);
	EXPECT_EQ(-EINVAL, psd_noise_consume_response(&self->hs_b,
			&self->b.local, (const uint8_t *)&self->resp,
			sizeof(self->resp)));
	EXPECT_EQ(0, psd_noise_response_receiver((const uint8_t *)&self->resp,
						 sizeof(self->resp), cid));
	EXPECT_EQ(0, memcmp(cid, self->hs_a.local_cid, PSD_CID_LEN));
	EXPECT_EQ(-EBADMSG, psd_noise_response_receiver(
			(const uint8_t *)&self->init, sizeof(self->init), cid));
	ASSERT_EQ(0, psd_noise_consume_response(&self->hs_a, &self->a.local,
						(const uint8_t *)&self->resp,
						sizeof(self->resp)));
	/* The same response again: the handshake is past that point. */
	EXPECT_EQ(-EINVAL, psd_noise_consume_response(&self->hs_a,
			&self->a.local, (const uint8_t *)&self->resp,
			sizeof(self->resp)));
}

TEST_F(noise, ephemeral_secrets_are_dropped_when_done)
{
	EXPECT_FALSE(sodium_is_zero(self->hs_a.ephemeral_priv,
				    PSD_NOISE_KEY_LEN));
	respond(_metadata, self);
	EXPECT_TRUE(sodium_is_zero(self->hs_b.remote_ephemeral,
				   PSD_NOISE_KEY_LEN));
	EXPECT_TRUE(sodium_is_zero(self->hs_b.ephemeral_priv,
				   PSD_NOISE_KEY_LEN));
	ASSERT_EQ(0, psd_noise_consume_response(&self->hs_a, &self->a.local,
						(const uint8_t *)&self->resp,
						sizeof(self->resp)));
	EXPECT_TRUE(sodium_is_zero(self->hs_a.ephemeral_priv,
				   PSD_NOISE_KEY_LEN));
}

/*
 * The initiator's side recomputed from docs/protocol.md with libsodium
 * calls only (its ephemeral key taken from the handshake state): the same
 * initiation ciphertexts, and the same transport keys from the response.
 */
struct ref {
	uint8_t h[32], ck[32], k[32];
};

static void ref_hash(uint8_t h[32], const void *x, size_t len)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, h, 32);
	crypto_generichash_update(&st, x, len);
	crypto_generichash_final(&st, h, 32);
}

/* (ck, k) = KDF2(ck, ikm), as documented. */
static void ref_kdf2(uint8_t ck[32], uint8_t k[32], const uint8_t *ikm,
		     size_t len)
{
	uint8_t prk[32], in[33];

	crypto_generichash(prk, 32, ikm, len, ck, 32);
	in[0] = 1;
	crypto_generichash(ck, 32, in, 1, prk, 32);
	memcpy(in, ck, 32);
	in[32] = 2;
	crypto_generichash(k, 32, in, 33, prk, 32);
}

static void ref_dh(struct ref *r, const uint8_t *priv, const uint8_t *pub)
{
	uint8_t dh[32];

	if (crypto_scalarmult(dh, priv, pub))
		abort();
	ref_kdf2(r->ck, r->k, dh, 32);
}

/* AEAD(k, pt, h) with nonce 0, then h = HASH(h || ct). */
static void ref_seal(struct ref *r, uint8_t *ct, const uint8_t *pt,
		     size_t len)
{
	uint8_t nonce[12] = { 0 };

	crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, pt, len, r->h, 32,
						  NULL, nonce, r->k);
	ref_hash(r->h, ct, len + 16);
}

TEST_F(noise, derivation_is_the_documented_one)
{
	const char *name = "peersnap Noise_IK_25519_ChaChaPoly_BLAKE2b-256-keyed";
	uint8_t e_priv[32], ct[64], payload[13], alg, t_i2r[32], t_r2i[32];
	const struct psd_msg_initiation *m = &self->init;
	struct psd_noise_keys ka;
	struct ref r;

	memcpy(e_priv, self->hs_a.ephemeral_priv, 32);
	crypto_generichash(r.ck, 32, (const uint8_t *)name, strlen(name), NULL,
			   0);
	memcpy(r.h, r.ck, 32);
	ref_hash(r.h, "peersnap transport v1", 21);
	ref_hash(r.h, self->a.peers[0].static_pub, 32);
	ref_hash(r.h, m, 12);
	ref_hash(r.h, m->ephemeral, 32);
	ref_dh(&r, e_priv, self->a.peers[0].static_pub);
	ref_seal(&r, ct, self->a.local.static_pub, 32);
	EXPECT_EQ(0, memcmp(ct, m->enc_static, sizeof(m->enc_static)));
	ref_dh(&r, self->a.local.static_priv, self->a.peers[0].static_pub);
	/* The payload: A's TAI64N of WALL0 and its offer. */
	memcpy(payload, "\x40\x00\x00\x00", 4);
	for (int i = 0; i < 4; i++)
		payload[4 + i] = (uint8_t)((0x0a + WALL0 / SEC) >> (24 - 8 * i));
	memset(payload + 8, 0, 4);		/* WALL0 has no fraction */
	payload[12] = psd_aead_available(PSD_AEAD_AES256_GCM) ? 3 : 1;
	ref_seal(&r, ct, payload, sizeof(payload));
	EXPECT_EQ(0, memcmp(ct, m->enc_payload, sizeof(m->enc_payload)));

	/* The response, received. */
	respond(_metadata, self);
	ref_hash(r.h, &self->resp, 20);
	ref_hash(r.h, self->resp.ephemeral, 32);
	ref_dh(&r, e_priv, self->resp.ephemeral);
	ref_dh(&r, self->a.local.static_priv, self->resp.ephemeral);
	ASSERT_EQ(0, crypto_aead_chacha20poly1305_ietf_decrypt(&alg, NULL,
			NULL, self->resp.enc_payload,
			sizeof(self->resp.enc_payload), r.h, 32,
			(const uint8_t[12]){ 0 }, r.k));
	EXPECT_EQ(psd_aead_preferred(), alg);
	ref_kdf2(r.ck, t_r2i, NULL, 0);
	memcpy(t_i2r, r.ck, 32);

	ASSERT_EQ(0, psd_noise_consume_response(&self->hs_a, &self->a.local,
						(const uint8_t *)&self->resp,
						sizeof(self->resp)));
	ASSERT_EQ(0, psd_noise_derive_keys(&self->hs_a, &ka));
	EXPECT_EQ(0, memcmp(t_i2r, ka.send.key, 32));
	EXPECT_EQ(0, memcmp(t_r2i, ka.recv.key, 32));
	psd_noise_keys_wipe(&ka);
}

TEST(static_keys_from_identities)
{
	uint8_t small_order[PSD_PUBKEY_LEN] = { 1 };	/* the identity point */
	struct psd_noise_local local;
	struct psd_noise_peer peer;
	struct psd_identity id;
	uint8_t pub[PSD_NOISE_KEY_LEN], seed[PSD_SEED_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	memset(seed, 7, sizeof(seed));
	psd_identity_from_seed(seed, &id);
	ASSERT_EQ(0, psd_noise_local_init(&local, &id));
	ASSERT_EQ(0, crypto_scalarmult_base(pub, local.static_priv));
	EXPECT_EQ(0, memcmp(pub, local.static_pub, sizeof(pub)));
	memset(&peer, 0x11, sizeof(peer));
	EXPECT_EQ(-EINVAL, psd_noise_peer_init(&peer, &local, small_order));
	EXPECT_EQ(0x11, peer.identity[0]);	/* untouched on failure */
	psd_noise_local_wipe(&local);
	EXPECT_TRUE(sodium_is_zero(local.static_priv, PSD_NOISE_KEY_LEN));
	psd_identity_wipe(&id);
}

TEST_HARNESS_MAIN
