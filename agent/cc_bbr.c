// SPDX-License-Identifier: GPL-2.0
/*
 * A BBR-like model-based congestion controller, after the BBRv1 and v2
 * descriptions (Cardwell et al.; draft-cardwell-iccrg-bbr-congestion-
 * control). Loss is not the main signal: the controller measures the
 * path's bottleneck bandwidth (the largest delivery rate of the last 10
 * rounds, from recovery's per-ACK rate samples) and its round-trip
 * propagation delay (the smallest RTT of the last 10 s), paces at gain x
 * bandwidth and keeps at most cwnd_gain x BDP in flight. So random loss,
 * which does not lower the delivery rate much, does not collapse the
 * sending rate as it does CUBIC's.
 *
 * The bandwidth filter counts only rounds the sender used its window in:
 * an application-limited round (nothing to send, or the connection held
 * by its scavenger limit, conn_cc.c) says nothing about the path, so it
 * neither lowers the estimate nor ages it (as Linux's BBR, which does not
 * feed its filter such samples): a connection that ran as a scavenger
 * still knows the path's rate when demand traffic comes.
 *
 *   STARTUP    pace at 2.77x the bandwidth until it stops growing by 25%
 *              for 3 rounds (or a round loses > 2% while the queue grows)
 *   DRAIN      pace below the bandwidth until in flight <= BDP
 *   PROBE_BW   cycle the pacing gain 1.25, 0.75, then 1 for 6 rounds:
 *              probe for more, drain what the probe queued, cruise
 *   PROBE_RTT  every 10 s without a new minimum RTT, hold in flight at 4
 *              packets for 200 ms and a round to see the empty-queue RTT
 *
 * The bounded loss response (BBRv2's inflight_hi): a round losing more
 * than 2% of what it sent caps what is in flight at 0.7x the window, but
 * never below 1.25 BDP -- with that a paced sender still fills the link
 * and its probe phase can still raise the estimate, so even heavy random
 * loss cannot starve it, while loss from a shallow buffer stops the 2x
 * BDP window from overflowing it every cycle. Rounds the cap binds
 * without such loss raise it again, by 1, 2, 4, ... packets.
 *
 * Startup only treats loss as congestion when the round's RTT also rose
 * by a quarter above the minimum: buffer overflow comes with a full
 * queue, random loss on an empty path does not.
 */
#include "cc.h"

enum bbr_mode { BBR_STARTUP, BBR_DRAIN, BBR_PROBE_BW, BBR_PROBE_RTT };

#define STARTUP_GAIN		2.77	/* doubles delivery per round */
#define CWND_GAIN		2.0
#define FULL_BW_GROWTH		1.25
#define FULL_BW_ROUNDS		3
#define MIN_RTT_WINDOW		(10 * PSD_NSEC)
#define PROBE_RTT_TIME		(200 * PSD_MSEC)
#define MIN_CWND_PACKETS	4
/* Rounds losing more than 2% of their bytes are lossy. */
#define LOSS_THRESH_PCT		2
#define LOSS_BETA		0.7
#define INFLIGHT_HI_GROWTH_MAX	6	/* shift: at most 64 packets a round */
#define CYCLE_PHASES		8

static const double cycle_gain[CYCLE_PHASES] = {
	1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0
};

static uint64_t min_cwnd(const struct psd_cc *cc)
{
	return MIN_CWND_PACKETS * (uint64_t)cc->mss;
}

static uint64_t max_bw(const struct psd_bbr *b)
{
	uint64_t bw = 0;
	unsigned int i;

	for (i = 0; i < PSD_BBR_BW_ROUNDS; i++)
		if (b->bw_round_max[i] > bw)
			bw = b->bw_round_max[i];
	return bw;
}

/* Bytes in flight that bw x min RTT x gain calls for (0: no model yet). */
static uint64_t bdp(const struct psd_cc *cc, double gain)
{
	const struct psd_bbr *b = &cc->bbr;
	unsigned __int128 v = (unsigned __int128)max_bw(b) * b->min_rtt;

	if (b->min_rtt == UINT64_MAX || v == 0)
		return 0;
	return (uint64_t)((double)(v / PSD_NSEC) * gain);
}

