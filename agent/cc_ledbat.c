// SPDX-License-Identifier: GPL-2.0
/*
 * A LEDBAT-like scavenger (after RFC 6817 and LEDBAT++) for background
 * transfers: it aims for at most TARGET of queueing delay on the path and
 * backs off as soon as anything else builds a queue, so a demand transfer
 * beside it keeps nearly the whole link.
 *
 * Without one-way timestamps the queueing delay is estimated from RTTs:
 * the smallest RTT of the last PSD_LEDBAT_CURRENT_FILTER ACKs (RFC 6817's
 * current-delay filter: one late ACK -- a receiver not scheduled at once,
 * a delayed ACK -- is not a queue, a queue delays them all) minus the
 * smallest ever seen (the base delay). Queues in both directions count,
 * which only makes the scavenger more timid.
 *
 *   slow start    window += acked while the delay stays under 3/4 TARGET
 *                 (and until the first loss)
 *   below TARGET  window += GAIN * (TARGET - delay) / TARGET * acked * MSS
 *                 / window, GAIN = 1 / min(16, ceil(2 TARGET / base delay))
 *                 (LEDBAT++: slower on short paths, where a window of
 *                 growth is a large share of the queue)
 *   above TARGET  window -= acked * min(delay / TARGET - 1, 1/2): a
 *                 multiplicative decrease (LEDBAT++), at most half the
 *                 window per round trip, so a competing flow's queue
 *                 drives the scavenger down within a few RTTs rather than
 *                 by one packet per RTT
 *   loss          window halves, once per round trip
 */
#include "cc.h"

#define LEDBAT_TARGET	(60 * PSD_MSEC)
#define LEDBAT_GAIN_DIV_MAX	16

static void ledbat_init(struct psd_cc *cc, uint64_t now)
{
	(void)now;
	cc->ledbat = (struct psd_ledbat){ .base_delay = UINT64_MAX,
					  .slow_start = true };
}

static void ledbat_on_sent(struct psd_cc *cc, uint64_t now, size_t bytes)
{
	(void)cc;
	(void)now;
	(void)bytes;
}

static uint64_t min_window(const struct psd_cc *cc)
{
	return PSD_CC_MIN_WINDOW(cc->mss);
}

static void leave_slow_start(struct psd_cc *cc)
{
	cc->ledbat.slow_start = false;
	cc->ssthresh = cc->cwnd;
}

/* GAIN * (TARGET - delay) / TARGET * bytes * MSS / cwnd. */
static void increase(struct psd_cc *cc, size_t bytes, uint64_t delay)
{
	uint64_t base = cc->ledbat.base_delay ? cc->ledbat.base_delay : 1;
	uint64_t div = (2 * LEDBAT_TARGET + base - 1) / base;
	unsigned __int128 add;

	if (div > LEDBAT_GAIN_DIV_MAX)
		div = LEDBAT_GAIN_DIV_MAX;
	add = (unsigned __int128)(LEDBAT_TARGET - delay) * bytes * cc->mss;
	add /= (unsigned __int128)LEDBAT_TARGET * div * cc->cwnd;
	cc->cwnd += (uint64_t)add;
}

/* bytes * min(delay / TARGET - 1, 1/2), never below the minimum window. */
static void decrease(struct psd_cc *cc, size_t bytes, uint64_t delay)
{
	uint64_t excess = delay - LEDBAT_TARGET;
	uint64_t cut;

	if (excess > LEDBAT_TARGET / 2)
		excess = LEDBAT_TARGET / 2;
	cut = (uint64_t)((unsigned __int128)bytes * excess / LEDBAT_TARGET);
	cc->cwnd = cc->cwnd > min_window(cc) + cut ? cc->cwnd - cut :
						     min_window(cc);
}

/* The current delay's RTT: the smallest of the last few ACKs' samples
 * (the packets one ACK acknowledges share its sample: one entry). */
static uint64_t current_rtt(struct psd_ledbat *s, uint64_t now,
			    uint64_t latest)
{
	uint64_t min = latest;

	if (!s->n_recent || now != s->recent_at) {
		s->recent[s->n_recent % PSD_LEDBAT_CURRENT_FILTER] = latest;
		s->n_recent++;
		s->recent_at = now;
	}
	for (unsigned int i = 0; i < PSD_LEDBAT_CURRENT_FILTER &&
	     i < s->n_recent; i++)
		if (s->recent[i] < min)
			min = s->recent[i];
	return min;
}

static void ledbat_on_acked(struct psd_cc *cc, uint64_t now, size_t bytes,
			    uint64_t time_sent, uint64_t bytes_in_flight,
			    const struct psd_rtt *rtt)
{
	struct psd_ledbat *s = &cc->ledbat;
	uint64_t delay, current;

	if (rtt->min && rtt->min < s->base_delay)
		s->base_delay = rtt->min;
	current = current_rtt(s, now, rtt->latest);
	if (cc->in_recovery && time_sent <= cc->recovery_start)
		return;
	cc->in_recovery = false;
	delay = current > s->base_delay ? current - s->base_delay : 0;
	if (s->slow_start && delay < LEDBAT_TARGET * 3 / 4) {
		if ((bytes_in_flight + bytes) * 2 >= cc->cwnd)
			cc->cwnd += bytes;
		return;
	}
	if (s->slow_start)
		leave_slow_start(cc);
	if (delay > LEDBAT_TARGET) {
		decrease(cc, bytes, delay);
		return;
	}
	if ((bytes_in_flight + bytes) * 2 < cc->cwnd)
		return;			/* application-limited */
	increase(cc, bytes, delay);
}

static void ledbat_on_lost(struct psd_cc *cc, uint64_t now, size_t bytes,
			   uint64_t time_sent)
{
	(void)bytes;
	if (!psd_cc_begin_recovery(cc, now, time_sent))
		return;
	cc->cwnd /= 2;
	if (cc->cwnd < min_window(cc))
		cc->cwnd = min_window(cc);
	leave_slow_start(cc);
}

static void ledbat_on_persistent_congestion(struct psd_cc *cc, uint64_t now)
{
	cc->cwnd = min_window(cc);
	cc->in_recovery = false;
	cc->recovery_start = now;
	leave_slow_start(cc);
}

const struct psd_cc_ops psd_cc_ledbat = {
	.name = "ledbat",
	.init = ledbat_init,
	.on_sent = ledbat_on_sent,
	.on_acked = ledbat_on_acked,
	.on_lost = ledbat_on_lost,
	.on_persistent_congestion = ledbat_on_persistent_congestion,
};
