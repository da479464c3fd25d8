// SPDX-License-Identifier: GPL-2.0
/*
 * Path MTU discovery's state machine (pmtu.h) without a network: the
 * sizes a search tries against paths of every MTU from 1200 to 1500 (what
 * it settles at, how many probes it spends), retries of a lost probe, the
 * raise timer, black hole detection and what does not trigger it, and a
 * caller's buffer lowering the maximum; and in loss recovery, a lost probe
 * is no congestion event. Whole transfers over the simulator
 * are in test_transport.c ("path MTU").
 */
#include "kselftest_harness.h"

#include "conn.h"
#include "pmtu.h"

#define MS	PSD_MSEC
#define SEC	PSD_NSEC

/*
 * Runs a search over a path that carries mtu bytes, one probe per step of
 * 10 ms, until it completes (or gives up after a bound): the probes spent.
 */
static unsigned int search_path(struct psd_pmtu *pm, size_t mtu,
				uint64_t *now)
{
	unsigned int probes = 0;
	size_t size;

	while ((size = psd_pmtu_probe_size(pm)) && probes < 100) {
		psd_pmtu_on_probe_sent(pm, size);
		/* A second probe never goes out while one is in flight. */
		if (psd_pmtu_probe_size(pm))
			return 1000;
		*now += 10 * MS;
		if (size <= mtu)
			psd_pmtu_on_acked(pm, size, true, *now - 10 * MS, *now);
		else
			psd_pmtu_on_lost(pm, size, true, *now - 10 * MS, *now);
		probes++;
	}
	return probes;
}

TEST(disabled_at_the_base)
{
	struct psd_pmtu pm;

	psd_pmtu_init(&pm, 0);
	EXPECT_EQ(PSD_PMTU_DISABLED, pm.state);
	EXPECT_EQ(PSD_DGRAM_MIN, psd_pmtu_size(&pm));
	EXPECT_EQ(0, psd_pmtu_probe_size(&pm));
	EXPECT_EQ(UINT64_MAX, psd_pmtu_timer(&pm));
	psd_pmtu_init(&pm, PSD_DGRAM_MIN);
	EXPECT_EQ(PSD_PMTU_DISABLED, pm.state);
	/* Losses of any size change nothing. */
	for (int i = 0; i < 20; i++)
		psd_pmtu_on_lost(&pm, 1400, false, i, i);
	psd_pmtu_on_acked(&pm, 1200, false, 30, 30);
	EXPECT_EQ(PSD_DGRAM_MIN, psd_pmtu_size(&pm));
	EXPECT_EQ(0, pm.st.black_holes);
}

TEST(first_probe_is_the_maximum)
{
	struct psd_pmtu pm;
	uint64_t now = 0;

	psd_pmtu_init(&pm, PSD_DGRAM_MAX);
	EXPECT_EQ(PSD_PMTU_SEARCHING, pm.state);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_probe_size(&pm));
	/* A path that carries it: one probe, done, raise timer armed. */
	EXPECT_EQ(1, search_path(&pm, 1500, &now));
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm.state);
	EXPECT_EQ(now + PSD_PMTU_RAISE_TIMER, psd_pmtu_timer(&pm));
	EXPECT_EQ(1, pm.st.probes_sent);
	EXPECT_EQ(1, pm.st.probes_acked);
}

TEST(every_mtu_from_1200_to_1500)
{
	size_t mtu;

	for (mtu = PSD_DGRAM_MIN; mtu <= 1500; mtu++) {
		struct psd_pmtu pm;
		uint64_t now = 0;
		unsigned int probes;
		size_t want = mtu < PSD_DGRAM_MAX ? mtu : PSD_DGRAM_MAX;

		psd_pmtu_init(&pm, PSD_DGRAM_MAX);
		probes = search_path(&pm, mtu, &now);
		ASSERT_EQ(PSD_PMTU_COMPLETE, pm.state) TH_LOG("mtu %zu", mtu);
		/* Never above the path, never more than a step below. */
		EXPECT_LE(psd_pmtu_size(&pm), want) TH_LOG("mtu %zu", mtu);
		EXPECT_GT(psd_pmtu_size(&pm) + PSD_PMTU_STEP, want)
			TH_LOG("mtu %zu: settled at %zu", mtu,
			       psd_pmtu_size(&pm));
		/* The maximum and four halvings of 252 bytes, 3 tries at most. */
		EXPECT_LE(probes, 5 * PSD_PMTU_MAX_PROBES) TH_LOG("mtu %zu", mtu);
		EXPECT_EQ(pm.st.probes_sent,
			  pm.st.probes_acked + pm.st.probes_lost);
	}
}

