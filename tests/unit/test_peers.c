// SPDX-License-Identifier: GPL-2.0
/*
 * The peer table (peers.h): resolving literals and names, lookups by key
 * and address, its bounds and refusals, loading a parsed configuration,
 * and the trust rule end to end: A and B, each configured with the
 * other, complete a handshake through their tables; C, which knows B but
 * is not configured at B, gets no answer at all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "config.h"
#include "peers.h"

#define SEC	1000000000ull
#define WALL	(1764300000ull * SEC)

struct sent {
	int count;
	uint8_t d[PSD_HANDSHAKE_LEN];
	size_t len;
	struct sockaddr_in6 to;
	int events;
};

static void io_send(void *ctx, struct psd_peer *peer, const struct sockaddr *to,
		    socklen_t to_len, const uint8_t *d, size_t len)
{
	struct sent *s = ctx;

	(void)peer;
	s->count++;
	if (len <= sizeof(s->d)) {
		memcpy(s->d, d, len);
		s->len = len;
	}
	if (to_len == sizeof(s->to))
		memcpy(&s->to, to, sizeof(s->to));
}

static void io_event(void *ctx, struct psd_peer *peer, enum psd_peer_event ev)
{
	struct sent *s = ctx;

	(void)peer;
	if (ev == PSD_PEER_KEYS_NEW)
		s->events++;
}

static const struct psd_peers_io io = { .send = io_send, .event = io_event };

/* A distinct identity per n. */
static void identity(unsigned int n, struct psd_identity *ret)
{
	uint8_t seed[PSD_SEED_LEN];

	memset(seed, 0x5a, sizeof(seed));
	seed[0] = (uint8_t)n;
	seed[1] = (uint8_t)(n >> 8);
	psd_identity_from_seed(seed, ret);
}

static struct sockaddr_in6 v6(const char *addr, uint16_t port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

	a.sin6_port = htons(port);
	if (inet_pton(AF_INET6, addr, &a.sin6_addr) != 1)
		abort();
	return a;
}

static bool same_addr(const struct sockaddr_in6 *x, const struct sockaddr_in6 *y)
{
	return x->sin6_family == y->sin6_family &&
	       x->sin6_port == y->sin6_port &&
	       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
}

TEST(resolve_literals_and_names)
{
	struct psd_peer_spec spec = { .port = 7390 };
	struct sockaddr_in6 a, want;
	char err[256];

	ASSERT_EQ(0, psd_chunkhash_init());
	strcpy(spec.host, "192.0.2.7");
	ASSERT_EQ(0, psd_peers_resolve(&spec, &a, err, sizeof(err)));
	want = v6("::ffff:192.0.2.7", 7390);
	EXPECT_TRUE(same_addr(&want, &a));

	strcpy(spec.host, "2001:db8::1");
	ASSERT_EQ(0, psd_peers_resolve(&spec, &a, err, sizeof(err)));
	want = v6("2001:db8::1", 7390);
	EXPECT_TRUE(same_addr(&want, &a));

	/* /etc/hosts: no DNS server needed. */
	strcpy(spec.host, "localhost");
	ASSERT_EQ(0, psd_peers_resolve(&spec, &a, err, sizeof(err)));
	EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&a.sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr) &&
		     a.sin6_addr.s6_addr[12] == 127));
	EXPECT_EQ(htons(7390), a.sin6_port);

	strcpy(spec.host, "no-such-host.invalid");
	EXPECT_EQ(-ENOENT, psd_peers_resolve(&spec, &a, err, sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "no-such-host.invalid: ", 22))
		TH_LOG("%s", err);
}