static void set_mode(struct psd_cc *cc, enum bbr_mode mode, double pacing_gain,
		     double cwnd_gain)
{
	cc->bbr.mode = mode;
	cc->bbr.pacing_gain = pacing_gain;
	cc->bbr.cwnd_gain = cwnd_gain;
}

static void bbr_init(struct psd_cc *cc, uint64_t now)
{
	cc->bbr = (struct psd_bbr){ .min_rtt = UINT64_MAX,
				    .min_rtt_stamp = now,
				    .inflight_hi = UINT64_MAX };
	set_mode(cc, BBR_STARTUP, STARTUP_GAIN, CWND_GAIN);
}

static void bbr_on_sent(struct psd_cc *cc, uint64_t now, size_t bytes)
{
	(void)cc;
	(void)now;
	(void)bytes;
}

/* The model works per ACK (bbr_on_rate_sample), not per packet. */
static void bbr_on_acked(struct psd_cc *cc, uint64_t now, size_t bytes,
			 uint64_t time_sent, uint64_t bytes_in_flight,
			 const struct psd_rtt *rtt)
{
	(void)cc;
	(void)now;
	(void)bytes;
	(void)time_sent;
	(void)bytes_in_flight;
	(void)rtt;
}

static void bbr_on_lost(struct psd_cc *cc, uint64_t now, size_t bytes,
			uint64_t time_sent)
{
	(void)now;
	(void)time_sent;
	cc->bbr.round_lost += bytes;
}

static void bbr_on_persistent_congestion(struct psd_cc *cc, uint64_t now)
{
	(void)now;
	/* Nothing got through for several PTOs: restart from a small window;
	 * the model stays, so the window grows back within rounds. */
	if (cc->cwnd > cc->bbr.prior_cwnd)
		cc->bbr.prior_cwnd = cc->cwnd;
	cc->cwnd = min_cwnd(cc);
}

/* Starts a new round when a packet sent after the last one began is acked. */
static bool update_round(struct psd_bbr *b, const struct psd_rate_sample *rs)
{
	if (rs->prior_delivered < b->next_round_delivered)
		return false;
	b->next_round_delivered = rs->total_delivered;
	b->round++;
	/* A round that starts application-limited does not age the filter:
	 * it measures the sender (idle, or held by the scavenger limit of
	 * conn_cc.c), not the path, so the estimate outlives it. */
	if (!rs->app_limited)
		b->bw_round_max[++b->bw_rounds % PSD_BBR_BW_ROUNDS] = 0;
	return true;
}

static void update_bw(struct psd_bbr *b, const struct psd_rate_sample *rs)
{
	uint64_t *slot = &b->bw_round_max[b->bw_rounds % PSD_BBR_BW_ROUNDS];
	uint64_t bw;

	if (rs->interval == 0)
		return;
	bw = (uint64_t)((unsigned __int128)rs->delivered * PSD_NSEC /
			rs->interval);
	/* An application-limited sample only says the path can do at least
	 * this much: it may raise the estimate, never lower it. */
	if (rs->app_limited && bw < max_bw(b))
		return;
	if (bw > *slot)
		*slot = bw;
}

/* Closes the round's loss account: was it lossy? */
static void end_round_losses(struct psd_bbr *b)
{
	uint64_t sent = b->round_lost + b->round_acked;

	b->round_lossy = b->round_lost * 100 > sent * LOSS_THRESH_PCT;
	b->round_lost = 0;
	b->round_acked = 0;
}

