// SPDX-License-Identifier: GPL-2.0
/*
 * mac1 / mac2 / cookie replies (cookie.h) and the per-source rate limiter
 * (ratelimit.h), alone and as the receive policy in front of the handshake:
 * a changed byte anywhere before mac2 drops the message before any
 * Diffie-Hellman; under load a message without a valid mac2 gets a cookie
 * reply and the retry with the cookie is processed and completes the
 * handshake; cookies are bound to the source address, the message they
 * answer and the secret's lifetime; handshakes per source per second are
 * bounded; the limiter's table is bounded and its entries expire.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "cookie.h"
#include "noise.h"
#include "ratelimit.h"

#define WALL0	(1764300000ull * 1000000000ull)
#define SEC	1000000000ull
#define MS	1000000ull

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };

	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
		abort();
	return a;
}

#define SA(a)	((const struct sockaddr *)&(a))

FIXTURE(cookie)
{
	struct psd_identity id_a, id_b;
	struct psd_noise_local a, b;
	struct psd_noise_peer a_peer_b, b_peer_a;
	struct psd_cookie_maker maker;		/* A's, for messages to B */
	struct psd_cookie_checker checker;	/* B's */
	struct psd_ratelimiter rl;		/* B's */
	struct psd_noise_handshake hs_a, hs_b;
	struct psd_msg_initiation init;
	struct sockaddr_in src;
	uint64_t now, wall;
};

static struct psd_noise_peer *lookup(void *ctx, const uint8_t *pub)
{
	struct psd_noise_peer *p = ctx;

	return sodium_memcmp(p->static_pub, pub, PSD_NOISE_KEY_LEN) ? NULL : p;
}

/* A's next initiation to B, macs added at self->now. */
static void new_initiation(struct _test_data_cookie *self)
{
	self->wall += SEC;
	if (psd_noise_create_initiation(&self->hs_a, &self->a,
					&self->a_peer_b, self->wall,
					&self->init))
		abort();
	psd_cookie_add_macs(&self->maker, (uint8_t *)&self->init,
			    sizeof(self->init), self->now);
}

FIXTURE_SETUP(cookie)
{
	uint8_t seed[PSD_SEED_LEN];

	ASSERT_EQ(0, psd_chunkhash_init());
	memset(seed, 0xaa, sizeof(seed));
	psd_identity_from_seed(seed, &self->id_a);
	memset(seed, 0xbb, sizeof(seed));
	psd_identity_from_seed(seed, &self->id_b);
	ASSERT_EQ(0, psd_noise_local_init(&self->a, &self->id_a));
	ASSERT_EQ(0, psd_noise_local_init(&self->b, &self->id_b));
	ASSERT_EQ(0, psd_noise_peer_init(&self->a_peer_b, &self->a,
					 self->id_b.pk));
	ASSERT_EQ(0, psd_noise_peer_init(&self->b_peer_a, &self->b,
					 self->id_a.pk));
	psd_cookie_maker_init(&self->maker, self->a_peer_b.static_pub);
	psd_cookie_checker_init(&self->checker, self->b.static_pub);
	ASSERT_EQ(0, psd_ratelimit_init(&self->rl, 0));
	self->src = v4("192.0.2.7", 7390);
	self->now = 5000 * SEC;
	self->wall = WALL0;
	new_initiation(self);
}

FIXTURE_TEARDOWN(cookie)
{
	psd_ratelimit_free(&self->rl);
	psd_cookie_checker_wipe(&self->checker);
	psd_cookie_maker_wipe(&self->maker);
}

static enum psd_admit admit(struct _test_data_cookie *self, const void *msg,
			    bool under_load)
{
	return psd_cookie_admit(&self->checker, &self->rl, msg,
				PSD_HANDSHAKE_LEN, SA(self->src), under_load,
				self->now);
}

/* B answers with a cookie reply, A takes the cookie from it. */
static int cookie_round_trip(struct _test_data_cookie *self)
{
	struct psd_msg_cookie_reply reply;

	if (psd_cookie_reply_create(&self->checker, &reply,
				    (const uint8_t *)&self->init,
				    sizeof(self->init), SA(self->src),
				    self->now))
		return -1;
	return psd_cookie_reply_consume(&self->maker, (const uint8_t *)&reply,
					sizeof(reply), self->now);
}

TEST_F(cookie, mac1_alone_is_processed_when_not_loaded)
{
	EXPECT_TRUE(sodium_is_zero(self->init.mac2, PSD_MAC_LEN));
	EXPECT_EQ(PSD_ADMIT_PROCESS, admit(self, &self->init, false));
	EXPECT_EQ(PSD_MAC_VALID_NO_COOKIE,
		  psd_cookie_validate(&self->checker,
				      (const uint8_t *)&self->init,
				      sizeof(self->init),
				      (const uint8_t *)"x", 1, self->now));
}

