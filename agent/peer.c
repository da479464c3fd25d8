// SPDX-License-Identifier: GPL-2.0
/*
 * A peer's session and timers (peer.h has the state machine). Key pairs
 * move by struct copy followed by a wipe of the source, so a secret lives
 * in exactly one place at any time.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <sodium.h>

#include "packet.h"
#include "peer.h"

#define peer_of_noise(np) \
	((struct psd_peer *)((char *)(np) - offsetof(struct psd_peer, noise)))

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Connection ids are 8 bytes in the handshake, big-endian in packets. */
static uint64_t cid_to_u64(const uint8_t cid[PSD_CID_LEN])
{
	uint64_t v = 0;

	for (size_t i = 0; i < PSD_CID_LEN; i++)
		v = v << 8 | cid[i];
	return v;
}

static void cid_from_u64(uint64_t v, uint8_t cid[PSD_CID_LEN])
{
	for (size_t i = 0; i < PSD_CID_LEN; i++)
		cid[i] = (uint8_t)(v >> 8 * (PSD_CID_LEN - 1 - i));
}

static void keypair_wipe(struct psd_keypair *kp)
{
	sodium_memzero(kp, sizeof(*kp));
}

static void keypair_from(struct psd_keypair *ret, const struct psd_noise_keys *k,
			 uint64_t now)
{
	memset(ret, 0, sizeof(*ret));
	ret->keys = *k;
	ret->usage.alg = k->send.alg;
	ret->usage.initiator = k->initiator;
	ret->usage.birth_ns = now;
	psd_replay_init(&ret->replay);
	ret->live = true;
}

/* Seals and opens at time t: live and within every limit of rekey.h. */
static bool keypair_usable(const struct psd_keypair *kp, uint64_t t)
{
	return kp->live && psd_rekey_decide(&kp->usage, t) != PSD_KEY_REJECT;
}

/* kp becomes current, current becomes previous, the old previous goes. */
static void rotate_in(struct psd_peer *peer, struct psd_keypair *kp)
{
	keypair_wipe(&peer->previous);
	peer->previous = peer->current;
	peer->current = *kp;
	keypair_wipe(kp);
}

static void emit(struct psd_peer *peer, enum psd_peer_event ev)
{
	peer->node->ops->event(peer->node->ctx, peer, ev);
}

static void send_to_peer(struct psd_peer *peer, const void *d, size_t len)
{
	peer->node->ops->send(peer->node->ctx, peer,
			      (const struct sockaddr *)&peer->endpoint,
			      peer->endpoint_len, d, len);
}

/* Roaming, as WireGuard: authentic datagrams say where the peer is now. */
static void set_endpoint(struct psd_peer *peer, const struct sockaddr *src,
			 socklen_t len)
{
	if (len > sizeof(peer->endpoint))
		return;
	memcpy(&peer->endpoint, src, len);
	peer->endpoint_len = len;
}

void psd_peer_drop_session(struct psd_peer *peer)
{
	psd_noise_handshake_wipe(&peer->hs);
	keypair_wipe(&peer->current);
	keypair_wipe(&peer->previous);
	keypair_wipe(&peer->next);
	peer->want_session = false;
	peer->renewing = false;
	peer->retry_at = 0;
	peer->attempts = 0;
}

static void send_initiation(struct psd_peer *peer, uint64_t now)
{
	struct psd_peer_node *node = peer->node;
	struct psd_msg_initiation msg;

	if (psd_noise_create_initiation(&peer->hs, &node->noise, &peer->noise,
					now + node->realtime_offset_ns, &msg))
		return;	/* low-order key: refused at psd_peer_init already */
	psd_cookie_add_macs(&peer->cookie, (uint8_t *)&msg, sizeof(msg), now);
	peer->attempts++;
	peer->initiation_sent_ns = now;
	peer->retry_at = now + PSD_REKEY_TIMEOUT +
			 splitmix64(&peer->rng) % PSD_PEER_RETRY_JITTER;
	peer->stats.initiations_sent++;
	send_to_peer(peer, &msg, sizeof(msg));
}

