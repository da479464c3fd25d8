// SPDX-License-Identifier: GPL-2.0
/*
 * CUBIC (RFC 9438) with a HyStart-like slow start exit.
 *
 * Slow start grows the window by the bytes acknowledged, and leaves early
 * (ssthresh = cwnd) when a round's minimum RTT rises clearly above the
 * last round's: the queue is building, so the window is past the path's
 * capacity. Rounds are counted by time: a round ends when a packet sent
 * after it began is acknowledged.
 *
 * Congestion avoidance follows W_cubic(t) = C (t - K)^3 + W_max, aiming
 * one RTT ahead, never below the Reno-friendly estimate W_est. A
 * congestion event multiplies the window by beta = 0.7; with fast
 * convergence W_max is lowered further when the window had not regained
 * the previous W_max (a new flow is taking its share).
 *
 * The window only grows while the sender uses it (in flight at least half
 * of it): an application-limited sender must not build a window it never
 * tested.
 */
#include "cc.h"

#define CUBIC_C		0.4
#define CUBIC_BETA	0.7
/* Reno-friendly additive increase, 3 (1 - beta) / (1 + beta). */
#define CUBIC_ALPHA	(3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA))
/* HyStart++ (RFC 9406) delay threshold: last round / 8 within 4..16 ms. */
#define HYSTART_MIN_SAMPLES	8
#define HYSTART_ETA_MIN		(4 * PSD_MSEC)
#define HYSTART_ETA_MAX		(16 * PSD_MSEC)

/* The cube root of x >= 0 by Newton's method (no libm in the agent). */
static double cbrt_nonneg(double x)
{
	double y = x > 1.0 ? x / 3.0 : 1.0;
	int i;

	if (x <= 0.0)
		return 0.0;
	for (i = 0; i < 100; i++) {
		double next = y - (y * y * y - x) / (3.0 * y * y);

		if (next == y)
			break;
		y = next;
	}
	return y;
}

static void cubic_init(struct psd_cc *cc, uint64_t now)
{
	cc->cubic = (struct psd_cubic){ .round_start = now,
					.round_min = UINT64_MAX,
					.last_round_min = UINT64_MAX };
}

static void cubic_on_sent(struct psd_cc *cc, uint64_t now, size_t bytes)
{
	(void)cc;
	(void)now;
	(void)bytes;
}

static void hystart_sample(struct psd_cc *cc, uint64_t now, uint64_t time_sent,
			   uint64_t rtt)
{
	struct psd_cubic *s = &cc->cubic;
	uint64_t eta;

	if (time_sent > s->round_start) {
		/* A packet of the new round came back: the old round ended. */
		s->last_round_min = s->round_min;
		s->round_min = UINT64_MAX;
		s->round_samples = 0;
		s->round_start = now;
	}
	if (rtt < s->round_min)
		s->round_min = rtt;
	s->round_samples++;
	if (s->round_samples < HYSTART_MIN_SAMPLES ||
	    s->last_round_min == UINT64_MAX)
		return;
	eta = s->last_round_min / 8;
	eta = eta < HYSTART_ETA_MIN ? HYSTART_ETA_MIN :
	      eta > HYSTART_ETA_MAX ? HYSTART_ETA_MAX : eta;
	if (s->round_min >= s->last_round_min + eta)
		cc->ssthresh = cc->cwnd;
}

static void start_epoch(struct psd_cc *cc, uint64_t now)
{
	struct psd_cubic *s = &cc->cubic;
	double cwnd = (double)cc->cwnd / cc->mss;

	s->epoch_start = now;
	s->w_est = cwnd;
	if (s->w_max < cwnd) {
		/* No congestion yet (left slow start by delay): start at the plateau. */
		s->w_max = cwnd;
	}
	s->k = cbrt_nonneg((s->w_max - cwnd) / CUBIC_C);
}

static void congestion_avoidance(struct psd_cc *cc, uint64_t now, size_t bytes,
				 const struct psd_rtt *rtt)
{
	struct psd_cubic *s = &cc->cubic;
	double cwnd = (double)cc->cwnd / cc->mss, t, target, w_cubic, d;

	if (s->epoch_start == 0)
		start_epoch(cc, now);
	t = (double)(now - s->epoch_start + rtt->smoothed) / PSD_NSEC;
	d = t - s->k;
	w_cubic = CUBIC_C * d * d * d + s->w_max;
	/* RFC 9438 4.2: aim at most 1.5x ahead of the current window. */
	target = w_cubic < cwnd ? cwnd : w_cubic > 1.5 * cwnd ? 1.5 * cwnd :
		 w_cubic;
	s->w_est += CUBIC_ALPHA * ((double)bytes / cc->mss) / cwnd;
	if (s->w_est > target)
		target = s->w_est;
	cwnd += (target - cwnd) * ((double)bytes / cc->mss) / cwnd;
	cc->cwnd = (uint64_t)(cwnd * cc->mss);
}

static void cubic_on_acked(struct psd_cc *cc, uint64_t now, size_t bytes,
			   uint64_t time_sent, uint64_t bytes_in_flight,
			   const struct psd_rtt *rtt)
{
	if (cc->in_recovery && time_sent <= cc->recovery_start)
		return;
	cc->in_recovery = false;
	if ((bytes_in_flight + bytes) * 2 < cc->cwnd)
		return;			/* application-limited */
	if (psd_cc_in_slow_start(cc)) {
		cc->cwnd += bytes;
		hystart_sample(cc, now, time_sent, rtt->latest);
		return;
	}
	congestion_avoidance(cc, now, bytes, rtt);
}

static void cubic_on_lost(struct psd_cc *cc, uint64_t now, size_t bytes,
			  uint64_t time_sent)
{
	struct psd_cubic *s = &cc->cubic;
	double cwnd = (double)cc->cwnd / cc->mss;
	uint64_t min = PSD_CC_MIN_WINDOW(cc->mss);

	(void)bytes;
	if (!psd_cc_begin_recovery(cc, now, time_sent))
		return;
	/* Fast convergence: release bandwidth to a newer flow. */
	s->w_max = cwnd < s->w_max ? cwnd * (1.0 + CUBIC_BETA) / 2.0 : cwnd;
	cc->ssthresh = (uint64_t)(cc->cwnd * CUBIC_BETA);
	if (cc->ssthresh < min)
		cc->ssthresh = min;
	cc->cwnd = cc->ssthresh;
	s->epoch_start = 0;
}

static void cubic_on_persistent_congestion(struct psd_cc *cc, uint64_t now)
{
	cc->cwnd = PSD_CC_MIN_WINDOW(cc->mss);
	cc->cubic.epoch_start = 0;
	cc->in_recovery = false;
	cc->recovery_start = now;
}

const struct psd_cc_ops psd_cc_cubic = {
	.name = "cubic",
	.init = cubic_init,
	.on_sent = cubic_on_sent,
	.on_acked = cubic_on_acked,
	.on_lost = cubic_on_lost,
	.on_persistent_congestion = cubic_on_persistent_congestion,
};