/* mac1 covers everything before it; mac2 is only looked at under load. */
TEST_F(cookie, every_changed_byte_before_mac2_is_dropped)
{
	size_t mac2 = offsetof(struct psd_msg_initiation, mac2);
	uint8_t msg[PSD_HANDSHAKE_LEN];

	for (size_t i = 0; i < mac2; i++) {
		memcpy(msg, &self->init, sizeof(msg));
		msg[i] ^= (uint8_t)(1u << (i % 8));
		ASSERT_EQ(PSD_ADMIT_DROP, admit(self, msg, false))
			TH_LOG("byte %zu changed, not dropped", i);
	}
	EXPECT_EQ(PSD_ADMIT_DROP, psd_cookie_admit(&self->checker, &self->rl,
			(const uint8_t *)&self->init, 63, SA(self->src), false,
			self->now));
}

/* A message sealed to someone else's key fails mac1 first. */
TEST_F(cookie, message_for_another_key_is_dropped)
{
	struct psd_cookie_checker other;

	psd_cookie_checker_init(&other, self->a.static_pub);
	EXPECT_EQ(PSD_ADMIT_DROP, psd_cookie_admit(&other, &self->rl,
			(const uint8_t *)&self->init, sizeof(self->init),
			SA(self->src), false, self->now));
}

TEST_F(cookie, under_load_cookie_then_retry_completes_the_handshake)
{
	struct psd_msg_response resp;
	struct psd_noise_keys ka, kb;
	struct psd_cookie_maker b_maker;
	struct psd_cookie_checker a_checker;

	ASSERT_EQ(PSD_ADMIT_SEND_COOKIE, admit(self, &self->init, true));
	ASSERT_EQ(0, cookie_round_trip(self));
	self->now += 100 * MS;			/* A's retry timer */
	new_initiation(self);
	EXPECT_FALSE(sodium_is_zero(self->init.mac2, PSD_MAC_LEN));
	ASSERT_EQ(PSD_ADMIT_PROCESS, admit(self, &self->init, true));

	/* The rest of the handshake, the response with its own macs. */
	ASSERT_EQ(0, psd_noise_consume_initiation(&self->hs_b, &self->b,
			lookup, &self->b_peer_a, (const uint8_t *)&self->init,
			sizeof(self->init), self->now));
	ASSERT_EQ(0, psd_noise_create_response(&self->hs_b, &resp));
	psd_cookie_maker_init(&b_maker, self->b_peer_a.static_pub);
	psd_cookie_add_macs(&b_maker, (uint8_t *)&resp, sizeof(resp),
			    self->now);
	psd_cookie_checker_init(&a_checker, self->a.static_pub);
	EXPECT_EQ(PSD_ADMIT_PROCESS, psd_cookie_admit(&a_checker, &self->rl,
			(const uint8_t *)&resp, sizeof(resp), SA(self->src),
			false, self->now));
	ASSERT_EQ(0, psd_noise_consume_response(&self->hs_a, &self->a,
			(const uint8_t *)&resp, sizeof(resp)));
	ASSERT_EQ(0, psd_noise_derive_keys(&self->hs_a, &ka));
	ASSERT_EQ(0, psd_noise_derive_keys(&self->hs_b, &kb));
	EXPECT_EQ(0, memcmp(ka.send.key, kb.recv.key, PSD_AEAD_KEY_LEN));
	psd_noise_keys_wipe(&ka);
	psd_noise_keys_wipe(&kb);
}

TEST_F(cookie, every_changed_mac2_byte_is_refused_under_load)
{
	uint8_t msg[PSD_HANDSHAKE_LEN];
	size_t mac2 = offsetof(struct psd_msg_initiation, mac2);

	ASSERT_EQ(0, cookie_round_trip(self));
	new_initiation(self);
	for (size_t i = mac2; i < sizeof(msg); i++) {
		memcpy(msg, &self->init, sizeof(msg));
		msg[i] ^= (uint8_t)(1u << (i % 8));
		ASSERT_EQ(PSD_ADMIT_SEND_COOKIE, admit(self, msg, true))
			TH_LOG("mac2 byte %zu changed, accepted", i);
	}
	EXPECT_EQ(PSD_ADMIT_PROCESS, admit(self, &self->init, true));
}

