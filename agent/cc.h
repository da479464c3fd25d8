/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pluggable congestion control. Recovery (recovery.h) feeds a controller
 * the events of RFC 9002 section 7; the controller keeps the congestion
 * window in bytes, and the pacing rate follows from it (pacer.h).
 *
 *   on_sent                  an in-flight packet left
 *   on_acked                 an in-flight packet was acknowledged
 *   on_lost                  an in-flight packet was declared lost (one
 *                            congestion event per round trip: packets sent
 *                            before the current recovery began are ignored)
 *   on_persistent_congestion the window collapses to the minimum
 *
 * Controllers: a BBR-like model-based one (cc_bbr.c, the default: it
 * holds its rate under random loss, where CUBIC collapses), CUBIC
 * (cc_cubic.c, RFC 9438, selectable) and a LEDBAT-like scavenger
 * (cc_ledbat.c) for background traffic. A controller with a model of the
 * path also sets the pacing rate itself and takes one delivery-rate
 * sample per ACK (on_rate_sample).
 *
 * A connection runs two at once (conn_cc.c): its own controller and a
 * LEDBAT one, both fed every event of the one recovery; the LEDBAT one
 * decides the window and pacing rate while all the connection has to
 * send is data of background requests (the scavenger class), its own
 * controller as soon as anything of the demand class waits. A controller
 * must therefore keep its state valid while the other one decides: rate
 * samples taken then are marked application-limited, and it is never
 * re-initialized on a switch.
 */
#ifndef PSD_CC_H
#define PSD_CC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSD_NSEC	1000000000ull
#define PSD_MSEC	1000000ull

/* The RTT estimate (RFC 9002 5), nanoseconds. */
struct psd_rtt {
	uint64_t latest, smoothed, var, min;
};

/*
 * A delivery-rate sample, one per ACK that acknowledges something new
 * (after the BBR drafts' "delivery rate estimation"): delivered bytes over
 * the longer of the send and the ACK interval of the newest packet
 * acknowledged, so neither a send burst nor an ACK burst inflates it.
 */
struct psd_rate_sample {
	uint64_t delivered;		/* bytes delivered in the interval */
	uint64_t interval;		/* ns; 0: no valid sample */
	uint64_t prior_delivered;	/* total delivered when that packet left */
	uint64_t total_delivered;	/* total delivered now */
	uint64_t acked;			/* bytes newly acknowledged */
	uint64_t bytes_in_flight;	/* after this ACK */
	uint64_t rtt;			/* this ACK's RTT sample, ns; 0: none */
	bool app_limited;		/* the sender had nothing to send */
};

struct psd_cc;

struct psd_cc_ops {
	const char *name;
	void (*init)(struct psd_cc *cc, uint64_t now);
	void (*on_sent)(struct psd_cc *cc, uint64_t now, size_t bytes);
	void (*on_acked)(struct psd_cc *cc, uint64_t now, size_t bytes,
			 uint64_t time_sent, uint64_t bytes_in_flight,
			 const struct psd_rtt *rtt);
	void (*on_lost)(struct psd_cc *cc, uint64_t now, size_t bytes,
			uint64_t time_sent);
	void (*on_persistent_congestion)(struct psd_cc *cc, uint64_t now);
	/* Once per ACK after the per-packet calls; NULL: not used. */
	void (*on_rate_sample)(struct psd_cc *cc, uint64_t now,
			       const struct psd_rate_sample *rs);
};

struct psd_cubic {
	double w_max;			/* segments, before the last reduction */
	double k;			/* seconds from epoch to w_max */
	double w_est;			/* the Reno-friendly estimate, segments */
	uint64_t epoch_start;		/* 0: no congestion avoidance epoch */
	/* HyStart: the minimum RTT of this and the last round. */
	uint64_t round_start, round_min, last_round_min;
	unsigned int round_samples;
};

#define PSD_LEDBAT_CURRENT_FILTER	4

struct psd_ledbat {
	uint64_t base_delay;		/* minimum RTT seen, ns */
	bool slow_start;
	/* The RTT samples of the last few ACKs (RFC 6817's CURRENT_FILTER). */
	uint64_t recent[PSD_LEDBAT_CURRENT_FILTER];
	unsigned int n_recent;
	uint64_t recent_at;		/* when the newest was taken */
};