TEST(a_size_fails_only_after_three_lost_probes)
{
	struct psd_pmtu pm;

	psd_pmtu_init(&pm, PSD_DGRAM_MAX);
	for (int i = 0; i < PSD_PMTU_MAX_PROBES - 1; i++) {
		ASSERT_EQ(PSD_DGRAM_MAX, psd_pmtu_probe_size(&pm));
		psd_pmtu_on_probe_sent(&pm, PSD_DGRAM_MAX);
		psd_pmtu_on_lost(&pm, PSD_DGRAM_MAX, true, i, i);
	}
	/* Random loss took two: the third try still asks for the maximum. */
	ASSERT_EQ(PSD_DGRAM_MAX, psd_pmtu_probe_size(&pm));
	psd_pmtu_on_probe_sent(&pm, PSD_DGRAM_MAX);
	psd_pmtu_on_acked(&pm, PSD_DGRAM_MAX, true, 5, 6);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm.state);

	/* Three in a row: the next probe is halfway. */
	psd_pmtu_init(&pm, PSD_DGRAM_MAX);
	for (int i = 0; i < PSD_PMTU_MAX_PROBES; i++) {
		psd_pmtu_on_probe_sent(&pm, psd_pmtu_probe_size(&pm));
		psd_pmtu_on_lost(&pm, PSD_DGRAM_MAX, true, i, i);
	}
	EXPECT_EQ(PSD_DGRAM_MIN + (PSD_DGRAM_MAX - PSD_DGRAM_MIN) / 2,
		  psd_pmtu_probe_size(&pm));
	EXPECT_EQ(PSD_DGRAM_MIN, psd_pmtu_size(&pm));
	EXPECT_EQ(PSD_PMTU_MAX_PROBES, pm.st.probes_lost);
}

TEST(raise_timer_searches_again)
{
	struct psd_pmtu pm;
	uint64_t now = 0, done;

	psd_pmtu_init(&pm, PSD_DGRAM_MAX);
	search_path(&pm, 1300, &now);
	ASSERT_EQ(PSD_PMTU_COMPLETE, pm.state);
	done = now;
	psd_pmtu_on_timeout(&pm, done + PSD_PMTU_RAISE_TIMER - 1);
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm.state);
	EXPECT_EQ(0, psd_pmtu_probe_size(&pm));
	/* Ten minutes on, the path grew: the maximum goes through. */
	now = psd_pmtu_timer(&pm);
	EXPECT_EQ(done + PSD_PMTU_RAISE_TIMER, now);
	psd_pmtu_on_timeout(&pm, now);
	EXPECT_EQ(PSD_PMTU_SEARCHING, pm.state);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_probe_size(&pm));
	EXPECT_EQ(1, search_path(&pm, 1500, &now));
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));
	EXPECT_EQ(2, pm.st.searches);
	/* At the maximum a raise has nothing to try: complete at once. */
	now = psd_pmtu_timer(&pm);
	psd_pmtu_on_timeout(&pm, now);
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm.state);
	EXPECT_EQ(now + PSD_PMTU_RAISE_TIMER, psd_pmtu_timer(&pm));
}

/* A search that settled at the maximum, at now = 1 s. */
static void settled(struct psd_pmtu *pm)
{
	uint64_t now = SEC;

	psd_pmtu_init(pm, PSD_DGRAM_MAX);
	search_path(pm, 1500, &now);
}

/* n packets of the full size sent from t (1 ms apart) declared lost. */
static void lose_large(struct psd_pmtu *pm, unsigned int n, uint64_t t)
{
	for (unsigned int i = 0; i < n; i++)
		psd_pmtu_on_lost(pm, PSD_DGRAM_MAX, false, t + i * MS,
				 t + 100 * MS);
}