static void check_full_bw(struct psd_cc *cc, const struct psd_rate_sample *rs)
{
	struct psd_bbr *b = &cc->bbr;
	uint64_t bw = max_bw(b);
	bool queue_grew = b->min_rtt != UINT64_MAX &&
			  b->round_max_rtt > b->min_rtt + b->min_rtt / 4;

	if (b->round_lossy && queue_grew) {
		/* Overflowing the buffer: the pipe is full, and what was in
		 * flight is too much. */
		b->filled_pipe = true;
		b->inflight_hi = rs->bytes_in_flight > bdp(cc, 1.0) ?
				 rs->bytes_in_flight : bdp(cc, 1.0);
		return;
	}
	if (rs->app_limited)
		return;
	if ((double)bw >= (double)b->full_bw * FULL_BW_GROWTH) {
		b->full_bw = bw;
		b->full_bw_rounds = 0;
		return;
	}
	if (++b->full_bw_rounds >= FULL_BW_ROUNDS)
		b->filled_pipe = true;
}

/* The bounded loss response, once per round in PROBE_BW. */
static void adapt_inflight_hi(struct psd_cc *cc)
{
	struct psd_bbr *b = &cc->bbr;
	/* Room for the probe phase: a cap at one BDP of the estimate would
	 * keep the delivery rate, and so the estimate, from ever growing. */
	uint64_t floor = bdp(cc, cycle_gain[0]);

	if (b->round_lossy) {
		uint64_t hi = (uint64_t)((double)cc->cwnd * LOSS_BETA);

		if (hi < b->inflight_hi)
			b->inflight_hi = hi;
		if (b->inflight_hi < floor)
			b->inflight_hi = floor;
		b->inflight_hi_growth = 0;
		return;
	}
	if (b->inflight_hi == UINT64_MAX || cc->cwnd < b->inflight_hi)
		return;			/* the cap did not bind this round */
	b->inflight_hi += (uint64_t)cc->mss << b->inflight_hi_growth;
	if (b->inflight_hi_growth < INFLIGHT_HI_GROWTH_MAX)
		b->inflight_hi_growth++;
}

static void enter_probe_bw(struct psd_cc *cc, uint64_t now)
{
	struct psd_bbr *b = &cc->bbr;

	/* Start in a cruise phase, varied so flows do not probe in step. */
	b->cycle_phase = 2 + (unsigned int)(b->round % (CYCLE_PHASES - 2));
	b->cycle_stamp = now;
	set_mode(cc, BBR_PROBE_BW, cycle_gain[b->cycle_phase], CWND_GAIN);
}

static void advance_cycle(struct psd_cc *cc, uint64_t now,
			  const struct psd_rate_sample *rs)
{
	struct psd_bbr *b = &cc->bbr;
	bool elapsed = now - b->cycle_stamp > b->min_rtt;
	double gain = b->pacing_gain;

	if (gain > 1.0) {
		/* Probe until the queue holds the extra, or it costs loss. */
		if (!elapsed || (rs->bytes_in_flight < bdp(cc, gain) &&
				 !b->round_lossy))
			return;
	} else if (gain < 1.0) {
		if (!elapsed && rs->bytes_in_flight > bdp(cc, 1.0))
			return;
	} else if (!elapsed) {
		return;
	}
	b->cycle_phase = (b->cycle_phase + 1) % CYCLE_PHASES;
	b->cycle_stamp = now;
	b->pacing_gain = cycle_gain[b->cycle_phase];
}

static void enter_probe_rtt(struct psd_cc *cc)
{
	struct psd_bbr *b = &cc->bbr;

	if (cc->cwnd > b->prior_cwnd)
		b->prior_cwnd = cc->cwnd;
	b->probe_rtt_done = 0;
	set_mode(cc, BBR_PROBE_RTT, 1.0, 1.0);
}

static void probe_rtt(struct psd_cc *cc, uint64_t now,
		      const struct psd_rate_sample *rs)
{
	struct psd_bbr *b = &cc->bbr;

	if (b->probe_rtt_done == 0) {
		if (rs->bytes_in_flight > min_cwnd(cc))
			return;
		b->probe_rtt_done = now + PROBE_RTT_TIME;
		b->probe_rtt_round = b->round + 1;
		return;
	}
	if (now < b->probe_rtt_done || b->round < b->probe_rtt_round)
		return;
	b->min_rtt_stamp = now;
	if (cc->cwnd < b->prior_cwnd)
		cc->cwnd = b->prior_cwnd;
	b->prior_cwnd = 0;
	if (b->filled_pipe)
		enter_probe_bw(cc, now);
	else
		set_mode(cc, BBR_STARTUP, STARTUP_GAIN, CWND_GAIN);
}

