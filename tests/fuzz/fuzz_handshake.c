// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the handshake parsers (noise.h, cookie.h) on arbitrary
 * bytes, as anyone on the network can send them, against a fixed responder
 * identity B that trusts a fixed initiator A.
 *
 * The first input byte picks a mode:
 *   0, 1, 2  the rest is a raw initiation, response or cookie reply given to
 *            the receive policy and the parsers (B's checker and noise; A's
 *            handshake waiting for a response; A's cookie maker)
 *   3, 4, 5  the rest is a list of (offset:le16, xor:u8) patches applied to
 *            a valid initiation, response or cookie reply made at start-up,
 *            so the fuzzer reaches past the macs and the AEADs
 * Oracle: a patched message must be refused exactly when a patch changed a
 * byte that the message authenticates (everything but mac1 and mac2 of the
 * handshake messages, whose macs are cookie.h's and checked separately);
 * the unchanged valid message must be accepted. State is restored before
 * each input, so a run depends on its input only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chunkhash.h"
#include "cookie.h"
#include "noise.h"

#define WALL0	(1764300000ull * 1000000000ull)
#define NOW	(7000 * 1000000000ull)

static struct psd_noise_local a, b;
static struct psd_noise_peer a_peer_b, b_peer_a;
static struct psd_noise_handshake hs_a;		/* waiting for a response */
static struct psd_cookie_maker a_maker;		/* sent the initiation */
static struct psd_cookie_checker b_checker;
static struct psd_ratelimiter rl;
static struct psd_msg_initiation init;
static struct psd_msg_response resp;
static struct psd_msg_cookie_reply reply;
static struct sockaddr_in src = { .sin_family = AF_INET };

static struct psd_noise_peer *lookup(void *ctx, const uint8_t *pub)
{
	struct psd_noise_peer *p = ctx;

	return sodium_memcmp(p->static_pub, pub, PSD_NOISE_KEY_LEN) ? NULL : p;
}

static void node(struct psd_noise_local *l, uint8_t seed_byte,
		 uint8_t pk[PSD_PUBKEY_LEN])
{
	uint8_t seed[PSD_SEED_LEN];
	struct psd_identity id;

	memset(seed, seed_byte, sizeof(seed));
	psd_identity_from_seed(seed, &id);
	memcpy(pk, id.pk, PSD_PUBKEY_LEN);
	if (psd_noise_local_init(l, &id))
		abort();
	psd_identity_wipe(&id);
}

/* The valid messages the patch modes start from, macs included. */
static void make_messages(void)
{
	struct psd_noise_peer peer = b_peer_a;
	struct psd_cookie_maker b_maker;
	struct psd_noise_handshake hs_b;

	psd_cookie_maker_init(&b_maker, a.static_pub);
	if (psd_noise_create_initiation(&hs_a, &a, &a_peer_b, WALL0, &init))
		abort();
	psd_cookie_add_macs(&a_maker, (uint8_t *)&init, sizeof(init), NOW);
	if (psd_noise_consume_initiation(&hs_b, &b, lookup, &peer,
					 (const uint8_t *)&init, sizeof(init),
					 NOW) ||
	    psd_noise_create_response(&hs_b, &resp) ||
	    psd_cookie_reply_create(&b_checker, &reply, (const uint8_t *)&init,
				    sizeof(init),
				    (const struct sockaddr *)&src, NOW))
		abort();
	psd_cookie_add_macs(&b_maker, (uint8_t *)&resp, sizeof(resp), NOW);
	psd_noise_handshake_wipe(&hs_b);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t pk_a[PSD_PUBKEY_LEN], pk_b[PSD_PUBKEY_LEN];

	(void)argc;
	(void)argv;
	if (psd_chunkhash_init() || psd_ratelimit_init(&rl, 64))
		abort();
	node(&a, 0xaa, pk_a);
	node(&b, 0xbb, pk_b);
	if (psd_noise_peer_init(&a_peer_b, &a, pk_b) ||
	    psd_noise_peer_init(&b_peer_a, &b, pk_a))
		abort();
	psd_cookie_maker_init(&a_maker, a_peer_b.static_pub);
	psd_cookie_checker_init(&b_checker, b.static_pub);
	src.sin_port = htons(7390);
	src.sin_addr.s_addr = htonl(0xc0000207);
	make_messages();
	return 0;
}

/* B receiving: the policy, then the parser (as if admitted). */
static int b_receives_initiation(const uint8_t *msg, size_t len)
{
	struct psd_noise_peer peer = b_peer_a;	/* fresh replay state */
	struct psd_cookie_checker checker = b_checker;
	struct psd_msg_response out;
	struct psd_msg_cookie_reply r;
	struct psd_noise_handshake hs;
	uint8_t cid[PSD_CID_LEN];
	int rc;

	if (psd_cookie_admit(&checker, &rl, msg, len,
			     (const struct sockaddr *)&src, true, NOW) ==
	    PSD_ADMIT_SEND_COOKIE &&
	    psd_cookie_reply_create(&checker, &r, msg, len,
				    (const struct sockaddr *)&src, NOW))
		abort();	/* a message with a valid mac1 gets a reply */
	(void)psd_noise_response_receiver(msg, len, cid);
	(void)psd_cookie_reply_receiver(msg, len, cid);
	rc = psd_noise_consume_initiation(&hs, &b, lookup, &peer, msg, len,
					  NOW);
	if (!rc && psd_noise_create_response(&hs, &out))
		abort();
	psd_noise_handshake_wipe(&hs);
	return rc;
}

static int a_receives_response(const uint8_t *msg, size_t len)
{
	struct psd_noise_handshake hs = hs_a;
	struct psd_noise_keys k;
	int rc = psd_noise_consume_response(&hs, &a, msg, len);

	if (!rc && psd_noise_derive_keys(&hs, &k))
		abort();
	psd_noise_keys_wipe(&k);
	psd_noise_handshake_wipe(&hs);
	return rc;
}

static int a_receives_cookie_reply(const uint8_t *msg, size_t len)
{
	struct psd_cookie_maker m = a_maker;

	return psd_cookie_reply_consume(&m, msg, len, NOW);
}

/* XORs msg with the (offset:le16, xor:u8) patches in p. */
static void patch(uint8_t *msg, size_t len, const uint8_t *p, size_t n)
{
	for (; n >= 3; p += 3, n -= 3)
		msg[(size_t)(p[0] | p[1] << 8) % len] ^= p[2];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t msg[PSD_HANDSHAKE_LEN];
	size_t covered;
	int rc;

	if (size < 1)
		return 0;
	switch (data[0]) {
	case 0:
		b_receives_initiation(data + 1, size - 1);
		return 0;
	case 1:
		a_receives_response(data + 1, size - 1);
		return 0;
	case 2:
		a_receives_cookie_reply(data + 1, size - 1);
		return 0;
	case 3:
		memcpy(msg, &init, sizeof(init));
		covered = offsetof(struct psd_msg_initiation, mac1);
		patch(msg, sizeof(init), data + 1, size - 1);
		rc = b_receives_initiation(msg, sizeof(msg));
		if ((rc == 0) != !memcmp(msg, &init, covered))
			abort();
		return 0;
	case 4:
		memcpy(msg, &resp, sizeof(resp));
		covered = offsetof(struct psd_msg_response, mac1);
		patch(msg, sizeof(resp), data + 1, size - 1);
		rc = a_receives_response(msg, sizeof(msg));
		if ((rc == 0) != !memcmp(msg, &resp, covered))
			abort();
		return 0;
	case 5:
		memcpy(msg, &reply, sizeof(reply));
		patch(msg, sizeof(reply), data + 1, size - 1);
		rc = a_receives_cookie_reply(msg, sizeof(reply));
		if ((rc == 0) != !memcmp(msg, &reply, sizeof(reply)))
			abort();
		return 0;
	}
	return 0;
}