TEST(black_hole_falls_back_and_searches)
{
	struct psd_pmtu pm;
	uint64_t now;

	settled(&pm);
	ASSERT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));
	/* The path shrank to 1300: large packets die, a PTO's small get through. */
	lose_large(&pm, PSD_PMTU_BLACK_HOLE_LOSSES, 2 * SEC);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));
	psd_pmtu_on_acked(&pm, PSD_DGRAM_MIN + PSD_PMTU_PN_SLACK, false,
			  2 * SEC + 300 * MS, 2 * SEC + 320 * MS);
	EXPECT_EQ(PSD_DGRAM_MIN, psd_pmtu_size(&pm));
	EXPECT_EQ(1, pm.st.black_holes);
	EXPECT_EQ(PSD_PMTU_SEARCHING, pm.state);
	/* The new search finds the smaller path. */
	now = 3 * SEC;
	search_path(&pm, 1300, &now);
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm.state);
	EXPECT_LE(psd_pmtu_size(&pm), 1300);
	EXPECT_GT(psd_pmtu_size(&pm), 1300 - PSD_PMTU_STEP);
}

TEST(losses_that_are_no_black_hole)
{
	struct psd_pmtu pm;

	/* One loss short. */
	settled(&pm);
	lose_large(&pm, PSD_PMTU_BLACK_HOLE_LOSSES - 1, 2 * SEC);
	psd_pmtu_on_acked(&pm, PSD_DGRAM_MIN, false, 3 * SEC, 3 * SEC);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));

	/* A large packet got through in between: the run starts over. */
	settled(&pm);
	lose_large(&pm, PSD_PMTU_BLACK_HOLE_LOSSES - 1, 2 * SEC);
	psd_pmtu_on_acked(&pm, PSD_DGRAM_MAX, false, 2 * SEC + 50 * MS,
			  2 * SEC + 60 * MS);
	lose_large(&pm, PSD_PMTU_BLACK_HOLE_LOSSES - 1, 2 * SEC + 70 * MS);
	psd_pmtu_on_acked(&pm, PSD_DGRAM_MIN, false, 3 * SEC, 3 * SEC);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));

	/* Everything is lost, small packets too (an outage): no verdict. */
	settled(&pm);
	lose_large(&pm, 4 * PSD_PMTU_BLACK_HOLE_LOSSES, 2 * SEC);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));

	/* The small packet acknowledged left before the losses began. */
	settled(&pm);
	psd_pmtu_on_acked(&pm, PSD_DGRAM_MIN, false, 2 * SEC - MS, 3 * SEC);
	lose_large(&pm, 2 * PSD_PMTU_BLACK_HOLE_LOSSES, 2 * SEC);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));

	/* Lost probes are no evidence either. */
	settled(&pm);
	for (int i = 0; i < 2 * PSD_PMTU_BLACK_HOLE_LOSSES; i++)
		psd_pmtu_on_lost(&pm, 1500, true, 2 * SEC + i, 2 * SEC + i);
	psd_pmtu_on_acked(&pm, PSD_DGRAM_MIN, false, 3 * SEC, 3 * SEC);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(&pm));
	EXPECT_EQ(0, pm.st.black_holes);
}

TEST(caller_buffer_limits_the_search)
{
	struct psd_pmtu pm;
	uint64_t now = 0;

	psd_pmtu_init(&pm, PSD_DGRAM_MAX);
	psd_pmtu_limit(&pm, 1300, now);
	EXPECT_EQ(1300, pm.max);
	EXPECT_EQ(1300, psd_pmtu_probe_size(&pm));
	EXPECT_EQ(1, search_path(&pm, 1500, &now));
	EXPECT_EQ(1300, psd_pmtu_size(&pm));
	/* A smaller buffer later: the size in use shrinks with it. */
	psd_pmtu_limit(&pm, 1250, now);
	EXPECT_EQ(1250, psd_pmtu_size(&pm));
	/* One that holds only the base: probing is off. */
	psd_pmtu_limit(&pm, 1100, now);
	EXPECT_EQ(PSD_PMTU_DISABLED, pm.state);
	EXPECT_EQ(PSD_DGRAM_MIN, psd_pmtu_size(&pm));
}

/* ---- recovery: a lost probe is no congestion ------------------------------ */

struct packet_log {
	unsigned int lost, lost_probes, acked_probes;
};

static void log_acked(void *ctx, const struct psd_sent_pkt *p, uint64_t now)
{
	(void)now;
	if (p->pmtu_probe)
		((struct packet_log *)ctx)->acked_probes++;
}

