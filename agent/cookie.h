/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mac1, mac2 and the cookie reply of handshake messages, as WireGuard does
 * them (docs/protocol.md, "Cookies"). Both handshake messages (noise.h)
 * end with mac1 and mac2, 16 bytes each:
 *
 *   mac1 = MAC16(HASH("mac1----" || S_receiver), msg[0 : len - 32])
 *   mac2 = BLAKE2b(out=16, key=cookie, msg[0 : len - 16])  or 16 zeros
 *
 * mac1 proves the sender knows the receiver's public key: a receiver checks
 * it before any Diffie-Hellman, so junk costs one BLAKE2b. mac2 proves the
 * sender receives packets at its source address: under load a receiver
 * processes only messages whose mac2 is right and answers the others with a
 * cookie reply (no state kept, no DH):
 *
 *   cookie = MAC16(secret, source address bytes), the secret random and
 *            replaced every PSD_COOKIE_SECRET_MAX_AGE_NS
 *   reply  = type 3, the message's sender cid, 24-byte random nonce,
 *            XChaCha20-Poly1305(HASH("cookie--" || S_receiver), nonce,
 *                               cookie, ad = the message's mac1 ||
 *                               the reply's type, reserved, receiver cid)
 *
 * The sender keeps the cookie PSD_COOKIE_SECRET_MAX_AGE_NS minus
 * PSD_COOKIE_LATENCY_NS and adds mac2 with it to its next message (the
 * retry). Binding the reply to the mac1 it answers means only the sender of
 * that message can use it, and nobody can feed a sender forged cookies.
 * Time is passed in (monotonic ns), nothing allocates.
 */
#ifndef PSD_COOKIE_H
#define PSD_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "noise.h"
#include "ratelimit.h"

#define PSD_MAC_LEN			16
#define PSD_COOKIE_LEN			16
#define PSD_COOKIE_NONCE_LEN		24
#define PSD_COOKIE_SECRET_MAX_AGE_NS	(120ull * 1000000000ull)
/* A cookie received this close to its secret's end is not used. */
#define PSD_COOKIE_LATENCY_NS		(5ull * 1000000000ull)
/* Source address bytes: an IPv6 (or v4-mapped) address and the port. */
#define PSD_SOURCE_MAX			18

struct psd_msg_cookie_reply {
	uint8_t type;				/* PSD_MSG_COOKIE_REPLY */
	uint8_t reserved[3];			/* zero */
	uint8_t receiver_cid[PSD_CID_LEN];	/* the message's sender cid */
	uint8_t nonce[PSD_COOKIE_NONCE_LEN];
	uint8_t enc_cookie[PSD_COOKIE_LEN + PSD_AEAD_TAG_LEN];
};

/* The receiving side: checks our messages' macs, makes cookies. */
struct psd_cookie_checker {
	uint8_t mac1_key[PSD_NOISE_KEY_LEN];
	uint8_t cookie_key[PSD_NOISE_KEY_LEN];
	uint8_t secret[PSD_NOISE_KEY_LEN];
	uint64_t secret_birth_ns;
	bool have_secret;
};

/* The sending side, one per peer: adds macs, keeps the peer's cookie. */
struct psd_cookie_maker {
	uint8_t mac1_key[PSD_NOISE_KEY_LEN];
	uint8_t cookie_key[PSD_NOISE_KEY_LEN];
	uint8_t cookie[PSD_COOKIE_LEN];
	uint64_t cookie_birth_ns;
	bool have_cookie;
	uint8_t last_mac1[PSD_MAC_LEN];		/* what a reply must answer */
	bool have_sent_mac1;
};

enum psd_mac_verdict {
	PSD_MAC_INVALID,		/* drop, silently */
	PSD_MAC_VALID_NO_COOKIE,	/* mac1 right, mac2 not */
	PSD_MAC_VALID_WITH_COOKIE,	/* both right: source address proven */
};

/* For messages to us: keys from our own X25519 static public key. */
void psd_cookie_checker_init(struct psd_cookie_checker *ret,
			     const uint8_t own_static_pub[PSD_NOISE_KEY_LEN]);

/* For messages to a peer: keys from its X25519 static public key. */
void psd_cookie_maker_init(struct psd_cookie_maker *ret,
			   const uint8_t peer_static_pub[PSD_NOISE_KEY_LEN]);

/*
 * Fills the last 32 bytes of a handshake message of len bytes (len >= 64):
 * mac1, and mac2 if the maker holds a cookie young enough, else zeros.
 */
void psd_cookie_add_macs(struct psd_cookie_maker *m, uint8_t *msg, size_t len,
			 uint64_t now_ns);

/*
 * Checks a received handshake message's mac1 (always) and mac2 (against the
 * cookie of src, the source address bytes). Under load, process only
 * PSD_MAC_VALID_WITH_COOKIE (then rate-limit it: ratelimit.h) and answer
 * PSD_MAC_VALID_NO_COOKIE with a cookie reply; otherwise process both.
 * Messages shorter than 64 bytes are PSD_MAC_INVALID.
 */
enum psd_mac_verdict psd_cookie_validate(struct psd_cookie_checker *c,
					 const uint8_t *msg, size_t len,
					 const uint8_t *src, size_t src_len,
					 uint64_t now_ns);

enum psd_admit {
	PSD_ADMIT_DROP,		/* silently: bad mac1, or rate-limited */
	PSD_ADMIT_SEND_COOKIE,	/* answer with psd_cookie_reply_create() */
	PSD_ADMIT_PROCESS,	/* hand to noise.h's consume_* */
};

/*
 * The receive policy for a handshake message from src, before any
 * Diffie-Hellman: mac1 wrong -> drop. Not under load -> process. Under
 * load: mac2 wrong -> send a cookie; right -> process if src's bucket in
 * rl allows (ratelimit.h), else drop. under_load is the caller's judgement
 * (e.g. handshakes queued for processing above a threshold).
 */
enum psd_admit psd_cookie_admit(struct psd_cookie_checker *c,
				struct psd_ratelimiter *rl,
				const uint8_t *msg, size_t len,
				const struct sockaddr *src, bool under_load,
				uint64_t now_ns);

/*
 * The cookie reply to a handshake message (initiation or response, whose
 * mac1 was valid) received from src. -EBADMSG if msg is not one,
 * -EAFNOSUPPORT if src is neither IPv4 nor IPv6.
 */
int psd_cookie_reply_create(struct psd_cookie_checker *c,
			    struct psd_msg_cookie_reply *out,
			    const uint8_t *msg, size_t len,
			    const struct sockaddr *src, uint64_t now_ns);

/* The receiver cid of a cookie reply (whose handshake it answers). */
int psd_cookie_reply_receiver(const uint8_t *msg, size_t len,
			      uint8_t ret[PSD_CID_LEN]);

/*
 * Takes the cookie from a reply to the last message m added macs to.
 * -EBADMSG if malformed, not authentic or not an answer to that message.
 */
int psd_cookie_reply_consume(struct psd_cookie_maker *m, const uint8_t *msg,
			     size_t len, uint64_t now_ns);

/*
 * The source address bytes of a sockaddr: IPv6 address (IPv4 as
 * v4-mapped) then the port, both as on the wire: PSD_SOURCE_MAX bytes.
 * -EAFNOSUPPORT for other families.
 */
int psd_cookie_source(const struct sockaddr *sa, uint8_t ret[PSD_SOURCE_MAX]);

void psd_cookie_checker_wipe(struct psd_cookie_checker *c);
void psd_cookie_maker_wipe(struct psd_cookie_maker *m);

#endif /* PSD_COOKIE_H */
