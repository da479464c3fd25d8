// SPDX-License-Identifier: GPL-2.0
/*
 * Noise IK (noise.h), message by message as in docs/protocol.md:
 *
 *   ck = h = HASH(PROTOCOL_NAME); h = HASH(h || PROLOGUE); h = HASH(h || S_r)
 *   initiation  -> header, e, es, s, ss, {timestamp || offer}
 *   response    <- header, e, ee, se, {algorithm}
 *   (header: the cleartext type, reserved bytes and connection ids, mixed
 *   into h like a payload sent in the clear)
 *   (send_i, send_r) = KDF2(ck, "")
 *
 * Each function works on a scratch copy of the handshake's hash and
 * chaining key and commits them only once the message is complete and
 * authentic, so a bad message leaves the handshake as it was. All
 * scratch state is wiped on the single exit of each function.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "kdf.h"
#include "noise.h"

static const char PROTOCOL_NAME[] =
	"peersnap Noise_IK_25519_ChaChaPoly_BLAKE2b-256-keyed";
static const char PROLOGUE[] = "peersnap transport v1";

/* TAI64N granularity: 2^24 ns (~17 ms) hides the clock's fine bits, and
 * stays below the 20 ms between two initiations a peer may send. */
#define TIMESTAMP_GRAIN_NS	(1ull << 24)
#define TAI64_EPOCH		0x400000000000000aull
#define NS_PER_S		1000000000ull
#define OFFER_BIT(alg)		((uint8_t)(1u << ((alg) - 1)))
/*
 * The cleartext header (type, reserved, connection ids) is mixed into the
 * hash before the ephemeral key, so the handshake authenticates it too.
 */
#define INITIATION_HEADER_LEN	offsetof(struct psd_msg_initiation, ephemeral)
#define RESPONSE_HEADER_LEN	offsetof(struct psd_msg_response, ephemeral)

_Static_assert(sizeof(struct psd_msg_initiation) == PSD_HANDSHAKE_LEN,
	       "the initiation is one padded datagram");
_Static_assert(sizeof(struct psd_msg_response) == PSD_HANDSHAKE_LEN,
	       "the response is one padded datagram");
_Static_assert(crypto_scalarmult_BYTES == PSD_NOISE_KEY_LEN &&
	       crypto_scalarmult_SCALARBYTES == PSD_NOISE_KEY_LEN &&
	       PSD_KDF_LEN == PSD_NOISE_KEY_LEN, "one key size");

/* The temporaries of one message, wiped as one. */
struct scratch {
	uint8_t hash[PSD_NOISE_KEY_LEN];
	uint8_t chaining_key[PSD_NOISE_KEY_LEN];
	uint8_t key[PSD_NOISE_KEY_LEN];
	uint8_t dh[PSD_NOISE_KEY_LEN];
	uint8_t ephemeral_priv[PSD_NOISE_KEY_LEN];
	uint8_t static_pub[PSD_NOISE_KEY_LEN];
	uint8_t payload[PSD_TAI64N_LEN + 1];
	struct psd_aead_key aead;
};

static void mix_hash(uint8_t hash[PSD_NOISE_KEY_LEN], const void *in,
		     size_t len)
{
	psd_kdf_hash2(hash, hash, PSD_NOISE_KEY_LEN, in, len);
}

/* ck, h before any message, for a handshake to responder_static. */
static void symmetric_init(struct scratch *s,
			   const uint8_t responder_static[PSD_NOISE_KEY_LEN])
{
	psd_kdf_hash2(s->chaining_key, PROTOCOL_NAME, strlen(PROTOCOL_NAME),
		      NULL, 0);
	memcpy(s->hash, s->chaining_key, PSD_NOISE_KEY_LEN);
	mix_hash(s->hash, PROLOGUE, strlen(PROLOGUE));
	mix_hash(s->hash, responder_static, PSD_NOISE_KEY_LEN);
}

/* (ck, key) = KDF2(ck, DH(priv, pub)); -EBADMSG on a low-order point. */
static int mix_dh(struct scratch *s, const uint8_t priv[PSD_NOISE_KEY_LEN],
		  const uint8_t pub[PSD_NOISE_KEY_LEN])
{
	if (crypto_scalarmult(s->dh, priv, pub))
		return -EBADMSG;
	psd_kdf(s->chaining_key, s->key, NULL, s->chaining_key, s->dh,
		PSD_NOISE_KEY_LEN);
	return 0;
}