TEST(add_lookup_and_bounds)
{
	struct psd_identity me, other;
	struct sockaddr_in6 a = v6("2001:db8::7", 1000);
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct psd_peers t;
	struct psd_peer *p, *q;
	struct sent s = { 0 };
	uint8_t key[PSD_PUBKEY_LEN];
	size_t n;

	ASSERT_EQ(0, psd_chunkhash_init());
	identity(1, &me);
	identity(2, &other);
	ASSERT_EQ(0, psd_peers_init(&t, &me, &io, &s, WALL, 1));
	ASSERT_EQ(0, psd_peers_add(&t, other.pk, (struct sockaddr *)&a,
				   sizeof(a), &p));
	EXPECT_EQ(p, psd_peers_by_key(&t, other.pk));
	EXPECT_EQ(p, psd_peers_by_addr(&t, (struct sockaddr *)&a, sizeof(a)));
	a.sin6_port = htons(1001);
	EXPECT_EQ(NULL, psd_peers_by_addr(&t, (struct sockaddr *)&a,
					  sizeof(a)));
	EXPECT_EQ(NULL, psd_peers_by_key(&t, me.pk));
	EXPECT_EQ(-EEXIST, psd_peers_add(&t, other.pk, (struct sockaddr *)&a,
					 sizeof(a), NULL));
	EXPECT_EQ(-EINVAL, psd_peers_add(&t, me.pk, (struct sockaddr *)&a,
					 sizeof(a), NULL));

	/* IPv4 is kept v4-mapped, and found either way. */
	a4.sin_port = htons(9);
	a4.sin_addr.s_addr = htonl(0xc0000209);
	identity(3, &other);
	ASSERT_EQ(0, psd_peers_add(&t, other.pk, (struct sockaddr *)&a4,
				   sizeof(a4), &q));
	a = v6("::ffff:192.0.2.9", 9);
	EXPECT_EQ(q, psd_peers_by_addr(&t, (struct sockaddr *)&a, sizeof(a)));
	EXPECT_EQ(q, psd_peers_by_addr(&t, (struct sockaddr *)&a4,
				       sizeof(a4)));

	/* Full at PSD_PEERS_MAX; every slot keeps its key. */
	for (n = t.n; n < PSD_PEERS_MAX; n++) {
		identity(10 + (unsigned int)n, &other);
		ASSERT_EQ(0, psd_peers_add(&t, other.pk, (struct sockaddr *)&a,
					   sizeof(a), NULL));
	}
	identity(9, &other);
	EXPECT_EQ(-E2BIG, psd_peers_add(&t, other.pk, (struct sockaddr *)&a,
					sizeof(a), NULL));
	EXPECT_EQ(PSD_PEERS_MAX, t.n);
	identity(10 + PSD_PEERS_MAX - 1, &other);
	EXPECT_EQ(&t.peers[PSD_PEERS_MAX - 1], psd_peers_by_key(&t, other.pk));
	memset(key, 0, sizeof(key));
	EXPECT_EQ(NULL, psd_peers_by_key(&t, key));
	EXPECT_EQ(UINT64_MAX, psd_peers_next_deadline(&t));
	psd_peers_free(&t);
	psd_identity_wipe(&me);
}

TEST(load_from_config_all_or_nothing)
{
	struct psd_identity me, b, c;
	char text[512], hb[65], hc[65], err[256];
	struct psd_config cfg;
	struct psd_peers t;
	struct sent s = { 0 };
	struct sockaddr_in6 want;

	ASSERT_EQ(0, psd_chunkhash_init());
	identity(1, &me);
	identity(2, &b);
	identity(3, &c);
	psd_pubkey_format(b.pk, hb);
	psd_pubkey_format(c.pk, hc);
	snprintf(text, sizeof(text),
		 "[peer]\npeer = [::1]:7390 %s\npeer = 127.0.0.1:7391 %s\n",
		 hb, hc);
	ASSERT_EQ(0, psd_config_parse(text, strlen(text), "t.conf", &cfg, err,
				      sizeof(err)));
	ASSERT_EQ(0, psd_peers_init(&t, &me, &io, &s, WALL, 1));
	ASSERT_EQ(0, psd_peers_load(&t, &cfg, err, sizeof(err)));
	ASSERT_EQ(2, t.n);
	want = v6("::1", 7390);
	EXPECT_EQ(psd_peers_by_key(&t, b.pk),
		  psd_peers_by_addr(&t, (struct sockaddr *)&want,
				    sizeof(want)));
	want = v6("::ffff:127.0.0.1", 7391);
	EXPECT_EQ(psd_peers_by_key(&t, c.pk),
		  psd_peers_by_addr(&t, (struct sockaddr *)&want,
				    sizeof(want)));
	psd_config_free(&cfg);

	/* Our own key among them: the file is refused, nothing added. */
	psd_peers_free(&t);
	ASSERT_EQ(0, psd_peers_init(&t, &me, &io, &s, WALL, 1));
	psd_pubkey_format(me.pk, hc);
	snprintf(text, sizeof(text),
		 "[peer]\npeer = [::1]:7390 %s\npeer = [::1]:7391 %s\n", hb,
		 hc);
	ASSERT_EQ(0, psd_config_parse(text, strlen(text), "t.conf", &cfg, err,
				      sizeof(err)));
	EXPECT_EQ(-EINVAL, psd_peers_load(&t, &cfg, err, sizeof(err)));
	EXPECT_STREQ("peer [::1]:7391: not a usable key (our own, or not a curve point)",
		     err);
	EXPECT_EQ(0, t.n);
	psd_config_free(&cfg);
	psd_peers_free(&t);
	psd_identity_wipe(&me);
}

