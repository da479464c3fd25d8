// SPDX-License-Identifier: GPL-2.0
/*
 * mac1 / mac2 / cookie replies (cookie.h, docs/protocol.md "Cookies").
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <sodium.h>

#include "cookie.h"
#include "kdf.h"

static const char MAC1_LABEL[8] = "mac1----";
static const char COOKIE_LABEL[8] = "cookie--";

/* mac1 and mac2 close every handshake message. */
#define MACS_LEN	(2 * PSD_MAC_LEN)
#define REPLY_HEADER_LEN	offsetof(struct psd_msg_cookie_reply, nonce)

_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES ==
	       PSD_COOKIE_NONCE_LEN, "XChaCha20 takes a 24-byte nonce");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES ==
	       PSD_NOISE_KEY_LEN, "XChaCha20 takes a 32-byte key");
_Static_assert(PSD_COOKIE_LEN >= crypto_generichash_KEYBYTES_MIN,
	       "a cookie is a valid BLAKE2b key");
_Static_assert(sizeof(struct psd_msg_cookie_reply) == 68,
	       "docs/protocol.md: 68 bytes");
/* Both handshake messages carry the sender cid at the same offset. */
_Static_assert(offsetof(struct psd_msg_initiation, sender_cid) ==
	       offsetof(struct psd_msg_response, sender_cid), "sender cid");

void psd_cookie_checker_init(struct psd_cookie_checker *ret,
			     const uint8_t own_static_pub[PSD_NOISE_KEY_LEN])
{
	memset(ret, 0, sizeof(*ret));
	psd_kdf_hash2(ret->mac1_key, MAC1_LABEL, sizeof(MAC1_LABEL),
		      own_static_pub, PSD_NOISE_KEY_LEN);
	psd_kdf_hash2(ret->cookie_key, COOKIE_LABEL, sizeof(COOKIE_LABEL),
		      own_static_pub, PSD_NOISE_KEY_LEN);
}

void psd_cookie_maker_init(struct psd_cookie_maker *ret,
			   const uint8_t peer_static_pub[PSD_NOISE_KEY_LEN])
{
	memset(ret, 0, sizeof(*ret));
	psd_kdf_hash2(ret->mac1_key, MAC1_LABEL, sizeof(MAC1_LABEL),
		      peer_static_pub, PSD_NOISE_KEY_LEN);
	psd_kdf_hash2(ret->cookie_key, COOKIE_LABEL, sizeof(COOKIE_LABEL),
		      peer_static_pub, PSD_NOISE_KEY_LEN);
}

/* mac2 = BLAKE2b(out=16, key=cookie, msg[0 : len - 16]). */
static void mac2_of(uint8_t out[PSD_MAC_LEN],
		    const uint8_t cookie[PSD_COOKIE_LEN],
		    const uint8_t *msg, size_t len)
{
	crypto_generichash(out, PSD_MAC_LEN, msg, len - PSD_MAC_LEN, cookie,
			   PSD_COOKIE_LEN);
}

void psd_cookie_add_macs(struct psd_cookie_maker *m, uint8_t *msg, size_t len,
			 uint64_t now_ns)
{
	uint8_t *mac1 = msg + len - MACS_LEN, *mac2 = mac1 + PSD_MAC_LEN;

	psd_kdf_mac16(mac1, m->mac1_key, msg, len - MACS_LEN);
	memcpy(m->last_mac1, mac1, PSD_MAC_LEN);
	m->have_sent_mac1 = true;
	if (m->have_cookie && now_ns - m->cookie_birth_ns <
	    PSD_COOKIE_SECRET_MAX_AGE_NS - PSD_COOKIE_LATENCY_NS)
		mac2_of(mac2, m->cookie, msg, len);
	else
		memset(mac2, 0, PSD_MAC_LEN);
}

/* The cookie of a source address under the current secret. */
static void make_cookie(struct psd_cookie_checker *c,
			uint8_t out[PSD_COOKIE_LEN],
			const uint8_t *src, size_t src_len, uint64_t now_ns)
{
	if (!c->have_secret ||
	    now_ns - c->secret_birth_ns >= PSD_COOKIE_SECRET_MAX_AGE_NS) {
		randombytes_buf(c->secret, sizeof(c->secret));
		c->secret_birth_ns = now_ns;
		c->have_secret = true;
	}
	psd_kdf_mac16(out, c->secret, src, src_len);
}

enum psd_mac_verdict psd_cookie_validate(struct psd_cookie_checker *c,
					 const uint8_t *msg, size_t len,
					 const uint8_t *src, size_t src_len,
					 uint64_t now_ns)
{
	uint8_t want[PSD_MAC_LEN], cookie[PSD_COOKIE_LEN];
	enum psd_mac_verdict v = PSD_MAC_INVALID;

	if (len < 2 * MACS_LEN)
		return PSD_MAC_INVALID;
	psd_kdf_mac16(want, c->mac1_key, msg, len - MACS_LEN);
	if (sodium_memcmp(want, msg + len - MACS_LEN, PSD_MAC_LEN))
		goto out;
	v = PSD_MAC_VALID_NO_COOKIE;
	make_cookie(c, cookie, src, src_len, now_ns);
	mac2_of(want, cookie, msg, len);
	if (!sodium_memcmp(want, msg + len - PSD_MAC_LEN, PSD_MAC_LEN))
		v = PSD_MAC_VALID_WITH_COOKIE;
out:
	sodium_memzero(cookie, sizeof(cookie));
	return v;
}

