// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: a peer node's receive path (peer.h), the dispatch in
 * front of the handshake and packet parsers, on bytes as anyone on the
 * network can send them. Node B has one configured peer, A, with an
 * established session; A's next initiation and one of A's transport
 * packets are made at start-up.
 *
 * The first input byte picks a mode:
 *   0  the rest is a raw datagram for B
 *   1  the rest is a list of (offset:le16, xor:u8) patches applied to A's
 *      transport packet
 *   2  the same on A's initiation
 * Oracle: the packet is accepted (its exact plaintext delivered) exactly
 * when no patch changed a byte; the initiation is answered exactly when no
 * patch changed a byte outside mac2 (not under load, mac2 is not checked).
 * A raw datagram may be anything but never yields a payload longer than
 * itself. B's peer is restored before each input, so a run depends on
 * its input only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "chunkhash.h"
#include "packet.h"
#include "peer.h"

#define NOW	(7000 * 1000000000ull)
#define T0	(NOW - 1000000000ull)	/* the session's handshake */
#define WALL	(1764300000ull * 1000000000ull)
#define PT_LEN	100

struct side {
	struct psd_identity id;
	struct psd_peer_node node;
	struct psd_peer peer;
	struct sockaddr_in6 addr;
	uint8_t last[PSD_HANDSHAKE_LEN];
	size_t last_len;
	unsigned int sent;
};

static struct side a, b;
static struct psd_peer b_saved;
static uint8_t pkt[PSD_DGRAM_MIN], init[PSD_HANDSHAKE_LEN], plain[PT_LEN];
static size_t pkt_len;

static void on_send(void *ctx, struct psd_peer *peer, const struct sockaddr *to,
		    socklen_t to_len, const uint8_t *d, size_t len)
{
	struct side *s = ctx;

	(void)peer;
	(void)to;
	(void)to_len;
	s->sent++;
	if (len <= sizeof(s->last)) {
		memcpy(s->last, d, len);
		s->last_len = len;
	}
}

static void on_event(void *ctx, struct psd_peer *peer, enum psd_peer_event ev)
{
	(void)ctx;
	(void)peer;
	(void)ev;
}

static struct psd_peer *by_static(void *ctx, const uint8_t *pub)
{
	struct side *s = ctx;

	return memcmp(s->peer.noise.static_pub, pub, PSD_NOISE_KEY_LEN) ?
		       NULL : &s->peer;
}

static struct psd_peer *by_cid(void *ctx, const uint8_t *cid)
{
	struct side *s = ctx;

	return psd_peer_owns_cid(&s->peer, cid) ? &s->peer : NULL;
}

static const struct psd_peer_ops ops = {
	.send = on_send, .event = on_event,
	.by_static = by_static, .by_cid = by_cid,
};

static int deliver(struct side *to, struct side *from, const uint8_t *d,
		   size_t len, uint8_t *out, size_t cap, size_t *out_len,
		   uint64_t now)
{
	struct psd_peer *peer = NULL;

	return psd_peer_node_receive(&to->node, d, len,
				     (const struct sockaddr *)&from->addr,
				     sizeof(from->addr), false, out, cap,
				     out_len, &peer, now);
}

static void make_side(struct side *s, uint8_t seed_byte, uint16_t port)
{
	uint8_t seed[PSD_SEED_LEN];

	memset(seed, seed_byte, sizeof(seed));
	psd_identity_from_seed(seed, &s->id);
	if (psd_peer_node_init(&s->node, &s->id, &ops, s, 0, WALL))
		abort();
	s->addr.sin6_family = AF_INET6;
	s->addr.sin6_port = htons(port);
	s->addr.sin6_addr.s6_addr[15] = 1;
}

/* A <-> B established; then A's packet and a fresh initiation kept. */
static void setup(void)
{
	uint8_t out[PSD_DGRAM_MIN];
	size_t len;

	if (psd_chunkhash_init())
		abort();
	make_side(&a, 0xaa, 1);
	make_side(&b, 0xbb, 2);
	if (psd_peer_init(&a.peer, &a.node, b.id.pk,
			  (struct sockaddr *)&b.addr, sizeof(b.addr), 1) ||
	    psd_peer_init(&b.peer, &b.node, a.id.pk,
			  (struct sockaddr *)&a.addr, sizeof(a.addr), 2))
		abort();
	psd_peer_connect(&a.peer, T0);
	if (deliver(&b, &a, a.last, a.last_len, out, sizeof(out), &len, T0) ||
	    deliver(&a, &b, b.last, b.last_len, out, sizeof(out), &len, T0) ||
	    deliver(&b, &a, a.last, a.last_len, out, sizeof(out), &len,
		    T0) != 1)
		abort();	/* initiation, response, confirming keepalive */
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 13);
	if (psd_peer_seal(&a.peer, plain, sizeof(plain), pkt, sizeof(pkt),
			  &pkt_len, T0))
		abort();
	/* A's next initiation: drop A's session so that it initiates. */
	psd_peer_drop_session(&a.peer);
	psd_peer_connect(&a.peer, NOW);
	if (a.last_len != sizeof(init))
		abort();
	memcpy(init, a.last, sizeof(init));
	b_saved = b.peer;
}

/* Applies (offset:le16, xor:u8) patches, offsets modulo len. */
static void patch(uint8_t *msg, size_t len, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 3 <= n; i += 3)
		msg[(size_t)(p[i] | p[i + 1] << 8) % len] ^= p[i + 2];
}

/* Whether msg differs from orig outside [skip_from, skip_to). */
static bool differs(const uint8_t *msg, const uint8_t *orig, size_t len,
		    size_t skip_from, size_t skip_to)
{
	for (size_t i = 0; i < len; i++)
		if (msg[i] != orig[i] && (i < skip_from || i >= skip_to))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	uint8_t msg[PSD_HANDSHAKE_LEN], out[PSD_HANDSHAKE_LEN];
	size_t out_len = 0, len;
	int rc;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	b.peer = b_saved;
	b.sent = 0;
	switch (data[0] % 3) {
	case 0:
		len = size - 1 < sizeof(msg) ? size - 1 : sizeof(msg);
		memcpy(msg, data + 1, len);
		rc = deliver(&b, &a, msg, len, out, sizeof(out), &out_len,
			     NOW);
		if (rc == 1 && out_len >= len)
			abort();
		if (rc > 1)
			abort();
		break;
	case 1:
		memcpy(msg, pkt, pkt_len);
		patch(msg, pkt_len, data + 1, size - 1);
		rc = deliver(&b, &a, msg, pkt_len, out, sizeof(out), &out_len,
			     NOW);
		if ((rc == 1) == differs(msg, pkt, pkt_len, 0, 0))
			abort();
		if (rc == 1 && (out_len != sizeof(plain) ||
				memcmp(out, plain, sizeof(plain))))
			abort();
		break;
	default:
		memcpy(msg, init, sizeof(init));
		patch(msg, sizeof(init), data + 1, size - 1);
		rc = deliver(&b, &a, msg, sizeof(init), out, sizeof(out),
			     &out_len, NOW);
		/* mac2: the last 16 bytes, unchecked when not under load. */
		if ((rc == 0) == differs(msg, init, sizeof(init),
					 sizeof(init) - 16, sizeof(init)))
			abort();
		if ((rc == 0) != (b.sent == 1))
			abort();
		break;
	}
	return 0;
}