/* Noise's EncryptAndHash with the one-use key s->key (nonce 0). */
static void encrypt_and_hash(struct scratch *s, uint8_t *out,
			     const void *pt, size_t len)
{
	psd_aead_key_init(&s->aead, PSD_AEAD_CHACHA20_POLY1305, s->key);
	psd_aead_seal(&s->aead, 0, s->hash, PSD_NOISE_KEY_LEN, pt, len, out);
	mix_hash(s->hash, out, len + PSD_AEAD_TAG_LEN);
}

/* DecryptAndHash: ct_len bytes at ct into out; -EBADMSG if not authentic. */
static int decrypt_and_hash(struct scratch *s, uint8_t *out,
			    const uint8_t *ct, size_t ct_len)
{
	psd_aead_key_init(&s->aead, PSD_AEAD_CHACHA20_POLY1305, s->key);
	if (psd_aead_open(&s->aead, 0, s->hash, PSD_NOISE_KEY_LEN, ct, ct_len,
			  out))
		return -EBADMSG;
	mix_hash(s->hash, ct, ct_len);
	return 0;
}

/* A fresh ephemeral key pair; its public half goes to pub. */
static void new_ephemeral(uint8_t priv[PSD_NOISE_KEY_LEN],
			  uint8_t pub[PSD_NOISE_KEY_LEN])
{
	randombytes_buf(priv, PSD_NOISE_KEY_LEN);
	crypto_scalarmult_base(pub, priv);
}

