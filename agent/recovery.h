/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Loss recovery (RFC 9002): what is in flight, the RTT estimate, loss
 * detection by packet and time threshold, the probe timeout (PTO) with
 * exponential backoff, persistent congestion, and the defence against
 * optimistic ACKs.
 *
 * Sent packets live in a ring indexed by packet number, from the oldest
 * one still unresolved (base) to the next to send: the ring's size bounds
 * how much is in flight, whatever the peer does. Each record keeps the
 * retransmittable frames the packet carried (type, request, range), not
 * its bytes: what a lost packet held is handed back to the connection
 * (ops->on_frame_lost), which sends it again in a new packet with a new
 * number. Packets are never retransmitted.
 *
 * Reordering: a packet declared lost that is acknowledged afterwards was
 * only late. Each such spurious loss widens the thresholds (packets: to
 * the distance seen; time: by 1/8 RTT) so a path that reorders stops
 * triggering retransmissions and window reductions, as RACK does (RFC
 * 8985 6.2).
 *
 * Optimistic ACKs: acknowledging a packet number that was never sent is a
 * protocol error (RFC 9000 13.1). Now and then a number is skipped on
 * purpose, so a peer that acknowledges what it has not received is caught
 * (RFC 9000 21.4).
 */
#ifndef PSD_RECOVERY_H
#define PSD_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc.h"
#include "frame.h"

#define PSD_SENT_RING		4096	/* packets tracked at once */
#define PSD_SENT_FRAMES_MAX	4	/* retransmittable frames per packet */
#define PSD_SKIPPED_KEEP	32	/* recently skipped numbers kept */
#define PSD_INITIAL_RTT		(333 * PSD_MSEC)
#define PSD_GRANULARITY		PSD_MSEC
#define PSD_MAX_ACK_DELAY	(25 * PSD_MSEC)
#define PSD_PTO_BACKOFF_MAX	16
/*
 * Backed-off probe intervals stop growing here (or at the PTO itself if
 * that is longer): under heavy loss an unbounded backoff would outgrow
 * the 25 s idle timeout and kill a connection whose peer is still there.
 */
#define PSD_PTO_INTERVAL_MAX	(5 * PSD_NSEC)
#define PSD_RECENT_LOST		64	/* losses remembered to spot spurious ones */
#define PSD_PKT_THRESHOLD_MAX	256	/* reordering tolerated at most, packets */
#define PSD_TIME_THRESHOLD_MAX	16	/* x/8 of the RTT: at most 2 RTTs */

/* A retransmittable frame, as much as is needed to send it again. */
struct psd_sent_frame {
	uint8_t type;			/* enum psd_frame_type */
	uint32_t len;			/* DATA: bytes */
	uint64_t request_id;
	uint64_t offset;		/* DATA: offset; MAX_DATA: the value */
};

struct psd_sent_pkt {
	uint64_t time_sent;
	/* Delivery-rate state when it left (struct psd_rate_sample). */
	uint64_t delivered, delivered_time, first_sent_time;
	bool app_limited;
	uint16_t bytes;
	uint8_t state;			/* enum in recovery.c */
	bool ack_eliciting;
	bool pmtu_probe;		/* its loss is no congestion signal */
	uint8_t n_frames;
	struct psd_sent_frame frames[PSD_SENT_FRAMES_MAX];
};

struct psd_recovery_ops {
	void (*on_frame_acked)(void *ctx, const struct psd_sent_frame *f);
	void (*on_frame_lost)(void *ctx, const struct psd_sent_frame *f);
	/* Whole packets, after their frames (NULL: not used; path MTU). */
	void (*on_packet_acked)(void *ctx, const struct psd_sent_pkt *p,
				uint64_t now);
	void (*on_packet_lost)(void *ctx, const struct psd_sent_pkt *p,
			       uint64_t now);
};

