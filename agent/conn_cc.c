// SPDX-License-Identifier: GPL-2.0
/*
 * A connection's congestion control (conn.h, "The scavenger limit"): its
 * controller (cc: BBR unless configured) and beside it a LEDBAT-like one
 * (scavenger), and which of the two decides what leaves.
 *
 * Recovery drives one controller; it is handed cc_feed, a psd_cc of which
 * only the ops are used: they pass every event -- packet sent, acked,
 * lost, persistent congestion, rate sample -- to both controllers. So
 * both see this path's RTT samples (LEDBAT's base delay is this path's
 * minimum RTT), both see the same bytes in flight (counted once, by
 * recovery), and neither is reset when the connection switches.
 *
 * The rule, applied before every send decision (conn_plan):
 *
 *   DATA waits (new or to retransmit), all of it for background
 *   requests, and no REQUEST of the demand class waits
 *       -> scavenging: the scavenger's window and pacing rate
 *   otherwise (demand DATA or a demand REQUEST waits, or no DATA)
 *       -> cc's window and pacing rate
 *
 * The switch takes effect with the next packet: the pacer gets the new
 * rate at the switch, not after the next send, so a demand request that
 * arrives on a scavenging connection is served at cc's rate at once.
 *
 * While scavenging, the scavenger alone decides, not the smaller of the
 * two: cc (BBR) keeps a queue too short for LEDBAT to see, so a minimum
 * of both ran as BBR and took 60% of a link from a demand flow in the
 * simulator instead of at most 20%. Each state is kept honest while the
 * other one decides:
 *   - cc's rate samples are marked application-limited while the
 *     scavenger holds the sender below cc's window or rate: they measure
 *     the scavenger, not the path, and must neither lower nor age BBR's
 *     bandwidth estimate (cc_bbr.c), which the next demand request needs;
 *   - the scavenger's window does not grow while cc decides (RFC 7661:
 *     a window grows only while it limits the sender); its decreases
 *     (queueing delay above the target, loss) still apply. Grown beside
 *     BBR's short queue it would double every round trip in slow start,
 *     and background data after a demand request would then run at
 *     several times the path's rate until the delay caught up.
 */
#include <stddef.h>

#include "conn_internal.h"

static struct psd_conn *feed_conn(struct psd_cc *feed)
{
	return (struct psd_conn *)((char *)feed -
				   offsetof(struct psd_conn, cc_feed));
}

static void feed_on_sent(struct psd_cc *feed, uint64_t now, size_t bytes)
{
	struct psd_conn *c = feed_conn(feed);

	c->cc.ops->on_sent(&c->cc, now, bytes);
	c->scavenger.ops->on_sent(&c->scavenger, now, bytes);
}

static void feed_on_acked(struct psd_cc *feed, uint64_t now, size_t bytes,
			  uint64_t time_sent, uint64_t bytes_in_flight,
			  const struct psd_rtt *rtt)
{
	struct psd_conn *c = feed_conn(feed);
	uint64_t before = c->scavenger.cwnd;

	c->cc.ops->on_acked(&c->cc, now, bytes, time_sent, bytes_in_flight,
			    rtt);
	c->scavenger.ops->on_acked(&c->scavenger, now, bytes, time_sent,
				   bytes_in_flight, rtt);
	/* Grows only while it limits the sender (see the top). */
	if (!c->scavenging && c->scavenger.cwnd > before)
		c->scavenger.cwnd = before;
}

static void feed_on_lost(struct psd_cc *feed, uint64_t now, size_t bytes,
			 uint64_t time_sent)
{
	struct psd_conn *c = feed_conn(feed);

	c->cc.ops->on_lost(&c->cc, now, bytes, time_sent);
	c->scavenger.ops->on_lost(&c->scavenger, now, bytes, time_sent);
}

static void feed_on_persistent_congestion(struct psd_cc *feed, uint64_t now)
{
	struct psd_conn *c = feed_conn(feed);

	c->cc.ops->on_persistent_congestion(&c->cc, now);
	c->scavenger.ops->on_persistent_congestion(&c->scavenger, now);
}

static void feed_on_rate_sample(struct psd_cc *feed, uint64_t now,
				const struct psd_rate_sample *rs)
{
	struct psd_conn *c = feed_conn(feed);

	if (c->cc.ops->on_rate_sample)
		c->cc.ops->on_rate_sample(&c->cc, now, rs);
	if (c->scavenger.ops->on_rate_sample)
		c->scavenger.ops->on_rate_sample(&c->scavenger, now, rs);
}

/* Never initialized through init: conn_cc_init sets up both controllers. */
static const struct psd_cc_ops feed_ops = {
	.name = "conn",
	.on_sent = feed_on_sent,
	.on_acked = feed_on_acked,
	.on_lost = feed_on_lost,
	.on_persistent_congestion = feed_on_persistent_congestion,
	.on_rate_sample = feed_on_rate_sample,
};

void conn_cc_init(struct psd_conn *c, uint64_t now)
{
	psd_cc_init(&c->cc, c->cfg.cc, PSD_DGRAM_MIN, now);
	psd_cc_init(&c->scavenger, &psd_cc_ledbat, PSD_DGRAM_MIN, now);
	c->cc_feed = (struct psd_cc){ .ops = &feed_ops, .mss = PSD_DGRAM_MIN };
	c->scavenging = false;
}

/* DATA waits to be sent, and all of it belongs to background requests. */
static bool only_background_data(const struct psd_conn *c)
{
	bool credit = c->st.tx_data_bytes < c->tx_max_data;
	bool background = false;
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++) {
		const struct in_req *r = &c->in[i];

		if (!r->used || r->not_found ||
		    !(r->queued || (credit && r->next < r->credit)))
			continue;
		if (r->f.prio != PSD_PRIO_BACKGROUND)
			return false;
		background = true;
	}
	return background;
}

/* A REQUEST of the demand class waits to go out (the side asks, too). */
static bool demand_request_waiting(const struct psd_conn *c)
{
	unsigned int i;

	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++) {
		const struct out_req *o = &c->out[i];

		if (o->used && !o->cancelled && o->request_queued &&
		    o->f.prio == PSD_PRIO_DEMAND)
			return true;
	}
	return false;
}

uint64_t conn_cc_window(const struct psd_conn *c)
{
	return c->scavenging ? c->scavenger.cwnd : c->cc.cwnd;
}

uint64_t conn_cc_pacing_rate(const struct psd_conn *c)
{
	const struct psd_cc *cc = c->scavenging ? &c->scavenger : &c->cc;

	return psd_cc_pacing_rate(cc, c->rec.rtt.smoothed);
}

/* The scavenger, not cc, is what holds the sender back. */
static bool scavenger_binds(const struct psd_conn *c)
{
	uint64_t srtt = c->rec.rtt.smoothed;

	return c->scavenging &&
	       (c->scavenger.cwnd < c->cc.cwnd ||
		psd_cc_pacing_rate(&c->scavenger, srtt) <
			psd_cc_pacing_rate(&c->cc, srtt));
}

void conn_cc_update(struct psd_conn *c, uint64_t now)
{
	bool scavenging = only_background_data(c) &&
			  !demand_request_waiting(c);

	if (scavenging != c->scavenging) {
		c->scavenging = scavenging;
		/* The new limit applies to the next packet already. */
		psd_pacer_set(&c->pacer, conn_cc_pacing_rate(c),
			      PSD_CC_INITIAL_WINDOW(PSD_DGRAM_MIN), now);
	}
	if (scavenger_binds(c))
		psd_recovery_on_app_limited(&c->rec);
}