/* Hands the last datagram s saw to table t, as from `from`. */
static int pass(struct psd_peers *t, struct sent *s,
		const struct sockaddr_in6 *from, uint64_t now)
{
	uint8_t out[PSD_HANDSHAKE_LEN];
	struct psd_peer *peer;
	size_t len;

	return psd_peers_receive(t, s->d, s->len, (const struct sockaddr *)from,
				 sizeof(*from), out, sizeof(out), &len, &peer,
				 now);
}

TEST(only_configured_keys_complete_a_handshake)
{
	struct sockaddr_in6 aa = v6("::1", 1), ab = v6("::1", 2),
			    ac = v6("::1", 3);
	struct psd_identity a, b, c;
	struct psd_peers ta, tb, tc;
	struct sent sa = { 0 }, sb = { 0 }, sc = { 0 };
	struct psd_peer *a_b, *c_b;
	uint64_t now = 5 * SEC;

	ASSERT_EQ(0, psd_chunkhash_init());
	identity(1, &a);
	identity(2, &b);
	identity(3, &c);
	ASSERT_EQ(0, psd_peers_init(&ta, &a, &io, &sa, WALL, 1));
	ASSERT_EQ(0, psd_peers_init(&tb, &b, &io, &sb, WALL, 2));
	ASSERT_EQ(0, psd_peers_init(&tc, &c, &io, &sc, WALL, 3));
	ASSERT_EQ(0, psd_peers_add(&ta, b.pk, (struct sockaddr *)&ab,
				   sizeof(ab), &a_b));
	ASSERT_EQ(0, psd_peers_add(&tb, a.pk, (struct sockaddr *)&aa,
				   sizeof(aa), NULL));
	ASSERT_EQ(0, psd_peers_add(&tc, b.pk, (struct sockaddr *)&ab,
				   sizeof(ab), &c_b));

	/* A -> B: initiation, response, A's keepalive confirms B. */
	psd_peer_connect(a_b, now);
	ASSERT_EQ(1, sa.count);
	EXPECT_TRUE(same_addr(&ab, &sa.to));
	EXPECT_EQ(0, pass(&tb, &sa, &aa, now));
	ASSERT_EQ(1, sb.count);
	EXPECT_TRUE(same_addr(&aa, &sb.to));
	EXPECT_EQ(0, pass(&ta, &sb, &ab, now));
	EXPECT_EQ(1, sa.events);
	EXPECT_EQ(2, sa.count);
	EXPECT_EQ(1, pass(&tb, &sa, &aa, now));
	EXPECT_EQ(1, sb.events);

	/* C -> B: B does not know C's key; no answer, no state. */
	psd_peer_connect(c_b, now);
	ASSERT_EQ(1, sc.count);
	EXPECT_EQ(-ENOKEY, pass(&tb, &sc, &ac, now));
	EXPECT_EQ(1, sb.count);
	EXPECT_EQ(1, tb.node.stats.handshake_refused);

	/* Timers run through the table: C retries after about 5 s. */
	EXPECT_GE(psd_peers_next_deadline(&tc), now + PSD_REKEY_TIMEOUT);
	EXPECT_LT(psd_peers_next_deadline(&tc),
		  now + PSD_REKEY_TIMEOUT + PSD_PEER_RETRY_JITTER);
	psd_peers_on_timer(&tc, psd_peers_next_deadline(&tc));
	EXPECT_EQ(2, sc.count);

	psd_peers_free(&ta);
	psd_peers_free(&tb);
	psd_peers_free(&tc);
	psd_identity_wipe(&a);
	psd_identity_wipe(&b);
	psd_identity_wipe(&c);
}