struct psd_recovery {
	struct psd_sent_pkt *ring;
	uint64_t base;			/* oldest unresolved packet number */
	uint64_t next_pn;
	uint64_t largest_acked;
	bool any_acked;
	struct psd_rtt rtt;
	bool have_rtt;
	uint64_t first_rtt_sample;	/* ns; persistent congestion after it */
	uint64_t loss_time;		/* 0: no time-threshold timer */
	unsigned int pto_count;
	uint64_t last_ack_eliciting_sent;
	uint64_t bytes_in_flight;
	unsigned int ack_eliciting_in_flight;
	/* Delivery-rate estimation: bytes acked so far and when, the send
	 * time of the newest packet acked, and the delivered count until
	 * which samples are application-limited. */
	uint64_t delivered, delivered_time, first_sent_time;
	uint64_t app_limited_until;
	unsigned int pkt_threshold;	/* starts at 3 */
	unsigned int time_threshold;	/* eighths of the RTT, starts at 9 */
	/* Recently lost: number and the largest acked when declared. */
	struct {
		uint64_t pn, largest;
	} recent_lost[PSD_RECENT_LOST];
	unsigned int n_recent_lost;
	uint64_t skipped[PSD_SKIPPED_KEEP];
	unsigned int n_skipped;
	uint64_t next_skip;		/* packet number to skip next */
	uint64_t rng;
	struct psd_cc *cc;
	const struct psd_recovery_ops *ops;
	void *ctx;
	/* Counters for tests and stats. */
	uint64_t lost_packets, spurious_losses, ptos, persistent_congestions;
	uint64_t lost_probes;		/* path MTU probes: not in lost_packets */
};

/*
 * Sets up r over cc; ops get ctx. seed drives which numbers are skipped.
 * -ENOMEM. Free with psd_recovery_free.
 */
int psd_recovery_init(struct psd_recovery *r, struct psd_cc *cc,
		      const struct psd_recovery_ops *ops, void *ctx,
		      uint64_t seed);
void psd_recovery_free(struct psd_recovery *r);

/* True if the ring has room for another packet. */
bool psd_recovery_can_send(const struct psd_recovery *r);

/* The number for the next packet (skipping one now and then). */
uint64_t psd_recovery_take_pn(struct psd_recovery *r);

/*
 * Records packet pn (from psd_recovery_take_pn) sent at now: bytes on the
 * wire, whether it elicits an ACK and counts in flight (ACK-only packets do
 * not), and its retransmittable frames (at most PSD_SENT_FRAMES_MAX).
 */
void psd_recovery_on_sent(struct psd_recovery *r, uint64_t pn, uint64_t now,
			  size_t bytes, bool ack_eliciting,
			  const struct psd_sent_frame *frames,
			  unsigned int n_frames);

/*
 * Records packet pn as a path MTU probe (pmtu.h): in flight like any
 * ack-eliciting packet, but its loss is not a congestion event, does not
 * count towards persistent congestion, and it carries no frames.
 */
void psd_recovery_on_sent_probe(struct psd_recovery *r, uint64_t pn,
				uint64_t now, size_t bytes);

/*
 * The sender has nothing to send and room in the window: rate samples of
 * packets sent from now until they are acknowledged are marked
 * application-limited (they measure the sender, not the path).
 */
void psd_recovery_on_app_limited(struct psd_recovery *r);

/*
 * Processes an ACK frame received at now. Returns the number of packets
 * newly acknowledged, or -EPROTO if it acknowledges a packet number that
 * was never sent or was skipped (*ret_bad_pn says which).
 */
int psd_recovery_on_ack(struct psd_recovery *r, const struct psd_frame_ack *a,
			uint64_t now, uint64_t *ret_bad_pn);

/* The probe timeout without backoff: srtt + max(4 rttvar, 1 ms) + max_ack_delay. */
uint64_t psd_recovery_pto(const struct psd_recovery *r);

/* The PTO doubled count times, capped (PSD_PTO_INTERVAL_MAX). */
uint64_t psd_recovery_pto_backoff(const struct psd_recovery *r,
				  unsigned int count);

/* When psd_recovery_on_timeout is due; UINT64_MAX: never. */
uint64_t psd_recovery_timer(const struct psd_recovery *r);

/*
 * Handles the timer at now: declares packets lost by time (returns 0), or
 * a PTO fired: returns the number of probe packets to send (1 or 2).
 */
int psd_recovery_on_timeout(struct psd_recovery *r, uint64_t now);

#endif /* PSD_RECOVERY_H */