/* Starts a round of initiations unless one is running. */
static void begin_round(struct psd_peer *peer, uint64_t now)
{
	if (peer->retry_at)
		return;
	peer->attempts = 0;
	send_initiation(peer, now);
}

/* A round must go on: no keys seal, or the current ones want replacing. */
static bool round_needed(const struct psd_peer *peer, uint64_t now)
{
	if (peer->renewing)
		return true;
	if (keypair_usable(&peer->current, now))
		return psd_rekey_decide(&peer->current.usage, now) ==
		       PSD_KEY_REKEY;
	return peer->want_session;
}

/*
 * A responder's fresh next is confirmed within a round trip; initiating
 * now would only start a second handshake across it.
 */
static bool awaiting_confirmation(const struct psd_peer *peer, uint64_t now)
{
	return peer->next.live &&
	       now - peer->next.usage.birth_ns < PSD_REKEY_TIMEOUT;
}

void psd_peer_connect(struct psd_peer *peer, uint64_t now)
{
	peer->want_session = true;
	if (!keypair_usable(&peer->current, now) &&
	    !awaiting_confirmation(peer, now))
		begin_round(peer, now);
}

void psd_peer_renew(struct psd_peer *peer, uint64_t now)
{
	/* Even across a responder's unconfirmed next: the peer may have
	 * initiated and then gone again; crossing rules settle the rest. */
	peer->want_session = true;
	peer->renewing = true;
	begin_round(peer, now);
}

void psd_peer_forget_previous(struct psd_peer *peer)
{
	keypair_wipe(&peer->previous);
}

bool psd_peer_conn_starts_over(const struct psd_peer *peer,
			       uint64_t conn_next_pn)
{
	const struct psd_keypair *prev = &peer->previous;

	if (peer->current.keys.initiator)
		return conn_next_pn < PSD_PEER_CONTINUED_PN_MIN;
	return peer->last_rx_pn < PSD_PEER_CONTINUED_PN_MIN ||
	       (prev->live && peer->last_rx_pn < prev->usage.received);
}

bool psd_peer_can_send(const struct psd_peer *peer, uint64_t now)
{
	return keypair_usable(&peer->current, now);
}

/*
 * This layer knows nothing of acknowledgements, so it encodes numbers as
 * if 2^30 were unacknowledged (4 bytes) once that many were sent, and
 * against "none acknowledged" before: the receiver rebuilds every number
 * within 2^31 of the greatest it accepted.
 */
static void pn_reference(uint64_t pn, uint64_t *ret_largest, bool *ret_any)
{
	*ret_any = pn >= (1ull << 30);
	*ret_largest = *ret_any ? pn - (1ull << 30) : 0;
}

/* Seals under the current keys with pn; the one place that touches usage.sent. */
static int seal_current(struct psd_peer *peer, uint64_t pn,
			uint64_t largest, bool any, const uint8_t *payload,
			size_t len, uint8_t *out, size_t cap, size_t *ret_len,
			uint64_t now)
{
	struct psd_keypair *kp = &peer->current;
	int err;

	if (!keypair_usable(kp, now)) {
		psd_peer_connect(peer, now);
		return -ENOTCONN;
	}
	if (pn < kp->usage.sent)
		return -EALREADY;	/* would reuse a nonce */
	err = psd_packet_seal(&kp->keys.send, cid_to_u64(kp->keys.remote_cid),
			      pn, largest, any, payload, len, out, cap,
			      ret_len);
	if (err)
		return err;
	if (!kp->sealed_any) {
		kp->first_pn = pn;
		kp->sealed_any = true;
	}
	kp->usage.sent = pn + 1;
	peer->last_tx_ns = now;
	peer->stats.tx_packets++;
	if (psd_rekey_decide(&kp->usage, now) == PSD_KEY_REKEY &&
	    !peer->retry_at) {
		peer->stats.rekeys_started++;
		begin_round(peer, now);
	}
	return 0;
}