TEST_F(cookie, cookie_is_bound_to_the_source_address)
{
	ASSERT_EQ(0, cookie_round_trip(self));
	new_initiation(self);
	self->src = v4("192.0.2.7", 7391);		/* another port */
	EXPECT_EQ(PSD_ADMIT_SEND_COOKIE, admit(self, &self->init, true));
	self->src = v4("192.0.2.8", 7390);		/* another host */
	EXPECT_EQ(PSD_ADMIT_SEND_COOKIE, admit(self, &self->init, true));
	self->src = v4("192.0.2.7", 7390);
	EXPECT_EQ(PSD_ADMIT_PROCESS, admit(self, &self->init, true));
}

TEST_F(cookie, cookies_expire_with_the_secret)
{
	ASSERT_EQ(0, cookie_round_trip(self));
	self->now += PSD_COOKIE_SECRET_MAX_AGE_NS - PSD_COOKIE_LATENCY_NS - 1;
	new_initiation(self);
	EXPECT_FALSE(sodium_is_zero(self->init.mac2, PSD_MAC_LEN));
	EXPECT_EQ(PSD_ADMIT_PROCESS, admit(self, &self->init, true));
	/* The maker stops using it before the checker's secret changes. */
	self->now += 1;
	new_initiation(self);
	EXPECT_TRUE(sodium_is_zero(self->init.mac2, PSD_MAC_LEN));
	/* A new secret makes an old cookie useless. */
	self->now = 5000 * SEC;
	ASSERT_EQ(0, cookie_round_trip(self));
	new_initiation(self);
	self->now += PSD_COOKIE_SECRET_MAX_AGE_NS;
	EXPECT_EQ(PSD_ADMIT_SEND_COOKIE, admit(self, &self->init, true));
}

TEST_F(cookie, reply_answers_only_the_last_message_once)
{
	struct psd_msg_cookie_reply reply;
	uint8_t bad[sizeof(reply)], cid[PSD_CID_LEN];

	ASSERT_EQ(0, psd_cookie_reply_create(&self->checker, &reply,
			(const uint8_t *)&self->init, sizeof(self->init),
			SA(self->src), self->now));
	ASSERT_EQ(0, psd_cookie_reply_receiver((const uint8_t *)&reply,
					       sizeof(reply), cid));
	EXPECT_EQ(0, memcmp(cid, self->init.sender_cid, PSD_CID_LEN));
	for (size_t i = 0; i < sizeof(reply); i++) {
		memcpy(bad, &reply, sizeof(bad));
		bad[i] ^= 0x20;
		EXPECT_EQ(-EBADMSG, psd_cookie_reply_consume(&self->maker,
				bad, sizeof(bad), self->now))
			TH_LOG("reply byte %zu changed, accepted", i);
	}
	EXPECT_EQ(-EBADMSG, psd_cookie_reply_consume(&self->maker,
			(const uint8_t *)&reply, sizeof(reply) - 1, self->now));
	/* A newer message was sent: the reply answers the old one. */
	new_initiation(self);
	EXPECT_EQ(-EBADMSG, psd_cookie_reply_consume(&self->maker,
			(const uint8_t *)&reply, sizeof(reply), self->now));
	ASSERT_EQ(0, cookie_round_trip(self));
	EXPECT_EQ(-EBADMSG, cookie_round_trip(self));	/* replayed */
	EXPECT_EQ(-EBADMSG, psd_cookie_reply_create(&self->checker, &reply,
			(const uint8_t *)&self->init, 100, SA(self->src),
			self->now));
}

/* Under load, with valid cookies, one source gets its rate and burst. */
TEST_F(cookie, handshakes_per_source_per_second_are_bounded)
{
	struct sockaddr_in other = v4("198.51.100.1", 9);
	int accepted = 0;

	ASSERT_EQ(0, cookie_round_trip(self));
	new_initiation(self);
	for (int ms = 0; ms < 1000; ms++) {
		if (admit(self, &self->init, true) == PSD_ADMIT_PROCESS)
			accepted++;
		self->now += MS;
	}
	EXPECT_GE(accepted, PSD_RATELIMIT_PER_SECOND);
	EXPECT_LE(accepted, PSD_RATELIMIT_PER_SECOND + PSD_RATELIMIT_BURST);
	/* Empty the bucket; another port of the same host (with its own
	 * cookie) shares it, another host does not. */
	while (admit(self, &self->init, true) == PSD_ADMIT_PROCESS)
		;
	self->src.sin_port = htons(1);
	ASSERT_EQ(0, cookie_round_trip(self));
	new_initiation(self);
	EXPECT_EQ(PSD_ADMIT_DROP, admit(self, &self->init, true));
	self->src = other;
	ASSERT_EQ(0, cookie_round_trip(self));
	new_initiation(self);
	EXPECT_EQ(PSD_ADMIT_PROCESS, admit(self, &self->init, true));
}