static void tai64n(uint64_t wall_ns, uint8_t out[PSD_TAI64N_LEN])
{
	uint64_t secs = TAI64_EPOCH + wall_ns / NS_PER_S;
	uint64_t nsec = wall_ns % NS_PER_S & ~(TIMESTAMP_GRAIN_NS - 1);

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(secs >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

static uint8_t local_offer(void)
{
	uint8_t offer = OFFER_BIT(PSD_AEAD_CHACHA20_POLY1305);

	if (psd_aead_available(PSD_AEAD_AES256_GCM))
		offer |= OFFER_BIT(PSD_AEAD_AES256_GCM);
	return offer;
}

int psd_noise_local_init(struct psd_noise_local *ret,
			 const struct psd_identity *id)
{
	struct psd_noise_local l;
	int rc = -EINVAL;

	if (crypto_sign_ed25519_pk_to_curve25519(l.static_pub, id->pk) ||
	    crypto_sign_ed25519_sk_to_curve25519(l.static_priv, id->sk))
		goto out;
	*ret = l;
	rc = 0;
out:
	sodium_memzero(&l, sizeof(l));
	return rc;
}

void psd_noise_local_wipe(struct psd_noise_local *local)
{
	if (local)
		sodium_memzero(local, sizeof(*local));
}

int psd_noise_peer_init(struct psd_noise_peer *ret,
			const struct psd_noise_local *local,
			const uint8_t identity[PSD_PUBKEY_LEN])
{
	struct psd_noise_peer p;
	int rc = -EINVAL;

	memset(&p, 0, sizeof(p));
	memcpy(p.identity, identity, PSD_PUBKEY_LEN);
	if (crypto_sign_ed25519_pk_to_curve25519(p.static_pub, identity) ||
	    crypto_scalarmult(p.static_static, local->static_priv,
			      p.static_pub))
		goto out;
	*ret = p;
	rc = 0;
out:
	sodium_memzero(&p, sizeof(p));
	return rc;
}

void psd_noise_peer_wipe(struct psd_noise_peer *peer)
{
	if (peer)
		sodium_memzero(peer, sizeof(*peer));
}

void psd_noise_handshake_wipe(struct psd_noise_handshake *hs)
{
	if (hs)
		sodium_memzero(hs, sizeof(*hs));
}

void psd_noise_keys_wipe(struct psd_noise_keys *keys)
{
	if (keys)
		sodium_memzero(keys, sizeof(*keys));
}

/* -> e, es, s, ss, {payload}: the initiation's cryptographic body. */
static int seal_initiation(struct scratch *s,
			   const struct psd_noise_local *local,
			   const struct psd_noise_peer *peer,
			   struct psd_msg_initiation *out)
{
	int rc;

	symmetric_init(s, peer->static_pub);
	mix_hash(s->hash, out, INITIATION_HEADER_LEN);
	new_ephemeral(s->ephemeral_priv, out->ephemeral);
	mix_hash(s->hash, out->ephemeral, PSD_NOISE_KEY_LEN);
	rc = mix_dh(s, s->ephemeral_priv, peer->static_pub);
	if (rc)
		return -EINVAL;
	encrypt_and_hash(s, out->enc_static, local->static_pub,
			 PSD_NOISE_KEY_LEN);
	psd_kdf(s->chaining_key, s->key, NULL, s->chaining_key,
		peer->static_static, PSD_NOISE_KEY_LEN);
	encrypt_and_hash(s, out->enc_payload, s->payload, sizeof(s->payload));
	return 0;
}

int psd_noise_create_initiation(struct psd_noise_handshake *hs,
				const struct psd_noise_local *local,
				struct psd_noise_peer *peer, uint64_t wall_ns,
				struct psd_msg_initiation *out)
{
	struct scratch s;
	int rc;

	memset(out, 0, sizeof(*out));
	out->type = PSD_MSG_INITIATION;
	randombytes_buf(out->sender_cid, PSD_CID_LEN);
	tai64n(wall_ns, s.payload);
	s.payload[PSD_TAI64N_LEN] = local_offer();
	rc = seal_initiation(&s, local, peer, out);
	if (rc) {
		memset(out, 0, sizeof(*out));
		goto out;
	}
	psd_noise_handshake_wipe(hs);
	hs->state = PSD_NOISE_CREATED_INITIATION;
	hs->peer = peer;
	memcpy(hs->hash, s.hash, PSD_NOISE_KEY_LEN);
	memcpy(hs->chaining_key, s.chaining_key, PSD_NOISE_KEY_LEN);
	memcpy(hs->ephemeral_priv, s.ephemeral_priv, PSD_NOISE_KEY_LEN);
	memcpy(hs->local_cid, out->sender_cid, PSD_CID_LEN);
	hs->aead_offer = s.payload[PSD_TAI64N_LEN];
out:
	sodium_memzero(&s, sizeof(s));
	return rc;
}

/* Type, size, reserved and padding of a handshake message. */
static bool well_formed(const uint8_t *msg, size_t len, uint8_t type,
			const uint8_t *padding, size_t padding_len)
{
	return len == PSD_HANDSHAKE_LEN && msg[0] == type &&
	       sodium_is_zero(msg + 1, 3) &&
	       sodium_is_zero(padding, padding_len);
}

/* <- e, es, s, ss, {payload}: finds the peer; -EBADMSG or -ENOKEY. */
static int open_initiation(struct scratch *s,
			   const struct psd_noise_local *local,
			   psd_noise_lookup_fn *lookup, void *ctx,
			   const struct psd_msg_initiation *m,
			   struct psd_noise_peer **ret_peer)
{
	struct psd_noise_peer *peer;

	symmetric_init(s, local->static_pub);
	mix_hash(s->hash, m, INITIATION_HEADER_LEN);
	mix_hash(s->hash, m->ephemeral, PSD_NOISE_KEY_LEN);
	if (mix_dh(s, local->static_priv, m->ephemeral) ||
	    decrypt_and_hash(s, s->static_pub, m->enc_static,
			     sizeof(m->enc_static)))
		return -EBADMSG;
	peer = lookup(ctx, s->static_pub);
	if (!peer)
		return -ENOKEY;
	psd_kdf(s->chaining_key, s->key, NULL, s->chaining_key,
		peer->static_static, PSD_NOISE_KEY_LEN);
	if (decrypt_and_hash(s, s->payload, m->enc_payload,
			     sizeof(m->enc_payload)))
		return -EBADMSG;
	*ret_peer = peer;
	return 0;
}

/* The algorithm for an offer: the preferred one both sides have. */
static int choose_alg(uint8_t offer, enum psd_aead_alg *ret)
{
	if ((offer & OFFER_BIT(PSD_AEAD_AES256_GCM)) &&
	    psd_aead_available(PSD_AEAD_AES256_GCM))
		*ret = PSD_AEAD_AES256_GCM;
	else if (offer & OFFER_BIT(PSD_AEAD_CHACHA20_POLY1305))
		*ret = PSD_AEAD_CHACHA20_POLY1305;
	else
		return -EBADMSG;
	return 0;
}

/* Replay and flood checks of an authentic initiation from peer. */
static int initiation_is_fresh(const struct psd_noise_peer *peer,
			       const uint8_t timestamp[PSD_TAI64N_LEN],
			       uint64_t now_ns)
{
	if (memcmp(timestamp, peer->latest_timestamp, PSD_TAI64N_LEN) <= 0)
		return -ESTALE;
	if (peer->any_initiation &&
	    now_ns - peer->last_initiation_ns <
	    NS_PER_S / PSD_NOISE_INITIATIONS_PER_SECOND)
		return -EBUSY;
	return 0;
}

int psd_noise_consume_initiation(struct psd_noise_handshake *hs,
				 const struct psd_noise_local *local,
				 psd_noise_lookup_fn *lookup, void *ctx,
				 const uint8_t *msg, size_t len,
				 uint64_t now_ns)
{
	struct psd_msg_initiation m;
	struct psd_noise_peer *peer = NULL;
	enum psd_aead_alg alg;
	struct scratch s;
	int rc = -EBADMSG;

	if (len != sizeof(m))
		return -EBADMSG;
	memcpy(&m, msg, sizeof(m));
	if (!well_formed(msg, len, PSD_MSG_INITIATION, m.padding,
			 sizeof(m.padding)))
		goto out;
	rc = open_initiation(&s, local, lookup, ctx, &m, &peer);
	if (rc)
		goto out;
	rc = choose_alg(s.payload[PSD_TAI64N_LEN], &alg);
	if (rc)
		goto out;
	rc = initiation_is_fresh(peer, s.payload, now_ns);
	if (rc)
		goto out;
	memcpy(peer->latest_timestamp, s.payload, PSD_TAI64N_LEN);
	peer->last_initiation_ns = now_ns;
	peer->any_initiation = true;

	psd_noise_handshake_wipe(hs);
	hs->state = PSD_NOISE_CONSUMED_INITIATION;
	hs->peer = peer;
	memcpy(hs->hash, s.hash, PSD_NOISE_KEY_LEN);
	memcpy(hs->chaining_key, s.chaining_key, PSD_NOISE_KEY_LEN);
	memcpy(hs->remote_ephemeral, m.ephemeral, PSD_NOISE_KEY_LEN);
	memcpy(hs->remote_cid, m.sender_cid, PSD_CID_LEN);
	hs->aead_offer = s.payload[PSD_TAI64N_LEN];
	hs->alg = alg;
out:
	sodium_memzero(&s, sizeof(s));
	sodium_memzero(&m, sizeof(m));
	return rc;
}

int psd_noise_create_response(struct psd_noise_handshake *hs,
			      struct psd_msg_response *out)
{
	struct scratch s;
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (hs->state != PSD_NOISE_CONSUMED_INITIATION)
		return -EINVAL;
	out->type = PSD_MSG_RESPONSE;
	randombytes_buf(out->sender_cid, PSD_CID_LEN);
	memcpy(out->receiver_cid, hs->remote_cid, PSD_CID_LEN);
	memcpy(s.hash, hs->hash, PSD_NOISE_KEY_LEN);
	memcpy(s.chaining_key, hs->chaining_key, PSD_NOISE_KEY_LEN);

	mix_hash(s.hash, out, RESPONSE_HEADER_LEN);
	new_ephemeral(s.ephemeral_priv, out->ephemeral);
	mix_hash(s.hash, out->ephemeral, PSD_NOISE_KEY_LEN);
	/* ee, then se (our ephemeral with the initiator's static). */
	if (mix_dh(&s, s.ephemeral_priv, hs->remote_ephemeral) ||
	    mix_dh(&s, s.ephemeral_priv, hs->peer->static_pub)) {
		memset(out, 0, sizeof(*out));
		goto out;
	}
	s.payload[0] = (uint8_t)hs->alg;
	encrypt_and_hash(&s, out->enc_payload, s.payload, 1);

	hs->state = PSD_NOISE_CREATED_RESPONSE;
	memcpy(hs->hash, s.hash, PSD_NOISE_KEY_LEN);
	memcpy(hs->chaining_key, s.chaining_key, PSD_NOISE_KEY_LEN);
	memcpy(hs->local_cid, out->sender_cid, PSD_CID_LEN);
	sodium_memzero(hs->remote_ephemeral, PSD_NOISE_KEY_LEN);
	rc = 0;
out:
	sodium_memzero(&s, sizeof(s));
	return rc;
}

int psd_noise_response_receiver(const uint8_t *msg, size_t len,
				uint8_t ret[PSD_CID_LEN])
{
	if (len != sizeof(struct psd_msg_response) ||
	    msg[0] != PSD_MSG_RESPONSE)
		return -EBADMSG;
	memcpy(ret, msg + offsetof(struct psd_msg_response, receiver_cid),
	       PSD_CID_LEN);
	return 0;
}

/* <- e, ee, se, {alg}: the algorithm must be one hs offered. */
static int open_response(struct scratch *s,
			 const struct psd_noise_local *local,
			 const struct psd_noise_handshake *hs,
			 const struct psd_msg_response *m)
{
	uint8_t alg;

	memcpy(s->hash, hs->hash, PSD_NOISE_KEY_LEN);
	memcpy(s->chaining_key, hs->chaining_key, PSD_NOISE_KEY_LEN);
	mix_hash(s->hash, m, RESPONSE_HEADER_LEN);
	mix_hash(s->hash, m->ephemeral, PSD_NOISE_KEY_LEN);
	if (mix_dh(s, hs->ephemeral_priv, m->ephemeral) ||
	    mix_dh(s, local->static_priv, m->ephemeral) ||
	    decrypt_and_hash(s, s->payload, m->enc_payload,
			     sizeof(m->enc_payload)))
		return -EBADMSG;
	alg = s->payload[0];
	if (alg < PSD_AEAD_CHACHA20_POLY1305 || alg > PSD_AEAD_AES256_GCM ||
	    !(hs->aead_offer & OFFER_BIT(alg)))
		return -EBADMSG;
	return 0;
}

int psd_noise_consume_response(struct psd_noise_handshake *hs,
			       const struct psd_noise_local *local,
			       const uint8_t *msg, size_t len)
{
	struct psd_msg_response m;
	struct scratch s;
	int rc = -EBADMSG;

	if (hs->state != PSD_NOISE_CREATED_INITIATION)
		return -EINVAL;
	if (len != sizeof(m))
		return -EBADMSG;
	memcpy(&m, msg, sizeof(m));
	if (!well_formed(msg, len, PSD_MSG_RESPONSE, m.padding,
			 sizeof(m.padding)) ||
	    sodium_memcmp(m.receiver_cid, hs->local_cid, PSD_CID_LEN))
		goto out;
	rc = open_response(&s, local, hs, &m);
	if (rc)
		goto out;
	hs->state = PSD_NOISE_CONSUMED_RESPONSE;
	hs->alg = (enum psd_aead_alg)s.payload[0];
	memcpy(hs->hash, s.hash, PSD_NOISE_KEY_LEN);
	memcpy(hs->chaining_key, s.chaining_key, PSD_NOISE_KEY_LEN);
	memcpy(hs->remote_cid, m.sender_cid, PSD_CID_LEN);
	sodium_memzero(hs->ephemeral_priv, PSD_NOISE_KEY_LEN);
out:
	sodium_memzero(&s, sizeof(s));
	sodium_memzero(&m, sizeof(m));
	return rc;
}

int psd_noise_derive_keys(struct psd_noise_handshake *hs,
			  struct psd_noise_keys *ret)
{
	uint8_t i_to_r[PSD_NOISE_KEY_LEN], r_to_i[PSD_NOISE_KEY_LEN];
	bool initiator = hs->state == PSD_NOISE_CONSUMED_RESPONSE;

	if (!initiator && hs->state != PSD_NOISE_CREATED_RESPONSE)
		return -EINVAL;
	psd_kdf(i_to_r, r_to_i, NULL, hs->chaining_key, NULL, 0);
	psd_noise_keys_wipe(ret);
	ret->initiator = initiator;
	/* alg was checked to be available when it was chosen or accepted. */
	psd_aead_key_init(&ret->send, hs->alg, initiator ? i_to_r : r_to_i);
	psd_aead_key_init(&ret->recv, hs->alg, initiator ? r_to_i : i_to_r);
	memcpy(ret->local_cid, hs->local_cid, PSD_CID_LEN);
	memcpy(ret->remote_cid, hs->remote_cid, PSD_CID_LEN);
	sodium_memzero(i_to_r, sizeof(i_to_r));
	sodium_memzero(r_to_i, sizeof(r_to_i));
	psd_noise_handshake_wipe(hs);
	return 0;
}
