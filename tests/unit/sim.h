/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A deterministic in-process network for transport tests: a virtual clock
 * (nanoseconds), a seeded PRNG, and two one-way links between node 0 and
 * node 1. A link has a rate, a one-way delay and a drop-tail queue, and
 * can lose packets at random or in bursts (Gilbert-Elliott), reorder,
 * duplicate and corrupt them, black-hole an interval, drop datagrams
 * above an MTU, and move the sender to a second source address from a
 * given time on (rebinding). Same seed, same configuration: same run, to
 * the packet.
 *
 * Nodes are anything with send/recv/timeout callbacks (a psd_conn through
 * sim_conn_node(), or a hand-written hostile peer). sim_run() alternates:
 * let every node send what it may now, jump the clock to the next event
 * (a delivery or a node's timer), deliver, fire timers. Every loop is
 * bounded in iterations and in simulated time.
 */
#ifndef PSD_TEST_SIM_H
#define PSD_TEST_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

#define SIM_DGRAM_MAX	1500
#define SIM_INFLIGHT_MAX 32768	/* packets on both links at once */

struct sim_link_cfg {
	uint64_t rate_bps;		/* 0: no rate limit */
	uint64_t delay;			/* one-way, ns */
	uint64_t queue_bytes;		/* drop-tail; 0: unlimited */
	double loss;			/* independent loss probability */
	/* Gilbert-Elliott: p(good -> bad), p(bad -> good), loss when bad. */
	double ge_p_gb, ge_p_bg, ge_loss_bad;
	double reorder;			/* probability of extra delay */
	uint64_t reorder_delay;		/* up to this much extra, ns */
	double duplicate, corrupt;
	uint64_t blackhole_start, blackhole_end;	/* ns, [start, end) */
	/*
	 * Address rebinding (a NAT's new mapping, another Wi-Fi): datagrams
	 * sent from this time on (ns; 0: never) come from the sender's
	 * second address (sim_node.recv_from's src 1 instead of 0).
	 */
	uint64_t rebind_at;
	size_t mtu;			/* 0: none */
};

struct sim_link_stats {
	uint64_t sent, delivered, bytes_delivered;
	uint64_t lost, queue_drops, blackholed, mtu_drops, overflow;
	uint64_t duplicated, corrupted, reordered;
	uint64_t rebound;		/* sent from the second address */
	uint64_t max_queue_bytes;
};

struct sim_node {
	size_t (*send)(void *ctx, uint8_t *buf, size_t cap, uint64_t now);
	void (*recv)(void *ctx, const uint8_t *d, size_t len, uint64_t now);
	/* Optional, called instead of recv: src is the sender's address
	 * (0, or 1 once its link rebound: sim_link_cfg.rebind_at). */
	void (*recv_from)(void *ctx, const uint8_t *d, size_t len,
			  unsigned int src, uint64_t now);
	uint64_t (*timeout)(void *ctx, uint64_t now);
	void (*on_timeout)(void *ctx, uint64_t now);
	void *ctx;
};

struct sim_link {
	struct sim_link_cfg cfg;
	struct sim_link_stats st;
	uint64_t busy_until;		/* the transmitter is busy until */
	bool ge_bad;
};

struct sim_pkt;

struct sim {
	uint64_t now;
	uint64_t rng;
	uint64_t seq;
	struct sim_link link[2];	/* link[i]: from node i to node 1 - i */
	struct sim_node node[2];
	struct sim_pkt **heap;		/* by arrival time, then seq */
	size_t n_heap;
	uint64_t iterations;
};

/* A psd_conn wrapped as a node that also checks its packet numbers. */
struct sim_conn {
	struct psd_conn *c;
	bool any_sent;
	uint64_t last_pn;
	uint64_t pn_reuses;		/* must stay 0: the AEAD nonce */
};

int sim_init(struct sim *s, uint64_t seed, const struct sim_link_cfg *a_to_b,
	     const struct sim_link_cfg *b_to_a);
void sim_free(struct sim *s);

struct sim_node sim_conn_node(struct sim_conn *sc);

/* A uniform double in [0, 1) and a 64-bit value from the sim's PRNG. */
double sim_random(struct sim *s);
uint64_t sim_random64(struct sim *s);

/*
 * Runs until step(ctx, now) returns true (called every iteration and at
 * until; it may issue requests), or the clock reaches until without it
 * (-ETIMEDOUT; the clock is left at until), or the loop
 * stops making progress (-ELOOP: a node keeps asking to be woken at a time
 * that has already come).
 */
int sim_run(struct sim *s, uint64_t until,
	    bool (*step)(void *ctx, uint64_t now), void *ctx);

#endif /* PSD_TEST_SIM_H */
