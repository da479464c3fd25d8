// SPDX-License-Identifier: GPL-2.0
/*
 * The UDP socket in the io_uring loop (udp.h) over loopback: a socket
 * sends bursts of datagrams to itself (127.0.0.1 and ::1), through the
 * multishot receive and through the single-shot fallback, with GSO and
 * GRO on and off; every payload byte, every size, the order, the source
 * address and the counters are checked. A datagram larger than a buffer
 * is counted as truncated and never delivered; two buffers for a burst of
 * 32 make the receive run out (-ENOBUFS) and re-arm without losing any.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "loop.h"
#include "udp.h"

#define MAX_DGRAMS	4096

struct ctx {
	struct psd_loop *loop;
	struct psd_udp *u;
	struct sockaddr_in6 self;
	size_t sizes[MAX_DGRAMS];
	size_t n_sent, n_got, want;
	uint64_t bytes_sent;
	uint64_t bad_bytes, bad_size, bad_src;
	struct __kernel_timespec ts;
	uint16_t run_gen;
	bool timed_out;
};

static uint8_t pattern(size_t i, size_t j)
{
	return (uint8_t)(i * 31 + j * 7 + (j >> 8));
}

static void on_recv(void *vctx, const uint8_t *d, size_t len,
		    const struct sockaddr *src, socklen_t src_len)
{
	struct ctx *c = vctx;
	const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
	size_t i = c->n_got++;

	if (src_len != sizeof(*s) || s->sin6_port != c->self.sin6_port ||
	    memcmp(&s->sin6_addr, &c->self.sin6_addr, sizeof(s->sin6_addr)))
		c->bad_src++;
	if (i >= c->n_sent || len != c->sizes[i]) {
		c->bad_size++;
	} else {
		for (size_t j = 0; j < len; j++)
			if (d[j] != pattern(i, j))
				c->bad_bytes++;
	}
	if (c->n_got >= c->want)
		psd_loop_stop(c->loop);
}

static void on_timer(void *vctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct ctx *c = vctx;

	(void)res;
	(void)flags;
	if (ud.gen != c->run_gen)
		return;		/* a finished run's guard */
	c->timed_out = true;
	psd_loop_stop(c->loop);
}

static int setup(struct ctx *c, const char *listen, bool gso, bool gro,
		 bool single_shot, unsigned int bufs, unsigned int buf_size)
{
	struct psd_udp_config cfg = {
		.listen = listen, .gso = gso, .gro = gro,
		.single_shot = single_shot, .bufs = bufs,
		.buf_size = buf_size, .rcvbuf = 8 << 20,
		.recv = on_recv, .ctx = c,
	};
	char err[256];
	int r;

	memset(c, 0, sizeof(*c));
	r = psd_loop_init(&c->loop, 256);
	if (r)
		return r;
	psd_loop_set_handler(c->loop, PSD_OP_TIMER, on_timer, c);
	r = psd_udp_open(&c->u, c->loop, &cfg, err, sizeof(err));
	if (r) {
		fprintf(stderr, "# %s\n", err);
		return r;
	}
	return psd_udp_local(c->u, &c->self);
}

static void teardown(struct ctx *c)
{
	psd_loop_quiesce(c->loop, 2000);
	psd_udp_close(c->u);
	psd_loop_uninit(c->loop);
}

static int send_one_as(struct ctx *c, size_t len, bool alone)
{
	uint8_t d[PSD_UDP_DGRAM_MAX];
	size_t i = c->n_sent;
	int r;

	if (i >= MAX_DGRAMS)
		return -E2BIG;
	for (size_t j = 0; j < len; j++)
		d[j] = pattern(i, j);
	r = (alone ? psd_udp_send_alone : psd_udp_send)(c->u,
		(struct sockaddr *)&c->self, sizeof(c->self), d, len);
	if (r)
		return r;
	c->sizes[c->n_sent++] = len;
	c->bytes_sent += len;
	return 0;
}

static int send_one(struct ctx *c, size_t len)
{
	return send_one_as(c, len, false);
}

/* Flushes and runs the loop until `want` datagrams came (or 5 s). */
static int run_until(struct ctx *c, size_t want)
{
	struct io_uring_sqe *sqe;

	psd_udp_flush(c->u);
	c->want = want;
	c->ts = (struct __kernel_timespec){ .tv_sec = 5 };
	sqe = psd_loop_sqe(c->loop);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_timeout(sqe, &c->ts, 0, 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_TIMER,
					   .gen = ++c->run_gen });
	return psd_loop_run(c->loop);
}