#define PSD_BBR_BW_ROUNDS	10	/* the bandwidth filter's window */

struct psd_bbr {
	uint8_t mode;			/* enum in cc_bbr.c */
	double pacing_gain, cwnd_gain;
	/* The largest delivery rate of each of the last rounds, bytes/s;
	 * only rounds not application-limited count (bw_rounds). */
	uint64_t bw_round_max[PSD_BBR_BW_ROUNDS];
	uint64_t bw_rounds;
	uint64_t round, next_round_delivered;
	uint64_t min_rtt, min_rtt_stamp;
	/* Startup ends when the bandwidth stops growing by 25% a round. */
	uint64_t full_bw;
	unsigned int full_bw_rounds;
	bool filled_pipe;
	/* This round's losses, deliveries and largest RTT. */
	uint64_t round_lost, round_acked, round_max_rtt;
	bool round_lossy;		/* the last round lost too much */
	unsigned int cycle_phase;
	uint64_t cycle_stamp;
	uint64_t probe_rtt_done;	/* 0: not yet at the small window */
	uint64_t probe_rtt_round;	/* the round it must also outlast */
	uint64_t prior_cwnd;
	/* The loss response: in flight is capped here (UINT64_MAX: none). */
	uint64_t inflight_hi;
	unsigned int inflight_hi_growth;
};

struct psd_cc {
	const struct psd_cc_ops *ops;
	size_t mss;
	uint64_t cwnd;			/* bytes */
	uint64_t pacing_rate;		/* bytes/s a model sets; 0: from cwnd */
	uint64_t ssthresh;		/* bytes; UINT64_MAX: unknown */
	uint64_t recovery_start;	/* ns; packets sent before are ignored */
	bool in_recovery;
	union {
		struct psd_cubic cubic;
		struct psd_ledbat ledbat;
		struct psd_bbr bbr;
	};
};

extern const struct psd_cc_ops psd_cc_cubic;
extern const struct psd_cc_ops psd_cc_ledbat;
extern const struct psd_cc_ops psd_cc_bbr;

#define PSD_CC_INITIAL_WINDOW(mss)	(10 * (uint64_t)(mss))
#define PSD_CC_MIN_WINDOW(mss)		(2 * (uint64_t)(mss))

/* Sets up cc with ops (NULL: the default, BBR) for packets of mss bytes. */
static inline void psd_cc_init(struct psd_cc *cc, const struct psd_cc_ops *ops,
			       size_t mss, uint64_t now)
{
	*cc = (struct psd_cc){ .ops = ops ? ops : &psd_cc_bbr, .mss = mss,
			       .cwnd = PSD_CC_INITIAL_WINDOW(mss),
			       .ssthresh = UINT64_MAX };
	cc->ops->init(cc, now);
}

static inline bool psd_cc_in_slow_start(const struct psd_cc *cc)
{
	return cc->cwnd < cc->ssthresh;
}

/*
 * Bytes per second to pace at: the controller's own rate if it has a
 * model of the path (BBR), else the window over the smoothed RTT, times
 * 2 in slow start (the window doubles each round) and 1.25 after (room to
 * probe), as Linux paces TCP.
 */
static inline uint64_t psd_cc_pacing_rate(const struct psd_cc *cc,
					  uint64_t srtt)
{
	unsigned __int128 r = (unsigned __int128)cc->cwnd * PSD_NSEC;

	if (cc->pacing_rate)
		return cc->pacing_rate;
	r = r * (psd_cc_in_slow_start(cc) ? 8 : 5) / 4;
	if (srtt == 0)
		srtt = 1;
	r /= srtt;
	return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

/*
 * A congestion event for a packet sent at time_sent: true (and a new
 * recovery period starts now) unless that packet was sent inside the
 * current one. Shared by the controllers.
 */
static inline bool psd_cc_begin_recovery(struct psd_cc *cc, uint64_t now,
					 uint64_t time_sent)
{
	if (cc->in_recovery && time_sent <= cc->recovery_start)
		return false;
	cc->in_recovery = true;
	cc->recovery_start = now;
	return true;
}

#endif /* PSD_CC_H */