static void update_min_rtt(struct psd_cc *cc, uint64_t now,
			   const struct psd_rate_sample *rs)
{
	struct psd_bbr *b = &cc->bbr;
	bool expired = now > b->min_rtt_stamp + MIN_RTT_WINDOW;

	if (rs->rtt && (rs->rtt <= b->min_rtt || expired)) {
		b->min_rtt = rs->rtt;
		b->min_rtt_stamp = now;
	}
	if (rs->rtt > b->round_max_rtt)
		b->round_max_rtt = rs->rtt;
	if (expired && b->mode != BBR_PROBE_RTT)
		enter_probe_rtt(cc);
}

static void update_mode(struct psd_cc *cc, uint64_t now,
			const struct psd_rate_sample *rs, bool round_start)
{
	struct psd_bbr *b = &cc->bbr;

	switch (b->mode) {
	case BBR_STARTUP:
		if (round_start)
			check_full_bw(cc, rs);
		if (b->filled_pipe)
			set_mode(cc, BBR_DRAIN, 1.0 / STARTUP_GAIN, CWND_GAIN);
		break;
	case BBR_DRAIN:
		if (rs->bytes_in_flight <= bdp(cc, 1.0))
			enter_probe_bw(cc, now);
		break;
	case BBR_PROBE_BW:
		if (round_start)
			adapt_inflight_hi(cc);
		advance_cycle(cc, now, rs);
		break;
	case BBR_PROBE_RTT:
		probe_rtt(cc, now, rs);
		break;
	}
}

static void set_cwnd(struct psd_cc *cc, const struct psd_rate_sample *rs)
{
	struct psd_bbr *b = &cc->bbr;
	uint64_t target = bdp(cc, b->cwnd_gain) + 3 * (uint64_t)cc->mss;

	if (b->mode == BBR_PROBE_RTT) {
		cc->cwnd = min_cwnd(cc);
		return;
	}
	if (target > b->inflight_hi)
		target = b->inflight_hi;
	if (!b->filled_pipe && bdp(cc, 1.0) == 0)
		target = UINT64_MAX;	/* no model yet: grow as slow start */
	if (b->filled_pipe)
		cc->cwnd = cc->cwnd + rs->acked < target ?
			   cc->cwnd + rs->acked : target;
	else if (cc->cwnd < target)
		cc->cwnd += rs->acked;
	if (cc->cwnd < min_cwnd(cc))
		cc->cwnd = min_cwnd(cc);
}

static void set_pacing_rate(struct psd_cc *cc)
{
	struct psd_bbr *b = &cc->bbr;
	uint64_t rate = (uint64_t)((double)max_bw(b) * b->pacing_gain);

	if (rate == 0)
		return;			/* keep pacing from the window */
	/* Until the pipe is full a lower sample must not slow startup. */
	if (b->filled_pipe || rate > cc->pacing_rate)
		cc->pacing_rate = rate;
}

static void bbr_on_rate_sample(struct psd_cc *cc, uint64_t now,
			       const struct psd_rate_sample *rs)
{
	struct psd_bbr *b = &cc->bbr;
	bool round_start = update_round(b, rs);

	if (round_start)
		end_round_losses(b);
	b->round_acked += rs->acked;
	update_bw(b, rs);
	update_mode(cc, now, rs, round_start);
	if (round_start)
		b->round_max_rtt = 0;
	update_min_rtt(cc, now, rs);
	set_cwnd(cc, rs);
	set_pacing_rate(cc);
}

const struct psd_cc_ops psd_cc_bbr = {
	.name = "bbr",
	.init = bbr_init,
	.on_sent = bbr_on_sent,
	.on_acked = bbr_on_acked,
	.on_lost = bbr_on_lost,
	.on_persistent_congestion = bbr_on_persistent_congestion,
	.on_rate_sample = bbr_on_rate_sample,
};