/* rounds x per_round datagrams, sizes from size(i), each round awaited. */
static void bursts(struct __test_metadata *_metadata, struct ctx *c,
		   int rounds, int per_round, size_t (*size)(size_t i))
{
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < per_round; k++)
			ASSERT_EQ(0, send_one(c, size(c->n_sent)));
		ASSERT_EQ(0, run_until(c, c->n_sent));
		ASSERT_FALSE(c->timed_out) TH_LOG("got %zu of %zu",
						  c->n_got, c->n_sent);
	}
	EXPECT_EQ(c->n_sent, c->n_got);
	EXPECT_EQ(0, c->bad_bytes);
	EXPECT_EQ(0, c->bad_size);
	EXPECT_EQ(0, c->bad_src);
	EXPECT_EQ(c->n_sent, psd_udp_stats(c->u)->rx_datagrams);
	EXPECT_EQ(c->bytes_sent, psd_udp_stats(c->u)->rx_bytes);
	EXPECT_EQ(c->n_sent, psd_udp_stats(c->u)->tx_datagrams);
	EXPECT_EQ(c->bytes_sent, psd_udp_stats(c->u)->tx_bytes);
	EXPECT_EQ(0, psd_udp_stats(c->u)->tx_errors);
	EXPECT_EQ(0, psd_udp_stats(c->u)->rx_truncated);
	EXPECT_EQ(0, psd_udp_stats(c->u)->rx_dropped);
}

/* 1..1400 bytes, all different neighbours: nothing can join a GSO batch
 * except by chance of equal sizes. */
static size_t mixed_size(size_t i)
{
	return 1 + (i * 389) % 1400;
}

/* Runs of 16 x 1200 bytes then a 700-byte tail: GSO batches. */
static size_t batch_size(size_t i)
{
	return i % 17 == 16 ? 700 : 1200;
}

TEST(ipv6_mixed_sizes_multishot_no_gso)
{
	struct ctx c;

	ASSERT_EQ(0, setup(&c, "::1", false, false, false, 0, 0));
	EXPECT_TRUE(psd_udp_multishot(c.u));
	EXPECT_FALSE(psd_udp_gso(c.u));
	bursts(_metadata, &c, 10, 32, mixed_size);
	EXPECT_EQ(0, psd_udp_stats(c.u)->tx_gso_batches);
	teardown(&c);
}

TEST(ipv4_gso_and_gro)
{
	struct ctx c;

	ASSERT_EQ(0, setup(&c, "127.0.0.1", true, true, false, 64, 0));
	EXPECT_EQ(AF_INET6, c.self.sin6_family);
	EXPECT_TRUE(IN6_IS_ADDR_V4MAPPED(&c.self.sin6_addr));
	bursts(_metadata, &c, 8, 68, batch_size);
	if (psd_udp_gso(c.u)) {
		EXPECT_GE(psd_udp_stats(c.u)->tx_gso_batches, 8 * 4);
	} else {
		TH_LOG("no UDP GSO on this kernel");
	}
	if (psd_udp_gro(c.u)) {
		EXPECT_GE(psd_udp_stats(c.u)->rx_gro_batches, 1);
	}
	TH_LOG("GSO %s: %llu batches; GRO %s: %llu batches",
	       psd_udp_gso(c.u) ? "on" : "off",
	       (unsigned long long)psd_udp_stats(c.u)->tx_gso_batches,
	       psd_udp_gro(c.u) ? "on" : "off",
	       (unsigned long long)psd_udp_stats(c.u)->rx_gro_batches);
	teardown(&c);
}

/* A datagram sent alone (a path MTU probe) joins no batch and ends the
 * one before it: 3 + 1 + 3 equal datagrams are two GSO sends of 3. */
TEST(send_alone_is_never_batched)
{
	struct ctx c;

	ASSERT_EQ(0, setup(&c, "::1", true, false, false, 0, 0));
	if (!psd_udp_gso(c.u)) {
		teardown(&c);
		SKIP(return, "no UDP GSO on this kernel");
	}
	for (int i = 0; i < 7; i++)
		ASSERT_EQ(0, send_one_as(&c, 1200, i == 3));
	ASSERT_EQ(0, run_until(&c, 7));
	ASSERT_FALSE(c.timed_out);
	EXPECT_EQ(7, c.n_got);
	EXPECT_EQ(0, c.bad_bytes + c.bad_size + c.bad_src);
	EXPECT_EQ(2, psd_udp_stats(c.u)->tx_gso_batches);
	EXPECT_EQ(7, psd_udp_stats(c.u)->tx_datagrams);
	teardown(&c);
}