TEST(ratelimit_burst_rate_and_refill)
{
	struct psd_ratelimiter rl;
	uint64_t now = 77 * SEC;
	int n = 0;

	ASSERT_EQ(0, psd_ratelimit_init(&rl, 64));
	while (psd_ratelimit_allow(&rl, "k", 1, now))
		n++;
	EXPECT_EQ(PSD_RATELIMIT_BURST, n);
	now += SEC / PSD_RATELIMIT_PER_SECOND - 1;
	EXPECT_FALSE(psd_ratelimit_allow(&rl, "k", 1, now));
	now += 1;
	EXPECT_TRUE(psd_ratelimit_allow(&rl, "k", 1, now));
	EXPECT_FALSE(psd_ratelimit_allow(&rl, "k", 1, now));
	/* A long pause refills the burst, no more. */
	now += 3600 * SEC;
	for (n = 0; psd_ratelimit_allow(&rl, "k", 1, now); n++)
		;
	EXPECT_EQ(PSD_RATELIMIT_BURST, n);
	EXPECT_FALSE(psd_ratelimit_allow(&rl, "", 0, now));
	EXPECT_FALSE(psd_ratelimit_allow(&rl, "0123456789abcdefg",
					 PSD_RATELIMIT_KEY_MAX + 1, now));
	psd_ratelimit_free(&rl);
	psd_ratelimit_free(&rl);	/* freed twice: harmless */
}

/* A full table refuses new sources; idle entries come back. */
TEST(ratelimit_table_is_bounded_and_entries_expire)
{
	struct psd_ratelimiter rl;
	uint64_t now = SEC, refill;
	uint32_t key;
	int admitted = 0;

	ASSERT_EQ(0, psd_ratelimit_init(&rl, 16));	/* 2 sets of 8 */
	for (key = 0; key < 1000; key++)
		if (psd_ratelimit_allow(&rl, &key, sizeof(key), now))
			admitted++;
	EXPECT_EQ(16, admitted);
	/* Once its bucket is full again (each spent one token), an entry
	 * is free for another source. */
	refill = SEC / PSD_RATELIMIT_PER_SECOND;
	key = 5000;
	EXPECT_FALSE(psd_ratelimit_allow(&rl, &key, sizeof(key),
					 now + refill - 1));
	EXPECT_TRUE(psd_ratelimit_allow(&rl, &key, sizeof(key), now + refill));
	psd_ratelimit_free(&rl);
	EXPECT_EQ(-EINVAL, psd_ratelimit_init(&rl, (size_t)1 << 40));
}

TEST(source_and_ratelimit_keys_of_addresses)
{
	struct sockaddr_in a4 = v4("192.0.2.7", 0x1234);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
				   .sin6_port = htons(0x1234) };
	struct sockaddr_in6 m6 = a6;
	struct sockaddr un = { .sa_family = AF_UNIX };
	uint8_t s4[PSD_SOURCE_MAX], s6[PSD_SOURCE_MAX];
	uint8_t k4[PSD_RATELIMIT_KEY_MAX], k6[PSD_RATELIMIT_KEY_MAX];

	ASSERT_EQ(1, inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6",
			       &a6.sin6_addr));
	ASSERT_EQ(1, inet_pton(AF_INET6, "::ffff:192.0.2.7", &m6.sin6_addr));
	/* A v4 peer is the same source on a v4 or a dual-stack socket. */
	ASSERT_EQ(0, psd_cookie_source(SA(a4), s4));
	ASSERT_EQ(0, psd_cookie_source(SA(m6), s6));
	EXPECT_EQ(0, memcmp(s4, s6, sizeof(s4)));
	EXPECT_EQ(0x12, s4[16]);
	EXPECT_EQ(0x34, s4[17]);
	EXPECT_EQ(4, psd_ratelimit_key(SA(a4), k4));
	EXPECT_EQ(4, psd_ratelimit_key(SA(m6), k6));
	EXPECT_EQ(0, memcmp(k4, k6, 4));
	EXPECT_EQ(192, k4[0]);
	/* IPv6: the /64. */
	EXPECT_EQ(8, psd_ratelimit_key(SA(a6), k6));
	EXPECT_EQ(0x20, k6[0]);
	EXPECT_EQ(0x02, k6[7]);
	EXPECT_EQ(-EAFNOSUPPORT, psd_cookie_source(&un, s4));
	EXPECT_EQ(-EAFNOSUPPORT, psd_ratelimit_key(&un, k4));
}

TEST_HARNESS_MAIN