int psd_peer_seal(struct psd_peer *peer, const uint8_t *payload, size_t len,
		  uint8_t *out, size_t cap, size_t *ret_len, uint64_t now)
{
	uint64_t pn = peer->current.usage.sent, largest;
	bool any;

	pn_reference(pn, &largest, &any);
	return seal_current(peer, pn, largest, any, payload, len, out, cap,
			    ret_len, now);
}

int psd_peer_seal_pn(struct psd_peer *peer, uint64_t pn,
		     uint64_t largest_acked, bool any_acked,
		     const uint8_t *payload, size_t len, uint8_t *out,
		     size_t cap, size_t *ret_len, uint64_t now)
{
	const struct psd_keypair *kp = &peer->current;

	/* Until the peer acknowledged a packet under these keys it may hold
	 * no reference for them: encode as if nothing were acknowledged. */
	if (!any_acked || !kp->sealed_any || largest_acked < kp->first_pn)
		pn_reference(pn, &largest_acked, &any_acked);
	return seal_current(peer, pn, largest_acked, any_acked, payload, len,
			    out, cap, ret_len, now);
}

/* An all-PADDING packet of PSD_DGRAM_MIN bytes. */
static void send_keepalive(struct psd_peer *peer, uint64_t now)
{
	uint8_t payload[PSD_DGRAM_MIN], dgram[PSD_DGRAM_MIN];
	uint64_t largest;
	unsigned int pn_len;
	size_t len;
	bool any;

	if (peer->keepalive_hook) {
		peer->last_tx_ns = now;	/* the PING's seal sets it again */
		peer->stats.keepalives_sent++;
		peer->keepalive_hook(peer->keepalive_ctx, peer);
		return;
	}
	pn_reference(peer->current.usage.sent, &largest, &any);
	pn_len = psd_pn_encode_len(peer->current.usage.sent, largest, any);
	len = PSD_DGRAM_MIN - (1 + PSD_PKT_CID_LEN + pn_len) - PSD_AEAD_TAG_LEN;
	memset(payload, 0, len);
	if (psd_peer_seal(peer, payload, len, dgram, sizeof(dgram), &len, now))
		return;
	peer->stats.keepalives_sent++;
	send_to_peer(peer, dgram, len);
}

/* ---- receiving ---- */

static struct psd_noise_peer *lookup_static(void *ctx,
		const uint8_t pub[PSD_NOISE_KEY_LEN])
{
	struct psd_peer_node *node = ctx;
	struct psd_peer *peer = node->ops->by_static(node->ctx, pub);

	return peer ? &peer->noise : NULL;
}

/*
 * The cookie policy in front of any Diffie-Hellman: 0 to process, 1 if a
 * cookie reply went out instead, -EACCES to drop.
 */
static int admit(struct psd_peer_node *node, const uint8_t *d, size_t len,
		 const struct sockaddr *src, socklen_t src_len,
		 bool under_load, uint64_t now)
{
	struct psd_msg_cookie_reply reply;

	switch (psd_cookie_admit(&node->checker, &node->rl, d, len, src,
				 under_load, now)) {
	case PSD_ADMIT_PROCESS:
		return 0;
	case PSD_ADMIT_SEND_COOKIE:
		if (psd_cookie_reply_create(&node->checker, &reply, d, len,
					    src, now))
			break;
		node->stats.cookies_sent++;
		node->ops->send(node->ctx, NULL, src, src_len,
				(const uint8_t *)&reply, sizeof(reply));
		return 1;
	case PSD_ADMIT_DROP:
		break;
	}
	node->stats.handshake_dropped++;
	return -EACCES;
}

