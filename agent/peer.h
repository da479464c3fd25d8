/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A peer's session: the handshake state machine over noise.h and cookie.h,
 * the key pairs it yields, and every timer of the session, as WireGuard's
 * peer.c and timers.c do it (docs/protocol.md, "Sessions and timers").
 *
 * Key pairs. current seals and opens; previous only opens (packets still in
 * flight under it after a rekey); next is the responder's new key pair,
 * which opens but does not seal until the first packet under it arrives
 * (key confirmation: only then does the responder know the initiator got
 * the response, and that the initiation was not replayed). Then previous
 * <- current <- next. The initiator's new key pair becomes current at once
 * and is confirmed to the responder by a keepalive sent right away.
 *
 * Timers, all deadlines on the caller's monotonic clock (ns); the caller
 * wakes up at psd_peer_next_deadline() and calls psd_peer_on_timer():
 *
 *   handshake retry   an initiation unanswered for PSD_REKEY_TIMEOUT plus
 *                     up to PSD_PEER_RETRY_JITTER is sent again (new
 *                     ephemeral, newer timestamp, mac2 if a cookie came);
 *                     after PSD_PEER_HANDSHAKE_ATTEMPTS: PSD_PEER_UNREACHABLE
 *   keepalive         nothing sent for PSD_PEER_KEEPALIVE while a session
 *                     is up: an all-PADDING packet (NAT bindings, and the
 *                     peer's dead-peer timer)
 *   dead peer         nothing authentic received for PSD_PEER_DEAD_AFTER
 *                     once a key pair sealed: every key wiped, PSD_PEER_DEAD
 *   reject            a key pair PSD_REJECT_AFTER_TIME old is wiped
 *
 * Rekey (rekey.h) is checked on every seal: a verdict of "rekey" starts a
 * handshake while the current keys go on sealing, so traffic never stops.
 * Renewal (psd_peer_renew) does the same on the caller's word that the
 * peer went silent (it restarted and lost the keys).
 *
 * Roaming: every datagram that authenticates (and, for a transport
 * packet, passes the replay window) makes its source the endpoint, as
 * WireGuard does; nothing unauthenticated or replayed moves it.
 *
 * Crossing initiations (both ends initiate at once): the end whose X25519
 * static public key is lower (memcmp) stays initiator and drops the other's
 * initiation while its own is live; the other end answers it and drops its
 * own attempt. One round trip, the same outcome on both ends.
 *
 * A node (struct psd_peer_node) is what the peers of one host share: its
 * static keys, the cookie checker, the handshake rate limiter, and the
 * caller's callbacks: datagrams out, events, and the peer table's two
 * lookups (peers.h). Nothing here does I/O, allocates (except the rate
 * limiter's table) or reads a clock. Every key is wiped with
 * sodium_memzero() when dropped. psd_chunkhash_init() must have run.
 */
#ifndef PSD_PEER_H
#define PSD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cookie.h"
#include "noise.h"
#include "ratelimit.h"
#include "rekey.h"
#include "replay.h"

#define PSD_PEER_KEEPALIVE		(25 * PSD_NS_PER_S)
/* Three keepalives missed, and slack for one retried handshake. */
#define PSD_PEER_DEAD_AFTER		(3 * PSD_PEER_KEEPALIVE + PSD_REKEY_TIMEOUT)
#define PSD_PEER_RETRY_JITTER		(PSD_NS_PER_S / 3)
/*
 * A connection kept across a key change seals its first packet under the
 * new keys with at least this number (psd_peer_conn_starts_over).
 */
#define PSD_PEER_CONTINUED_PN_MIN	64
/* 18 attempts 5 s apart: WireGuard's 90 s of REKEY_ATTEMPT_TIME. */
#define PSD_PEER_HANDSHAKE_ATTEMPTS	18

struct psd_peer;

enum psd_peer_event {
	/*
	 * A new key pair seals (first one, rekey or renewal). For a
	 * responder it is sent while the confirming packet is opened: its
	 * number is already in last_rx_pn.
	 */
	PSD_PEER_KEYS_NEW,
	PSD_PEER_UNREACHABLE,	/* gave up the handshake; keys wiped */
	PSD_PEER_DEAD,		/* silence past PSD_PEER_DEAD_AFTER; keys wiped */
};

struct psd_peer_ops {
	/* A datagram to send. peer is NULL for a cookie reply. */
	void (*send)(void *ctx, struct psd_peer *peer,
		     const struct sockaddr *to, socklen_t to_len,
		     const uint8_t *dgram, size_t len);
	void (*event)(void *ctx, struct psd_peer *peer,
		      enum psd_peer_event ev);
	/* The configured peer with this X25519 static key, or NULL. */
	struct psd_peer *(*by_static)(void *ctx,
				      const uint8_t pub[PSD_NOISE_KEY_LEN]);
	/* The peer using this local connection id (psd_peer_owns_cid). */
	struct psd_peer *(*by_cid)(void *ctx, const uint8_t cid[PSD_CID_LEN]);
};

struct psd_peer_node_stats {
	uint64_t cookies_sent, handshake_dropped, handshake_refused;
	uint64_t crossing_dropped, unknown_cid, not_ours;
};

struct psd_peer_node {
	struct psd_noise_local noise;
	struct psd_cookie_checker checker;
	struct psd_ratelimiter rl;
	const struct psd_peer_ops *ops;
	void *ctx;
	uint64_t realtime_offset_ns;	/* CLOCK_REALTIME - the callers' clock */
	struct psd_peer_node_stats stats;
};

/* One key pair and what rekey.h and replay.h count of it. */
struct psd_keypair {
	struct psd_noise_keys keys;
	struct psd_key_usage usage;
	struct psd_replay replay;
	uint64_t first_pn;		/* the first number sealed under it */
	bool sealed_any;
	bool live;
};

struct psd_peer_stats {
	uint64_t initiations_sent, responses_sent, cookies_received;
	uint64_t sessions, rekeys_started, keepalives_sent;
	uint64_t tx_packets, rx_packets;
	uint64_t rx_no_key, rx_rejected_key, rx_bad, rx_replayed;
};

struct psd_peer {
	struct psd_peer_node *node;
	struct psd_noise_peer noise;
	struct psd_cookie_maker cookie;
	struct psd_noise_handshake hs;
	struct psd_keypair current, previous, next;
	struct sockaddr_storage endpoint;
	socklen_t endpoint_len;
	uint64_t rng;			/* retry jitter */
	bool want_session;		/* connect()ed: retry until keys */
	bool renewing;			/* renew()ed: new keys anyway */
	unsigned int attempts;		/* initiations this round */
	uint64_t initiation_sent_ns;
	uint64_t retry_at;		/* 0: no retry pending */
	uint64_t last_tx_ns, last_rx_ns;
	uint64_t last_rx_pn;		/* of the last transport packet opened */
	/*
	 * Set while a connection seals under this session's keys (swarm.h):
	 * a keepalive is then the connection's PING, sealed with its packet
	 * numbers, never a packet of this layer's own.
	 */
	void (*keepalive_hook)(void *ctx, struct psd_peer *peer);
	void *keepalive_ctx;
	struct psd_peer_stats stats;
};

/*
 * This host's side: X25519 keys of id, a cookie checker, a rate limiter
 * (entries: ratelimit.h's; 0 for the default). realtime_offset_ns makes
 * the handshake timestamps: wall clock = now + offset (it must grow across
 * restarts: pass CLOCK_REALTIME - CLOCK_MONOTONIC). -EINVAL, -ENOMEM.
 */
int psd_peer_node_init(struct psd_peer_node *ret, const struct psd_identity *id,
		       const struct psd_peer_ops *ops, void *ctx,
		       size_t ratelimit_entries, uint64_t realtime_offset_ns);
/* Wipes the keys, frees the limiter, zeroes *node. Accepts zeroed. */
void psd_peer_node_free(struct psd_peer_node *node);

/*
 * A peer by Ed25519 identity, reached at endpoint (updated whenever an
 * authentic datagram comes from elsewhere). seed: retry jitter (tests pass
 * fixed ones). -EINVAL for a key that does not convert, or our own.
 */
int psd_peer_init(struct psd_peer *ret, struct psd_peer_node *node,
		  const uint8_t identity[PSD_PUBKEY_LEN],
		  const struct sockaddr *endpoint, socklen_t endpoint_len,
		  uint64_t seed);
/* Drops the session (every key and handshake wiped) and the whole struct. */
void psd_peer_free(struct psd_peer *peer);

/* Wipes the handshake and all key pairs; timers stop; no event. */
void psd_peer_drop_session(struct psd_peer *peer);

/*
 * Asks for a session: starts a handshake now unless one is under way,
 * keys seal already, or a responder's new keys (next) younger than
 * PSD_REKEY_TIMEOUT wait for their confirmation; retries until keys exist
 * or attempts run out.
 */
void psd_peer_connect(struct psd_peer *peer, uint64_t now);

/*
 * Asks for a new session although the current keys still seal: the peer
 * stopped answering them (it restarted and lost them, or its address
 * went away). A handshake starts now unless one is under way, and is
 * retried as any (the current keys seal meanwhile; PSD_PEER_UNREACHABLE
 * when attempts run out). The next session established ends the request.
 */
void psd_peer_renew(struct psd_peer *peer, uint64_t now);

/*
 * Wipes the previous key pair: packets of a connection abandoned with the
 * last session no longer open (swarm.h, a new session's new connection).
 */
void psd_peer_forget_previous(struct psd_peer *peer);

/*
 * At PSD_PEER_KEYS_NEW while a connection seals through this session
 * (docs/protocol.md, "Restarts"): true if the new keys carry a new
 * connection rather than the old one going on. As initiator: when the
 * connection's next packet number, conn_next_pn, is below
 * PSD_PEER_CONTINUED_PN_MIN (a young connection starts over; the
 * responder could not tell it from a new one). As responder: when the
 * confirming packet's number is below that, or below the count of numbers
 * the previous key pair received (a connection going on numbers on; a
 * restarted peer's new one counts from 0).
 */
bool psd_peer_conn_starts_over(const struct psd_peer *peer,
			       uint64_t conn_next_pn);

/* True if psd_peer_seal() would seal now. */
bool psd_peer_can_send(const struct psd_peer *peer, uint64_t now);

/*
 * Seals payload (len >= 1) as a transport packet (packet.h) under the
 * current keys into out (cap bytes). -ENOTCONN if no key seals (a
 * handshake is started), -EMSGSIZE, -ERANGE (keys used up: rekeying).
 */
int psd_peer_seal(struct psd_peer *peer, const uint8_t *payload, size_t len,
		  uint8_t *out, size_t cap, size_t *ret_len, uint64_t now);

/*
 * Seals payload under the current keys with the caller's packet number pn
 * (a connection's, which continues across key changes; docs/protocol.md,
 * "Key ownership"). pn must not be below any number already sealed under
 * these keys: -EALREADY otherwise, so no number is ever sealed twice under
 * one key whoever seals. The number is encoded against largest_acked while
 * the peer acknowledged one sealed under these keys, else in 4 bytes (the
 * receiver decodes a key's first packet against 0). Errors as
 * psd_peer_seal().
 */
int psd_peer_seal_pn(struct psd_peer *peer, uint64_t pn,
		     uint64_t largest_acked, bool any_acked,
		     const uint8_t *payload, size_t len, uint8_t *out,
		     size_t cap, size_t *ret_len, uint64_t now);

/*
 * One received datagram from src. under_load: answer handshakes without
 * a valid mac2 with a cookie (cookie.h). Returns 1 with a transport
 * packet's plaintext in out (cap >= len), its length in *ret_len and its
 * peer in *ret_peer (its number in (*ret_peer)->last_rx_pn); 0 if the
 * datagram was a handshake message that was
 * handled (a cookie reply sent counts); otherwise a negative errno saying
 * why it was dropped (-EBADMSG malformed or not authentic, -EACCES refused
 * by the cookie policy: mac1 wrong or rate-limited, -ENOKEY no such peer
 * or key (an untrusted initiator too), -EKEYEXPIRED key past its limits,
 * -EALREADY / -ESTALE replay, -EBUSY a crossing initiation we outrank or
 * initiations too fast, -EMSGSIZE out too small, -EPROTO unknown type).
 */
int psd_peer_node_receive(struct psd_peer_node *node, const uint8_t *dgram,
			  size_t len, const struct sockaddr *src,
			  socklen_t src_len, bool under_load, uint8_t *out,
			  size_t cap, size_t *ret_len,
			  struct psd_peer **ret_peer, uint64_t now);

/* When psd_peer_on_timer() has work next; UINT64_MAX: nothing. */
uint64_t psd_peer_next_deadline(const struct psd_peer *peer);

/* Runs every timer due at now: retries, keepalive, dead peer, reject. */
void psd_peer_on_timer(struct psd_peer *peer, uint64_t now);

/* True if cid is the local id of peer's handshake or one of its keys. */
bool psd_peer_owns_cid(const struct psd_peer *peer,
		       const uint8_t cid[PSD_CID_LEN]);

#endif /* PSD_PEER_H */