enum psd_admit psd_cookie_admit(struct psd_cookie_checker *c,
				struct psd_ratelimiter *rl,
				const uint8_t *msg, size_t len,
				const struct sockaddr *src, bool under_load,
				uint64_t now_ns)
{
	uint8_t source[PSD_SOURCE_MAX], key[PSD_RATELIMIT_KEY_MAX];
	enum psd_mac_verdict v;
	int key_len;

	if (psd_cookie_source(src, source))
		return PSD_ADMIT_DROP;
	v = psd_cookie_validate(c, msg, len, source, sizeof(source), now_ns);
	if (v == PSD_MAC_INVALID)
		return PSD_ADMIT_DROP;
	if (!under_load)
		return PSD_ADMIT_PROCESS;
	if (v != PSD_MAC_VALID_WITH_COOKIE)
		return PSD_ADMIT_SEND_COOKIE;
	key_len = psd_ratelimit_key(src, key);
	if (key_len < 0 ||
	    !psd_ratelimit_allow(rl, key, (size_t)key_len, now_ns))
		return PSD_ADMIT_DROP;
	return PSD_ADMIT_PROCESS;
}

/*
 * The associated data of a cookie reply: the mac1 it answers, then the
 * reply's own cleartext header (type, reserved, receiver cid).
 */
static void reply_ad(uint8_t ad[PSD_MAC_LEN + REPLY_HEADER_LEN],
		     const uint8_t mac1[PSD_MAC_LEN],
		     const struct psd_msg_cookie_reply *r)
{
	memcpy(ad, mac1, PSD_MAC_LEN);
	memcpy(ad + PSD_MAC_LEN, r, REPLY_HEADER_LEN);
}

int psd_cookie_reply_create(struct psd_cookie_checker *c,
			    struct psd_msg_cookie_reply *out,
			    const uint8_t *msg, size_t len,
			    const struct sockaddr *src, uint64_t now_ns)
{
	uint8_t cookie[PSD_COOKIE_LEN], source[PSD_SOURCE_MAX];
	uint8_t ad[PSD_MAC_LEN + REPLY_HEADER_LEN];

	if (len != PSD_HANDSHAKE_LEN ||
	    (msg[0] != PSD_MSG_INITIATION && msg[0] != PSD_MSG_RESPONSE))
		return -EBADMSG;
	if (psd_cookie_source(src, source))
		return -EAFNOSUPPORT;
	memset(out, 0, sizeof(*out));
	out->type = PSD_MSG_COOKIE_REPLY;
	memcpy(out->receiver_cid,
	       msg + offsetof(struct psd_msg_initiation, sender_cid),
	       PSD_CID_LEN);
	randombytes_buf(out->nonce, sizeof(out->nonce));
	make_cookie(c, cookie, source, sizeof(source), now_ns);
	reply_ad(ad, msg + len - MACS_LEN, out);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out->enc_cookie, NULL,
						   cookie, sizeof(cookie),
						   ad, sizeof(ad), NULL,
						   out->nonce, c->cookie_key);
	sodium_memzero(cookie, sizeof(cookie));
	return 0;
}

int psd_cookie_reply_receiver(const uint8_t *msg, size_t len,
			      uint8_t ret[PSD_CID_LEN])
{
	if (len != sizeof(struct psd_msg_cookie_reply) ||
	    msg[0] != PSD_MSG_COOKIE_REPLY)
		return -EBADMSG;
	memcpy(ret, msg + offsetof(struct psd_msg_cookie_reply, receiver_cid),
	       PSD_CID_LEN);
	return 0;
}

int psd_cookie_reply_consume(struct psd_cookie_maker *m, const uint8_t *msg,
			     size_t len, uint64_t now_ns)
{
	struct psd_msg_cookie_reply r;
	uint8_t cookie[PSD_COOKIE_LEN], ad[PSD_MAC_LEN + REPLY_HEADER_LEN];
	int rc = -EBADMSG;

	if (len != sizeof(r) || !m->have_sent_mac1)
		return -EBADMSG;
	memcpy(&r, msg, sizeof(r));
	if (r.type != PSD_MSG_COOKIE_REPLY || !sodium_is_zero(r.reserved, 3))
		return -EBADMSG;
	reply_ad(ad, m->last_mac1, &r);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, NULL, NULL,
						       r.enc_cookie,
						       sizeof(r.enc_cookie),
						       ad, sizeof(ad), r.nonce,
						       m->cookie_key))
		goto out;
	memcpy(m->cookie, cookie, PSD_COOKIE_LEN);
	m->cookie_birth_ns = now_ns;
	m->have_cookie = true;
	/* One reply per message sent: a replayed reply finds nothing. */
	m->have_sent_mac1 = false;
	rc = 0;
out:
	sodium_memzero(cookie, sizeof(cookie));
	return rc;
}

int psd_cookie_source(const struct sockaddr *sa, uint8_t ret[PSD_SOURCE_MAX])
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

	memset(ret, 0, PSD_SOURCE_MAX);
	if (sa->sa_family == AF_INET6) {
		memcpy(ret, &s6->sin6_addr, 16);
		memcpy(ret + 16, &s6->sin6_port, 2);
	} else if (sa->sa_family == AF_INET) {
		ret[10] = ret[11] = 0xff;	/* ::ffff:a.b.c.d */
		memcpy(ret + 12, &s4->sin_addr, 4);
		memcpy(ret + 16, &s4->sin_port, 2);
	} else {
		return -EAFNOSUPPORT;
	}
	return 0;
}

void psd_cookie_checker_wipe(struct psd_cookie_checker *c)
{
	if (c)
		sodium_memzero(c, sizeof(*c));
}

void psd_cookie_maker_wipe(struct psd_cookie_maker *m)
{
	if (m)
		sodium_memzero(m, sizeof(*m));
}