/* Both ends initiated: the lower static key keeps its initiation. */
static bool outranks_crossing(const struct psd_peer *peer, uint64_t now)
{
	return peer->hs.state == PSD_NOISE_CREATED_INITIATION &&
	       now - peer->initiation_sent_ns < PSD_REKEY_TIMEOUT &&
	       memcmp(peer->node->noise.static_pub, peer->noise.static_pub,
		      PSD_NOISE_KEY_LEN) < 0;
}

/* Responder: answer hs (consumed) and keep its keys as next. */
static int respond(struct psd_peer *peer, struct psd_noise_handshake *hs,
		   uint64_t now)
{
	struct psd_msg_response msg;
	struct psd_noise_keys keys;
	int err;

	psd_noise_handshake_wipe(&peer->hs);
	peer->hs = *hs;
	psd_noise_handshake_wipe(hs);
	err = psd_noise_create_response(&peer->hs, &msg);
	if (!err)
		err = psd_noise_derive_keys(&peer->hs, &keys);
	if (err) {
		psd_noise_handshake_wipe(&peer->hs);
		return err;
	}
	keypair_wipe(&peer->next);
	keypair_from(&peer->next, &keys, now);
	psd_noise_keys_wipe(&keys);
	psd_cookie_add_macs(&peer->cookie, (uint8_t *)&msg, sizeof(msg), now);
	peer->stats.responses_sent++;
	send_to_peer(peer, &msg, sizeof(msg));
	return 0;
}

static int on_initiation(struct psd_peer_node *node, const uint8_t *d,
			 size_t len, const struct sockaddr *src,
			 socklen_t src_len, bool under_load, uint64_t now)
{
	struct psd_noise_handshake hs;
	struct psd_peer *peer;
	int err;

	err = admit(node, d, len, src, src_len, under_load, now);
	if (err)
		return err < 0 ? err : 0;
	err = psd_noise_consume_initiation(&hs, &node->noise, lookup_static,
					   node, d, len, now);
	if (err) {
		node->stats.handshake_refused++;
		return err;
	}
	peer = peer_of_noise(hs.peer);
	if (outranks_crossing(peer, now)) {
		psd_noise_handshake_wipe(&hs);
		node->stats.crossing_dropped++;
		return -EBUSY;
	}
	set_endpoint(peer, src, src_len);
	peer->last_rx_ns = now;
	return respond(peer, &hs, now);
}

static struct psd_peer *peer_by_cid(struct psd_peer_node *node,
				    const uint8_t cid[PSD_CID_LEN])
{
	struct psd_peer *peer = node->ops->by_cid(node->ctx, cid);

	if (!peer)
		node->stats.unknown_cid++;
	return peer;
}

/* Initiator: a new current key pair, confirmed to the responder at once. */
static void established_as_initiator(struct psd_peer *peer,
				     struct psd_noise_keys *keys, uint64_t now)
{
	struct psd_keypair kp;

	keypair_from(&kp, keys, now);
	keypair_wipe(&peer->next);
	rotate_in(peer, &kp);
	peer->retry_at = 0;
	peer->attempts = 0;
	peer->renewing = false;
	peer->last_rx_ns = now;
	peer->stats.sessions++;
	/* The event first: a connection made for the new keys then carries
	 * the confirming keepalive (keepalive_hook). */
	emit(peer, PSD_PEER_KEYS_NEW);
	send_keepalive(peer, now);
}

static int on_response(struct psd_peer_node *node, const uint8_t *d,
		       size_t len, const struct sockaddr *src,
		       socklen_t src_len, bool under_load, uint64_t now)
{
	struct psd_noise_keys keys;
	uint8_t cid[PSD_CID_LEN];
	struct psd_peer *peer;
	int err;

	err = psd_noise_response_receiver(d, len, cid);
	if (err)
		return err;
	peer = peer_by_cid(node, cid);
	if (!peer || peer->hs.state != PSD_NOISE_CREATED_INITIATION ||
	    memcmp(peer->hs.local_cid, cid, PSD_CID_LEN))
		return -ENOKEY;
	err = admit(node, d, len, src, src_len, under_load, now);
	if (err)
		return err < 0 ? err : 0;
	err = psd_noise_consume_response(&peer->hs, &node->noise, d, len);
	if (err)
		return err;
	err = psd_noise_derive_keys(&peer->hs, &keys);
	if (err)
		return err;
	set_endpoint(peer, src, src_len);
	established_as_initiator(peer, &keys, now);
	psd_noise_keys_wipe(&keys);
	return 0;
}