TEST(ipv6_gso_without_gro)
{
	struct ctx c;

	ASSERT_EQ(0, setup(&c, "::1", true, false, false, 0, 0));
	bursts(_metadata, &c, 8, 68, batch_size);
	EXPECT_EQ(0, psd_udp_stats(c.u)->rx_gro_batches);
	teardown(&c);
}

TEST(single_shot_fallback)
{
	struct ctx c;

	ASSERT_EQ(0, setup(&c, "::1", true, false, true, 0, 0));
	EXPECT_FALSE(psd_udp_multishot(c.u));
	bursts(_metadata, &c, 4, 32, mixed_size);
	bursts(_metadata, &c, 4, 68, batch_size);
	teardown(&c);
}

/* A 1000-byte datagram into 512-byte buffers, then one that fits. */
static void truncated_case(struct __test_metadata *_metadata, bool single)
{
	struct ctx c;

	ASSERT_EQ(0, setup(&c, "::1", false, false, single, 0, 512));
	ASSERT_EQ(0, send_one(&c, 1000));
	c.n_got = 1;		/* the first is not to be delivered */
	ASSERT_EQ(0, send_one(&c, 100));
	ASSERT_EQ(0, run_until(&c, 2));
	ASSERT_FALSE(c.timed_out);
	EXPECT_EQ(1, psd_udp_stats(c.u)->rx_truncated);
	EXPECT_EQ(1, psd_udp_stats(c.u)->rx_datagrams);
	EXPECT_EQ(100, psd_udp_stats(c.u)->rx_bytes);
	EXPECT_EQ(0, c.bad_bytes + c.bad_size + c.bad_src);
	teardown(&c);
}

TEST(truncated_is_counted_not_delivered)
{
	truncated_case(_metadata, false);
	truncated_case(_metadata, true);
}

TEST(out_of_buffers_rearms_and_loses_nothing)
{
	struct ctx c;

	ASSERT_EQ(0, setup(&c, "::1", false, false, false, 2, 0));
	bursts(_metadata, &c, 4, 32, mixed_size);
	TH_LOG("-ENOBUFS %llu times",
	       (unsigned long long)psd_udp_stats(c.u)->rx_no_buffer);
	teardown(&c);
}

TEST(bad_listen_address_and_sends)
{
	struct psd_udp_config cfg = { .listen = "::1::2", .recv = on_recv };
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	uint8_t d[16] = { 0 };
	struct psd_udp *u;
	struct ctx c;
	char err[256];

	ASSERT_EQ(0, psd_loop_init(&c.loop, 16));
	EXPECT_EQ(-EINVAL, psd_udp_open(&u, c.loop, &cfg, err, sizeof(err)));
	EXPECT_STREQ("listen address '::1::2' is not an IPv4 or IPv6 literal",
		     err);
	psd_loop_uninit(c.loop);

	ASSERT_EQ(0, setup(&c, "::1", false, false, false, 0, 0));
	EXPECT_EQ(-EINVAL, psd_udp_send(c.u, (struct sockaddr *)&a4,
					sizeof(a4), d, sizeof(d)));
	EXPECT_EQ(-EINVAL, psd_udp_send(c.u, (struct sockaddr *)&c.self,
					sizeof(c.self), d, 0));
	/* Without GSO a slot holds one datagram: 64 fill the table. */
	for (int i = 0; i < PSD_UDP_TX_SLOTS; i++)
		ASSERT_EQ(0, send_one(&c, 10));
	EXPECT_EQ(-ENOBUFS, send_one(&c, 10));
	EXPECT_EQ(1, psd_udp_stats(c.u)->tx_no_slot);
	ASSERT_EQ(0, run_until(&c, PSD_UDP_TX_SLOTS));
	EXPECT_EQ(PSD_UDP_TX_SLOTS, c.n_got);
	EXPECT_EQ(0, c.bad_bytes + c.bad_size + c.bad_src);
	teardown(&c);
}

TEST_HARNESS_MAIN
