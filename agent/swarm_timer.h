/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The swarm's timer in the io_uring loop: one timeout armed at the
 * swarm's next deadline (absolute, CLOCK_MONOTONIC like the swarm's
 * clock). Every handler may move that deadline (a datagram, a request,
 * the timer itself), so it is checked after each batch of completions
 * (psd_swarm_timer_arm, the loop's idle hook or called from one): an
 * earlier deadline updates the live timeout, a later one waits for it to
 * fire. Shared by peersnapd and peersnap-perf.
 */
#ifndef PSD_SWARM_TIMER_H
#define PSD_SWARM_TIMER_H

#include <stdint.h>

#include "loop.h"
#include "swarm.h"

struct psd_swarm_timer {
	struct psd_loop *loop;
	struct psd_swarm *sw;		/* NULL: stopped */
	uint64_t armed;			/* the live timeout's deadline; 0: none */
	struct __kernel_timespec ts, update_ts;
};

/* Takes the loop's PSD_OP_SWARM_TIMER handler for sw. */
void psd_swarm_timer_init(struct psd_swarm_timer *t, struct psd_loop *loop,
			  struct psd_swarm *sw);
/* Arms (or moves) the timeout for the swarm's next deadline. */
void psd_swarm_timer_arm(struct psd_swarm_timer *t);
/* Before the swarm is freed: a timeout that still fires does nothing. */
void psd_swarm_timer_stop(struct psd_swarm_timer *t);

#endif /* PSD_SWARM_TIMER_H */