static int on_cookie_reply(struct psd_peer_node *node, const uint8_t *d,
			   size_t len, uint64_t now)
{
	uint8_t cid[PSD_CID_LEN];
	struct psd_peer *peer;
	int err;

	err = psd_cookie_reply_receiver(d, len, cid);
	if (err)
		return err;
	peer = peer_by_cid(node, cid);
	if (!peer)
		return -ENOKEY;
	err = psd_cookie_reply_consume(&peer->cookie, d, len, now);
	if (err)
		return err;
	/* The retry timer sends the next initiation, with mac2. */
	peer->stats.cookies_received++;
	return 0;
}

static struct psd_keypair *keypair_by_cid(struct psd_peer *peer,
					  const uint8_t cid[PSD_CID_LEN])
{
	struct psd_keypair *kps[] = { &peer->current, &peer->next,
				      &peer->previous };

	for (size_t i = 0; i < sizeof(kps) / sizeof(kps[0]); i++)
		if (kps[i]->live &&
		    !memcmp(kps[i]->keys.local_cid, cid, PSD_CID_LEN))
			return kps[i];
	return NULL;
}

/* Responder: the first packet under next proves the initiator has it. */
static void confirm_next(struct psd_peer *peer)
{
	rotate_in(peer, &peer->next);
	peer->retry_at = 0;
	peer->attempts = 0;
	peer->renewing = false;
	peer->stats.sessions++;
	emit(peer, PSD_PEER_KEYS_NEW);
}

/* Opens a packet under kp: 0 and *ret_pn, or why not (kp may be wiped). */
static int open_with(struct psd_peer *peer, struct psd_keypair *kp,
		     const uint8_t *d, size_t len,
		     const struct psd_pkt_hdr *h, uint8_t *out,
		     size_t *ret_len, uint64_t *ret_pn, uint64_t now)
{
	uint64_t pn;
	int err;

	if (!keypair_usable(kp, now)) {
		peer->stats.rx_rejected_key++;
		return -EKEYEXPIRED;
	}
	err = psd_packet_open(&kp->keys.recv, d, len, h, kp->replay.greatest,
			      kp->usage.received > 0, out, ret_len, &pn);
	if (err) {
		peer->stats.rx_bad++;
		kp->usage.failed_opens++;
		if (!keypair_usable(kp, now))
			keypair_wipe(kp);	/* integrity limit reached */
		return -EBADMSG;
	}
	if (pn >= psd_rekey_reject_after_messages(kp->usage.alg)) {
		peer->stats.rx_rejected_key++;
		return -EKEYEXPIRED;
	}
	err = psd_replay_accept(&kp->replay, pn);
	if (err) {
		peer->stats.rx_replayed++;
		return err;
	}
	if (pn + 1 > kp->usage.received)
		kp->usage.received = pn + 1;
	*ret_pn = pn;
	return 0;
}

static int on_data(struct psd_peer_node *node, const uint8_t *d, size_t len,
		   const struct sockaddr *src, socklen_t src_len,
		   uint8_t *out, size_t cap, size_t *ret_len,
		   struct psd_peer **ret_peer, uint64_t now)
{
	uint8_t cid[PSD_CID_LEN];
	struct psd_keypair *kp;
	struct psd_pkt_hdr h;
	struct psd_peer *peer;
	uint64_t pn;
	int err;