static void log_lost(void *ctx, const struct psd_sent_pkt *p, uint64_t now)
{
	struct packet_log *l = ctx;

	(void)now;
	if (p->pmtu_probe)
		l->lost_probes++;
	else
		l->lost++;
}

static void no_frame(void *ctx, const struct psd_sent_frame *f)
{
	(void)ctx;
	(void)f;
}

static const struct psd_recovery_ops log_ops = {
	.on_frame_acked = no_frame, .on_frame_lost = no_frame,
	.on_packet_acked = log_acked, .on_packet_lost = log_lost,
};

/* Sends n packets of bytes (probes or not) 1 ms apart from *t into pns. */
static void send_n(struct psd_recovery *r, unsigned int n, size_t bytes,
		       bool probe, uint64_t *t, uint64_t pns[])
{
	for (unsigned int i = 0; i < n; i++) {
		pns[i] = psd_recovery_take_pn(r);
		if (probe)
			psd_recovery_on_sent_probe(r, pns[i], *t, bytes);
		else
			psd_recovery_on_sent(r, pns[i], *t, bytes, true, NULL, 0);
		*t += MS;
	}
}

static void ack_pn(struct psd_recovery *r, uint64_t pn, uint64_t now)
{
	struct psd_frame_ack a = { .n_ranges = 1 };
	uint64_t bad;

	a.r[0] = (struct psd_ack_range){ pn, pn };
	psd_recovery_on_ack(r, &a, now, &bad);
}

TEST(lost_probe_is_no_congestion_event)
{
	struct psd_recovery r;
	struct packet_log log = { 0 };
	struct psd_cc cc;
	uint64_t t = 0, probe, large, data[8], cwnd;

	psd_cc_init(&cc, &psd_cc_cubic, PSD_DGRAM_MIN, 0);
	ASSERT_EQ(0, psd_recovery_init(&r, &cc, &log_ops, &log, 7));
	send_n(&r, 1, PSD_DGRAM_MAX, true, &t, &probe);
	send_n(&r, 8, PSD_DGRAM_MIN, false, &t, data);
	/* Everything but the probe arrives: it is declared lost. */
	EXPECT_EQ(PSD_DGRAM_MAX + 8 * PSD_DGRAM_MIN, r.bytes_in_flight);
	cwnd = cc.cwnd;
	for (int i = 0; i < 8; i++)
		ack_pn(&r, data[i], 100 * MS + i * MS);
	EXPECT_EQ(1, log.lost_probes);
	EXPECT_EQ(1, r.lost_probes);
	EXPECT_EQ(0, r.lost_packets);
	EXPECT_EQ(0, log.lost);
	EXPECT_EQ(0, r.bytes_in_flight);
	/* No recovery period, no reduction: the window only grew. */
	EXPECT_FALSE(cc.in_recovery);
	EXPECT_GE(cc.cwnd, cwnd);

	/* A large data packet lost the same way is congestion. */
	send_n(&r, 1, PSD_DGRAM_MAX, false, &t, &large);
	send_n(&r, 8, PSD_DGRAM_MIN, false, &t, data);
	cwnd = cc.cwnd;
	for (int i = 0; i < 8; i++)
		ack_pn(&r, data[i], t + 100 * MS + i * MS);
	EXPECT_EQ(1, log.lost);
	EXPECT_EQ(1, r.lost_packets);
	EXPECT_TRUE(cc.in_recovery);
	EXPECT_LT(cc.cwnd, cwnd);
	psd_recovery_free(&r);
}

/* A probe acknowledged is reported as one. */
TEST(acked_probe_reported)
{
	struct psd_recovery r;
	struct packet_log log = { 0 };
	struct psd_cc cc;
	uint64_t t = 0, probe;

	psd_cc_init(&cc, &psd_cc_cubic, PSD_DGRAM_MIN, 0);
	ASSERT_EQ(0, psd_recovery_init(&r, &cc, &log_ops, &log, 8));
	send_n(&r, 1, PSD_DGRAM_MAX, true, &t, &probe);
	ack_pn(&r, probe, 50 * MS);
	EXPECT_EQ(1, log.acked_probes);
	EXPECT_EQ(0, r.bytes_in_flight);
	psd_recovery_free(&r);
}

TEST_HARNESS_MAIN
