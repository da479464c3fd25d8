/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The transport handshake: Noise IK over X25519, as WireGuard does it, 1-RTT
 * (docs/protocol.md, "Handshake", has the byte layouts and the derivation).
 *
 *   initiator                                     responder
 *   create_initiation  -- initiation (1200 B) ->  consume_initiation
 *                                                 create_response
 *   consume_response   <-  response (1200 B)  --  derive_keys
 *   derive_keys
 *
 * Static keys are the nodes' Ed25519 identities (identity.h) converted to
 * X25519. The initiator knows the responder's static key in advance; the
 * responder learns the initiator's from the initiation and accepts it only
 * if its lookup function returns a configured peer for it (-ENOKEY if not).
 * The initiation carries a TAI64N timestamp that must be newer than the last
 * one accepted from that peer (-ESTALE if not: a replayed initiation), and a
 * peer gets at most PSD_NOISE_INITIATIONS_PER_SECOND (-EBUSY beyond).
 *
 * This file does not compute mac1/mac2 (the last 32 bytes of both
 * messages): cookie.h does, and a receiver checks mac1 (and under load
 * mac2) before calling consume_*, which costs Diffie-Hellman operations.
 *
 * Keys: derive_keys() yields the AEAD key of each direction (aead.h) and the
 * connection ids. The responder must not send transport packets under new
 * keys before it has received one from the initiator (key confirmation: until
 * then the response may have been lost or the initiation replayed within the
 * timestamp's granularity); the initiator sends first.
 *
 * Every temporary secret (ephemeral keys, DH results, chaining keys, AEAD
 * keys of the handshake) is wiped with sodium_memzero() on every path; a
 * handshake is wiped by derive_keys() and by psd_noise_handshake_wipe().
 * Nothing here allocates or does I/O; time is passed in (the simulator's
 * virtual clock). psd_chunkhash_init() (sodium_init()) must have run.
 */
#ifndef PSD_NOISE_H
#define PSD_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aead.h"
#include "identity.h"

#define PSD_NOISE_KEY_LEN	32	/* X25519 keys, hashes, chaining keys */
#define PSD_CID_LEN		8	/* connection id */
#define PSD_TAI64N_LEN		12
/* Handshake datagrams are padded to the QUIC minimum: the path carries it. */
#define PSD_HANDSHAKE_LEN	1200
#define PSD_NOISE_INITIATIONS_PER_SECOND	50

/*
 * The first byte of every datagram. Values other than these are transport
 * packets (the packet layer owns them) and must never be these three.
 */
enum psd_msg_type {
	PSD_MSG_INITIATION = 1,
	PSD_MSG_RESPONSE = 2,
	PSD_MSG_COOKIE_REPLY = 3,
};

/* Byte arrays only: no padding, alignment 1, the struct is the wire. */
struct psd_msg_initiation {
	uint8_t type;				/* PSD_MSG_INITIATION */
	uint8_t reserved[3];			/* zero */
	uint8_t sender_cid[PSD_CID_LEN];
	uint8_t ephemeral[PSD_NOISE_KEY_LEN];
	uint8_t enc_static[PSD_NOISE_KEY_LEN + PSD_AEAD_TAG_LEN];
	/* TAI64N timestamp, then one byte: the AEAD algorithms offered. */
	uint8_t enc_payload[PSD_TAI64N_LEN + 1 + PSD_AEAD_TAG_LEN];
	uint8_t padding[1047];			/* zero */
	uint8_t mac1[16];
	uint8_t mac2[16];
};

struct psd_msg_response {
	uint8_t type;				/* PSD_MSG_RESPONSE */
	uint8_t reserved[3];			/* zero */
	uint8_t sender_cid[PSD_CID_LEN];
	uint8_t receiver_cid[PSD_CID_LEN];	/* the initiation's sender */
	uint8_t ephemeral[PSD_NOISE_KEY_LEN];
	/* The algorithm chosen. */
	uint8_t enc_payload[1 + PSD_AEAD_TAG_LEN];
	uint8_t padding[1099];			/* zero */
	uint8_t mac1[16];
	uint8_t mac2[16];
};

/* This node's static key pair. */
struct psd_noise_local {
	uint8_t static_pub[PSD_NOISE_KEY_LEN];
	uint8_t static_priv[PSD_NOISE_KEY_LEN];
};

/* A configured, trusted peer and what the handshake remembers of it. */
struct psd_noise_peer {
	uint8_t identity[PSD_PUBKEY_LEN];		/* Ed25519 */
	uint8_t static_pub[PSD_NOISE_KEY_LEN];		/* X25519 */
	uint8_t static_static[PSD_NOISE_KEY_LEN];	/* DH(ours, its) */
	uint8_t latest_timestamp[PSD_TAI64N_LEN];	/* zero: none yet */
	uint64_t last_initiation_ns;	/* monotonic, of the last accepted */
	bool any_initiation;
};

enum psd_noise_state {
	PSD_NOISE_ZEROED = 0,
	PSD_NOISE_CREATED_INITIATION,
	PSD_NOISE_CONSUMED_INITIATION,
	PSD_NOISE_CREATED_RESPONSE,
	PSD_NOISE_CONSUMED_RESPONSE,
};

/* One handshake in progress; its peer must outlive it. */
struct psd_noise_handshake {
	enum psd_noise_state state;
	struct psd_noise_peer *peer;
	uint8_t hash[PSD_NOISE_KEY_LEN];
	uint8_t chaining_key[PSD_NOISE_KEY_LEN];
	uint8_t ephemeral_priv[PSD_NOISE_KEY_LEN];
	uint8_t remote_ephemeral[PSD_NOISE_KEY_LEN];
	uint8_t local_cid[PSD_CID_LEN];
	uint8_t remote_cid[PSD_CID_LEN];
	uint8_t aead_offer;		/* bit (alg - 1) per psd_aead_alg */
	enum psd_aead_alg alg;		/* chosen, once known */
};

/* What a completed handshake gives a connection. */
struct psd_noise_keys {
	struct psd_aead_key send;
	struct psd_aead_key recv;
	uint8_t local_cid[PSD_CID_LEN];	 /* incoming packets carry this */
	uint8_t remote_cid[PSD_CID_LEN]; /* outgoing packets carry this */
	bool initiator;
};

/* The responder's way to find a trusted peer by X25519 static key. */
typedef struct psd_noise_peer *psd_noise_lookup_fn(void *ctx,
		const uint8_t static_pub[PSD_NOISE_KEY_LEN]);

/* X25519 key pair of an Ed25519 identity. -EINVAL if it does not convert. */
int psd_noise_local_init(struct psd_noise_local *ret,
			 const struct psd_identity *id);
void psd_noise_local_wipe(struct psd_noise_local *local);

/*
 * A peer from its Ed25519 public key; precomputes the static-static DH.
 * -EINVAL if the key is not a valid point or gives a low-order result.
 */
int psd_noise_peer_init(struct psd_noise_peer *ret,
			const struct psd_noise_local *local,
			const uint8_t identity[PSD_PUBKEY_LEN]);
void psd_noise_peer_wipe(struct psd_noise_peer *peer);

/*
 * Initiator: starts a handshake with peer (hs is overwritten) and writes
 * the initiation to out, mac1 and mac2 zero (cookie.h fills them).
 * wall_ns: the real-time clock (CLOCK_REALTIME) in ns since 1970.
 * -EINVAL if the peer's key gives a low-order DH result.
 */
int psd_noise_create_initiation(struct psd_noise_handshake *hs,
				const struct psd_noise_local *local,
				struct psd_noise_peer *peer, uint64_t wall_ns,
				struct psd_msg_initiation *out);

/*
 * Responder: checks and decrypts an initiation of len bytes (whose mac1
 * was verified) and on success fills hs (state CONSUMED_INITIATION) and
 * updates the peer's replay and flood state. now_ns: monotonic clock.
 * -EBADMSG (wrong size, type, non-zero reserved or padding, does not
 * decrypt, no algorithm in common), -ENOKEY (static key of no trusted
 * peer), -ESTALE (timestamp not newer than the last accepted: replay),
 * -EBUSY (that peer's initiations come too fast). hs is untouched on error.
 */
int psd_noise_consume_initiation(struct psd_noise_handshake *hs,
				 const struct psd_noise_local *local,
				 psd_noise_lookup_fn *lookup, void *ctx,
				 const uint8_t *msg, size_t len,
				 uint64_t now_ns);

/* Responder: writes the response (macs zero). -EINVAL in the wrong state. */
int psd_noise_create_response(struct psd_noise_handshake *hs,
			      struct psd_msg_response *out);

/*
 * Initiator: checks and decrypts a response to hs. -EINVAL in the wrong
 * state; -EBADMSG (malformed, not for hs's connection id, does not decrypt,
 * an algorithm not offered). hs is untouched on error, so a forged
 * response does not stop the real one.
 */
int psd_noise_consume_response(struct psd_noise_handshake *hs,
			       const struct psd_noise_local *local,
			       const uint8_t *msg, size_t len);

/*
 * The receiver connection id of a response: which handshake it is for.
 * -EBADMSG if msg is not response-sized or not a response.
 */
int psd_noise_response_receiver(const uint8_t *msg, size_t len,
				uint8_t ret[PSD_CID_LEN]);

/*
 * Both sides, after create_response / consume_response: the transport
 * keys and connection ids; wipes hs. -EINVAL in any other state.
 */
int psd_noise_derive_keys(struct psd_noise_handshake *hs,
			  struct psd_noise_keys *ret);

void psd_noise_handshake_wipe(struct psd_noise_handshake *hs);
void psd_noise_keys_wipe(struct psd_noise_keys *keys);

#endif /* PSD_NOISE_H */