	if (psd_packet_parse_header(d, len, &h))
		return -EBADMSG;
	if (cap < len - h.hdr_len - PSD_AEAD_TAG_LEN)
		return -EMSGSIZE;
	cid_from_u64(h.cid, cid);
	peer = peer_by_cid(node, cid);
	if (!peer)
		return -ENOKEY;
	kp = keypair_by_cid(peer, cid);
	if (!kp) {
		peer->stats.rx_no_key++;
		return -ENOKEY;
	}
	err = open_with(peer, kp, d, len, &h, out, ret_len, &pn, now);
	if (err)
		return err;
	/* Only now, authentic and no replay: roaming (docs/protocol.md). */
	set_endpoint(peer, src, src_len);
	peer->last_rx_ns = now;
	peer->last_rx_pn = pn;
	peer->stats.rx_packets++;
	/* After last_rx_pn: the new-keys event reads it. */
	if (kp == &peer->next)
		confirm_next(peer);
	*ret_peer = peer;
	return 1;
}

int psd_peer_node_receive(struct psd_peer_node *node, const uint8_t *dgram,
			  size_t len, const struct sockaddr *src,
			  socklen_t src_len, bool under_load, uint8_t *out,
			  size_t cap, size_t *ret_len,
			  struct psd_peer **ret_peer, uint64_t now)
{
	if (len < 1)
		return -EBADMSG;
	switch (dgram[0]) {
	case PSD_MSG_INITIATION:
		return on_initiation(node, dgram, len, src, src_len,
				     under_load, now);
	case PSD_MSG_RESPONSE:
		return on_response(node, dgram, len, src, src_len,
				   under_load, now);
	case PSD_MSG_COOKIE_REPLY:
		return on_cookie_reply(node, dgram, len, now);
	}
	if (dgram[0] >> 2 == PSD_PKT_TYPE_DATA)
		return on_data(node, dgram, len, src, src_len, out, cap,
			       ret_len, ret_peer, now);
	node->stats.not_ours++;
	return -EPROTO;
}

/* ---- timers ---- */

/*
 * A session was established: some key pair sealed. A responder's
 * unconfirmed next alone is not one (it expires at its reject time).
 */
