// SPDX-License-Identifier: GPL-2.0
/* The swarm's timer in the io_uring loop (swarm_timer.h). */
#include <errno.h>

#include "swarm_timer.h"

enum { SWARM_TIMER, SWARM_TIMER_UPDATE };

static void ns_to_ts(uint64_t ns, struct __kernel_timespec *ts)
{
	ts->tv_sec = (long long)(ns / PSD_NSEC);
	ts->tv_nsec = (long long)(ns % PSD_NSEC);
}

static void on_timer(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_swarm_timer *t = ctx;

	(void)flags;
	/* An update's own completion; -ENOENT: the timer had just fired. */
	if (ud.idx != SWARM_TIMER)
		return;
	t->armed = 0;
	if (res == -ETIME && t->sw)
		psd_swarm_on_timer(t->sw);
}

void psd_swarm_timer_init(struct psd_swarm_timer *t, struct psd_loop *loop,
			  struct psd_swarm *sw)
{
	*t = (struct psd_swarm_timer){ .loop = loop, .sw = sw };
	psd_loop_set_handler(loop, PSD_OP_SWARM_TIMER, on_timer, t);
}

void psd_swarm_timer_arm(struct psd_swarm_timer *t)
{
	struct io_uring_sqe *sqe;
	uint64_t d;

	if (!t->sw)
		return;
	d = psd_swarm_next_deadline(t->sw);
	if (d == UINT64_MAX || (t->armed && d >= t->armed))
		return;
	sqe = psd_loop_sqe(t->loop);
	if (!sqe)
		return;		/* the ring is sized so that it cannot */
	if (t->armed) {
		ns_to_ts(d, &t->update_ts);
		io_uring_prep_timeout_update(sqe, &t->update_ts,
			psd_ud_encode((struct psd_ud){
				.op = PSD_OP_SWARM_TIMER, .idx = SWARM_TIMER }),
			IORING_TIMEOUT_ABS);
		psd_loop_tag(sqe, (struct psd_ud){
			.op = PSD_OP_SWARM_TIMER, .idx = SWARM_TIMER_UPDATE });
	} else {
		ns_to_ts(d, &t->ts);
		io_uring_prep_timeout(sqe, &t->ts, 0, IORING_TIMEOUT_ABS);
		psd_loop_tag(sqe, (struct psd_ud){
			.op = PSD_OP_SWARM_TIMER, .idx = SWARM_TIMER });
	}
	t->armed = d;
}

void psd_swarm_timer_stop(struct psd_swarm_timer *t)
{
	t->sw = NULL;
}