/* n fresh initiations of c_b, 100 us apart, each from another port. */
static void flood_from(struct psd_peers *tb, struct psd_peer *c_b,
		       struct sent *sc, struct sockaddr_in6 *ac, int n,
		       uint64_t now)
{
	for (int i = 0; i < n; i++) {
		psd_peer_drop_session(c_b);
		psd_peer_connect(c_b, now);
		ac->sin6_port = htons((uint16_t)(1000 + i));
		pass(tb, sc, ac, now + (uint64_t)i * 100000);
	}
}

/*
 * A flood of initiations from a stranger that knows B's key (so mac1 is
 * right) and spoofs 300 source ports: B spends Diffie-Hellman on the first
 * PSD_PEERS_LOAD_MAX of a window only, answers the rest with cookie
 * replies, and meanwhile a configured peer still gets in by retrying with
 * its cookie. A second after the flood, B is no longer under load.
 */
TEST(handshake_flood_turns_to_cookies)
{
	struct sockaddr_in6 aa = v6("::1", 1), ab = v6("::1", 2),
			    ac = v6("::1", 3);
	struct psd_identity a, b, c;
	struct psd_peers ta, tb, tc;
	struct sent sa = { 0 }, sb = { 0 }, sc = { 0 }, retry;
	struct psd_peer *a_b, *c_b;
	uint64_t now = 5 * SEC;
	int flood = 300;

	ASSERT_EQ(0, psd_chunkhash_init());
	identity(1, &a);
	identity(2, &b);
	identity(3, &c);
	ASSERT_EQ(0, psd_peers_init(&ta, &a, &io, &sa, WALL, 1));
	ASSERT_EQ(0, psd_peers_init(&tb, &b, &io, &sb, WALL, 2));
	ASSERT_EQ(0, psd_peers_init(&tc, &c, &io, &sc, WALL, 3));
	ASSERT_EQ(0, psd_peers_add(&ta, b.pk, (struct sockaddr *)&ab,
				   sizeof(ab), &a_b));
	ASSERT_EQ(0, psd_peers_add(&tb, a.pk, (struct sockaddr *)&aa,
				   sizeof(aa), NULL));
	ASSERT_EQ(0, psd_peers_add(&tc, b.pk, (struct sockaddr *)&ab,
				   sizeof(ab), &c_b));

	flood_from(&tb, c_b, &sc, &ac, flood, now);
	EXPECT_EQ(PSD_PEERS_LOAD_MAX, tb.node.stats.handshake_refused);
	EXPECT_EQ(flood - PSD_PEERS_LOAD_MAX, tb.node.stats.cookies_sent);
	EXPECT_EQ(flood - PSD_PEERS_LOAD_MAX, sb.count);
	now += (uint64_t)flood * 100000;
	ASSERT_TRUE(psd_peers_under_load(&tb, now));

	/* A during the flood: a cookie first, then its retry gets in. */
	sb.count = 0;
	psd_peer_connect(a_b, now);
	EXPECT_EQ(0, pass(&tb, &sa, &aa, now));
	ASSERT_EQ(1, sb.count);
	EXPECT_EQ(PSD_MSG_COOKIE_REPLY, sb.d[0]);
	EXPECT_EQ(0, pass(&ta, &sb, &ab, now));
	EXPECT_EQ(1, a_b->stats.cookies_received);
	now = psd_peers_next_deadline(&ta);
	psd_peers_on_timer(&ta, now);
	ASSERT_EQ(2, sa.count);
	/* The flood goes on: B is still under load when the retry comes. */
	memcpy(&retry, &sa, sizeof(retry));
	sb.count = 0;
	flood_from(&tb, c_b, &sc, &ac, PSD_PEERS_LOAD_MAX + 1, now);
	ASSERT_TRUE(psd_peers_under_load(&tb, now));
	EXPECT_EQ(0, pass(&tb, &retry, &aa, now));
	ASSERT_EQ(2, sb.count);
	EXPECT_EQ(PSD_MSG_RESPONSE, sb.d[0]);
	EXPECT_EQ(0, pass(&ta, &sb, &ab, now));
	EXPECT_TRUE(psd_peer_can_send(a_b, now));

	/* Load ends a second after the last window over the limit. */
	EXPECT_FALSE(psd_peers_under_load(&tb, now + PSD_PEERS_LOAD_HOLD));
	psd_peers_free(&ta);
	psd_peers_free(&tb);
	psd_peers_free(&tc);
	psd_identity_wipe(&a);
	psd_identity_wipe(&b);
	psd_identity_wipe(&c);
}

TEST_HARNESS_MAIN