static bool established(const struct psd_peer *peer)
{
	return peer->current.live || peer->previous.live;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Nothing sent for PSD_PEER_KEEPALIVE since the later of the last packet
 * and the current keys' birth. */
static uint64_t keepalive_at(const struct psd_peer *peer)
{
	uint64_t since = peer->last_tx_ns;

	if (since < peer->current.usage.birth_ns)
		since = peer->current.usage.birth_ns;
	return since + PSD_PEER_KEEPALIVE;
}

uint64_t psd_peer_next_deadline(const struct psd_peer *peer)
{
	const struct psd_keypair *kps[] = { &peer->current, &peer->next,
					    &peer->previous };
	uint64_t t = UINT64_MAX, keepalive;

	if (peer->retry_at)
		t = peer->retry_at;
	for (size_t i = 0; i < sizeof(kps) / sizeof(kps[0]); i++)
		if (kps[i]->live)
			t = min_u64(t, kps[i]->usage.birth_ns +
					PSD_REJECT_AFTER_TIME);
	if (!established(peer))
		return t;
	t = min_u64(t, peer->last_rx_ns + PSD_PEER_DEAD_AFTER);
	keepalive = keepalive_at(peer);
	if (keypair_usable(&peer->current, keepalive))
		t = min_u64(t, keepalive);
	return t;
}

static void reject_old_keys(struct psd_peer *peer, uint64_t now)
{
	struct psd_keypair *kps[] = { &peer->current, &peer->next,
				      &peer->previous };

	for (size_t i = 0; i < sizeof(kps) / sizeof(kps[0]); i++)
		if (kps[i]->live && !keypair_usable(kps[i], now))
			keypair_wipe(kps[i]);
}

static void retry_handshake(struct psd_peer *peer, uint64_t now)
{
	if (!round_needed(peer, now)) {
		peer->retry_at = 0;
		peer->attempts = 0;
		return;
	}
	if (peer->attempts >= PSD_PEER_HANDSHAKE_ATTEMPTS) {
		psd_peer_drop_session(peer);
		emit(peer, PSD_PEER_UNREACHABLE);
		return;
	}
	send_initiation(peer, now);
}

void psd_peer_on_timer(struct psd_peer *peer, uint64_t now)
{
	bool had_keys = peer->current.live;

	reject_old_keys(peer, now);
	if (established(peer) && now >= peer->last_rx_ns + PSD_PEER_DEAD_AFTER) {
		psd_peer_drop_session(peer);
		emit(peer, PSD_PEER_DEAD);
		return;
	}
	if (had_keys && !peer->current.live && peer->want_session)
		begin_round(peer, now);
	if (peer->retry_at && now >= peer->retry_at)
		retry_handshake(peer, now);
	if (keypair_usable(&peer->current, now) &&
	    now >= keepalive_at(peer))
		send_keepalive(peer, now);
}

bool psd_peer_owns_cid(const struct psd_peer *peer,
		       const uint8_t cid[PSD_CID_LEN])
{
	const struct psd_keypair *kps[] = { &peer->current, &peer->next,
					    &peer->previous };

	if (peer->hs.state != PSD_NOISE_ZEROED &&
	    !memcmp(peer->hs.local_cid, cid, PSD_CID_LEN))
		return true;
	for (size_t i = 0; i < sizeof(kps) / sizeof(kps[0]); i++)
		if (kps[i]->live &&
		    !memcmp(kps[i]->keys.local_cid, cid, PSD_CID_LEN))
			return true;
	return false;
}

/* ---- life cycle ---- */

int psd_peer_node_init(struct psd_peer_node *ret, const struct psd_identity *id,
		       const struct psd_peer_ops *ops, void *ctx,
		       size_t ratelimit_entries, uint64_t realtime_offset_ns)
{
	int err;

	memset(ret, 0, sizeof(*ret));
	err = psd_noise_local_init(&ret->noise, id);
	if (err)
		return err;
	err = psd_ratelimit_init(&ret->rl, ratelimit_entries);
	if (err) {
		psd_noise_local_wipe(&ret->noise);
		return err;
	}
	psd_cookie_checker_init(&ret->checker, ret->noise.static_pub);
	ret->ops = ops;
	ret->ctx = ctx;
	ret->realtime_offset_ns = realtime_offset_ns;
	return 0;
}

void psd_peer_node_free(struct psd_peer_node *node)
{
	if (!node)
		return;
	psd_ratelimit_free(&node->rl);
	sodium_memzero(node, sizeof(*node));
}

int psd_peer_init(struct psd_peer *ret, struct psd_peer_node *node,
		  const uint8_t identity[PSD_PUBKEY_LEN],
		  const struct sockaddr *endpoint, socklen_t endpoint_len,
		  uint64_t seed)
{
	int err;

	memset(ret, 0, sizeof(*ret));
	if (endpoint_len > sizeof(ret->endpoint))
		return -EINVAL;
	err = psd_noise_peer_init(&ret->noise, &node->noise, identity);
	if (err)
		return err;
	if (!memcmp(ret->noise.static_pub, node->noise.static_pub,
		    PSD_NOISE_KEY_LEN)) {
		psd_noise_peer_wipe(&ret->noise);
		return -EINVAL;
	}
	psd_cookie_maker_init(&ret->cookie, ret->noise.static_pub);
	ret->node = node;
	memcpy(&ret->endpoint, endpoint, endpoint_len);
	ret->endpoint_len = endpoint_len;
	ret->rng = seed;
	return 0;
}

void psd_peer_free(struct psd_peer *peer)
{
	if (!peer)
		return;
	psd_peer_drop_session(peer);
	sodium_memzero(peer, sizeof(*peer));
}
