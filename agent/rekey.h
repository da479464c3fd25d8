/* SPDX-License-Identifier: GPL-2.0 */
/*
 * When a session's keys must be replaced, and when they must no longer be
 * used, as WireGuard decides it (its timers), with the AEAD usage limits of
 * RFC 9001 section 6.6 added for AES-256-GCM:
 *
 *   age >= PSD_REKEY_AFTER_TIME, initiator only  -> rekey (the responder
 *       waits, so the two ends do not both start a handshake)
 *   packets sent or received >= rekey-after-messages(alg)  -> rekey
 *   age >= PSD_REJECT_AFTER_TIME                 -> reject
 *   packets sent or received >= reject-after-messages(alg) -> reject
 *   forged packets (failed opens) >= integrity limit(alg)  -> reject
 *
 * "Rekey": start a new handshake, keep using these keys meanwhile. "Reject":
 * seal and open nothing more with them (a rekey is the way out). Packet
 * numbers of a direction count the packets, so "received" is the greatest
 * number accepted plus one. The rekey thresholds leave the handshake time
 * to finish before the reject ones bite.
 */
#ifndef PSD_REKEY_H
#define PSD_REKEY_H

#include <stdbool.h>
#include <stdint.h>

#include "aead.h"

#define PSD_NS_PER_S			1000000000ull
#define PSD_REKEY_AFTER_TIME		(120 * PSD_NS_PER_S)
#define PSD_REJECT_AFTER_TIME		(180 * PSD_NS_PER_S)
/* A handshake not answered within this is sent again (new ephemeral). */
#define PSD_REKEY_TIMEOUT		(5 * PSD_NS_PER_S)

/* ChaCha20-Poly1305: no practical limit; stay inside 62-bit numbers. */
#define PSD_CHACHA_REKEY_AFTER_MESSAGES	(1ull << 60)
#define PSD_CHACHA_REJECT_AFTER_MESSAGES (1ull << 62)
#define PSD_CHACHA_INTEGRITY_LIMIT	(1ull << 36)
/* AES-256-GCM: RFC 9001's confidentiality limit is 2^23 packets. */
#define PSD_AESGCM_REKEY_AFTER_MESSAGES	(1ull << 22)
#define PSD_AESGCM_REJECT_AFTER_MESSAGES (1ull << 23)
#define PSD_AESGCM_INTEGRITY_LIMIT	(1ull << 52)

/* What the connection counts about one key pair. */
struct psd_key_usage {
	enum psd_aead_alg alg;
	bool initiator;		/* this end started the handshake */
	uint64_t birth_ns;	/* monotonic, when the keys were derived */
	uint64_t sent;		/* packets sealed (the next pn to send) */
	uint64_t received;	/* greatest pn accepted + 1, 0 if none */
	uint64_t failed_opens;	/* packets that did not authenticate */
};

enum psd_key_verdict {
	PSD_KEY_OK,
	PSD_KEY_REKEY,
	PSD_KEY_REJECT,
};

/* The verdict for keys with usage u at now_ns (monotonic). */
enum psd_key_verdict psd_rekey_decide(const struct psd_key_usage *u,
				      uint64_t now_ns);

/* Packet numbers at or above this are never sealed nor opened. */
uint64_t psd_rekey_reject_after_messages(enum psd_aead_alg alg);

#endif /* PSD_REKEY_H */
