// SPDX-License-Identifier: GPL-2.0
/*
 * Loss recovery (recovery.h), after RFC 9002 appendix A.
 *
 * A slot of the ring is FREE (not tracked: resolved, an ACK-only packet,
 * or not yet sent), SENT (ack-eliciting and in flight), ACKED, LOST or
 * SKIPPED (the number was never used). base moves past every slot that
 * is not SENT, so the ring holds exactly the unresolved window.
 * ACK-only packets are not tracked: they carry nothing to retransmit and
 * do not count in flight (RFC 9002 2), and a peer never acknowledges an
 * ACK-only packet on its own, so tracking them would fill the ring.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "recovery.h"

enum slot_state { SLOT_FREE, SLOT_SENT, SLOT_ACKED, SLOT_LOST, SLOT_SKIPPED };

#define RING_MASK	(PSD_SENT_RING - 1)
/* A number is skipped every SKIP_MIN .. SKIP_MIN + SKIP_SPAN packets. */
#define SKIP_MIN	64
#define SKIP_SPAN	512
#define PACKET_THRESHOLD 3
#define TIME_THRESHOLD	9	/* eighths of the RTT */
#define PERSISTENT_CONGESTION_THRESHOLD 3

static uint64_t next_random(uint64_t *state)
{
	/* splitmix64: deterministic for a given seed, good enough to hide
	 * which numbers are skipped from a peer that cannot see the seed. */
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct psd_sent_pkt *slot(const struct psd_recovery *r, uint64_t pn)
{
	return &r->ring[pn & RING_MASK];
}

int psd_recovery_init(struct psd_recovery *r, struct psd_cc *cc,
		      const struct psd_recovery_ops *ops, void *ctx,
		      uint64_t seed)
{
	memset(r, 0, sizeof(*r));
	r->ring = calloc(PSD_SENT_RING, sizeof(*r->ring));
	if (!r->ring)
		return -ENOMEM;
	r->cc = cc;
	r->ops = ops;
	r->ctx = ctx;
	r->rng = seed;
	r->next_skip = SKIP_MIN + next_random(&r->rng) % SKIP_SPAN;
	r->pkt_threshold = PACKET_THRESHOLD;
	r->time_threshold = TIME_THRESHOLD;
	for (unsigned int i = 0; i < PSD_RECENT_LOST; i++)
		r->recent_lost[i].pn = UINT64_MAX;
	r->rtt.smoothed = PSD_INITIAL_RTT;
	r->rtt.var = PSD_INITIAL_RTT / 2;
	return 0;
}

void psd_recovery_free(struct psd_recovery *r)
{
	free(r->ring);
	r->ring = NULL;
}

bool psd_recovery_can_send(const struct psd_recovery *r)
{
	/* Room for this packet and a skipped number before it. */
	return r->next_pn - r->base < PSD_SENT_RING - 2;
}

uint64_t psd_recovery_take_pn(struct psd_recovery *r)
{
	if (r->next_pn == r->next_skip) {
		slot(r, r->next_pn)->state = SLOT_SKIPPED;
		r->skipped[r->n_skipped++ % PSD_SKIPPED_KEEP] = r->next_pn;
		r->next_pn++;
		r->next_skip = r->next_pn + SKIP_MIN +
			       next_random(&r->rng) % SKIP_SPAN;
	}
	return r->next_pn++;
}

void psd_recovery_on_sent(struct psd_recovery *r, uint64_t pn, uint64_t now,
			  size_t bytes, bool ack_eliciting,
			  const struct psd_sent_frame *frames,
			  unsigned int n_frames)
{
	struct psd_sent_pkt *p = slot(r, pn);

	if (!ack_eliciting)
		return;
	if (n_frames > PSD_SENT_FRAMES_MAX)
		n_frames = PSD_SENT_FRAMES_MAX;
	if (r->bytes_in_flight == 0) {
		/* Idle until now: the next interval starts here, not at the
		 * last ACK (an idle gap is not slow delivery). */
		r->first_sent_time = now;
		r->delivered_time = now;
	}
	p->delivered = r->delivered;
	p->delivered_time = r->delivered_time;
	p->first_sent_time = r->first_sent_time;
	p->app_limited = r->app_limited_until != 0;
	p->time_sent = now;
	p->bytes = (uint16_t)bytes;
	p->state = SLOT_SENT;
	p->ack_eliciting = true;
	p->pmtu_probe = false;
	p->n_frames = (uint8_t)n_frames;
	if (n_frames)
		memcpy(p->frames, frames, n_frames * sizeof(*frames));
	r->bytes_in_flight += bytes;
	r->ack_eliciting_in_flight++;
	r->last_ack_eliciting_sent = now;
	r->cc->ops->on_sent(r->cc, now, bytes);
}

void psd_recovery_on_sent_probe(struct psd_recovery *r, uint64_t pn,
				uint64_t now, size_t bytes)
{
	psd_recovery_on_sent(r, pn, now, bytes, true, NULL, 0);
	slot(r, pn)->pmtu_probe = true;
}

static void advance_base(struct psd_recovery *r)
{
	while (r->base < r->next_pn && slot(r, r->base)->state != SLOT_SENT) {
		slot(r, r->base)->state = SLOT_FREE;
		r->base++;
	}
}

/* RFC 9002 5.3. */
static void update_rtt(struct psd_recovery *r, uint64_t latest,
		       uint64_t ack_delay, uint64_t now)
{
	struct psd_rtt *t = &r->rtt;
	uint64_t adjusted = latest, diff;

	t->latest = latest;
	if (!r->have_rtt) {
		r->have_rtt = true;
		r->first_rtt_sample = now;
		t->min = latest;
		t->smoothed = latest;
		t->var = latest / 2;
		return;
	}
	if (latest < t->min)
		t->min = latest;
	if (ack_delay > PSD_MAX_ACK_DELAY)
		ack_delay = PSD_MAX_ACK_DELAY;
	if (latest >= t->min + ack_delay)
		adjusted = latest - ack_delay;
	diff = t->smoothed > adjusted ? t->smoothed - adjusted :
					adjusted - t->smoothed;
	t->var = (3 * t->var + diff) / 4;
	t->smoothed = (7 * t->smoothed + adjusted) / 8;
}

static void remove_in_flight(struct psd_recovery *r, struct psd_sent_pkt *p)
{
	r->bytes_in_flight -= p->bytes;
	r->ack_eliciting_in_flight--;
}

static void declare_lost(struct psd_recovery *r, uint64_t pn,
			 struct psd_sent_pkt *p, uint64_t now)
{
	unsigned int i;

	p->state = SLOT_LOST;
	r->recent_lost[r->n_recent_lost % PSD_RECENT_LOST].pn = pn;
	r->recent_lost[r->n_recent_lost++ % PSD_RECENT_LOST].largest =
		r->largest_acked;
	remove_in_flight(r, p);
	/* A probe too large for the path says nothing about congestion. */
	if (p->pmtu_probe) {
		r->lost_probes++;
	} else {
		r->lost_packets++;
		r->cc->ops->on_lost(r->cc, now, p->bytes, p->time_sent);
	}
	for (i = 0; i < p->n_frames; i++)
		r->ops->on_frame_lost(r->ctx, &p->frames[i]);
	if (r->ops->on_packet_lost)
		r->ops->on_packet_lost(r->ctx, p, now);
}

static uint64_t persistent_congestion_duration(const struct psd_recovery *r)
{
	uint64_t var4 = 4 * r->rtt.var;

	return (r->rtt.smoothed + (var4 > PSD_GRANULARITY ? var4 :
				   PSD_GRANULARITY) + PSD_MAX_ACK_DELAY) *
	       PERSISTENT_CONGESTION_THRESHOLD;
}

/* Lost packets in a row, for persistent congestion (RFC 9002 7.6.2). */
struct lost_run {
	uint64_t start;
	bool active, persistent;
};

static void run_add(const struct psd_recovery *r, struct lost_run *run,
		    uint64_t time_sent)
{
	/* Only packets sent after the first RTT sample count. */
	if (!r->have_rtt || time_sent <= r->first_rtt_sample)
		return;
	if (!run->active)
		run->start = time_sent;
	run->active = true;
	if (time_sent - run->start > persistent_congestion_duration(r))
		run->persistent = true;
}

static void arm_loss_time(struct psd_recovery *r, uint64_t when)
{
	if (r->loss_time == 0 || when < r->loss_time)
		r->loss_time = when;
}

/*
 * RFC 9002 6.1 and 7.6: declares lost what is too far behind the largest
 * acknowledged packet in number or time; arms loss_time for the rest.
 * Persistent congestion: lost packets spanning more than the duration
 * with nothing acknowledged between them.
 */
static void detect_lost(struct psd_recovery *r, uint64_t now)
{
	uint64_t max_rtt = r->rtt.latest > r->rtt.smoothed ? r->rtt.latest :
							     r->rtt.smoothed;
	uint64_t delay = max_rtt * r->time_threshold / 8, lost_before, pn;
	struct lost_run run = { 0 };

	r->loss_time = 0;
	if (!r->any_acked)
		return;
	if (delay < PSD_GRANULARITY)
		delay = PSD_GRANULARITY;
	lost_before = now > delay ? now - delay : 0;
	for (pn = r->base; pn <= r->largest_acked && pn < r->next_pn; pn++) {
		struct psd_sent_pkt *p = slot(r, pn);

		if (p->state == SLOT_ACKED)
			run.active = false;
		if (p->state != SLOT_SENT)
			continue;
		if (p->time_sent > lost_before &&
		    r->largest_acked < pn + r->pkt_threshold) {
			arm_loss_time(r, p->time_sent + delay);
			run.active = false;
			continue;
		}
		if (!p->pmtu_probe)
			run_add(r, &run, p->time_sent);
		declare_lost(r, pn, p, now);
	}
	if (run.persistent) {
		r->persistent_congestions++;
		r->cc->ops->on_persistent_congestion(r->cc, now);
	}
}

static bool was_skipped(const struct psd_recovery *r, uint64_t lo, uint64_t hi,
			uint64_t *ret_pn)
{
	unsigned int i, n = r->n_skipped < PSD_SKIPPED_KEEP ? r->n_skipped :
							     PSD_SKIPPED_KEEP;

	for (i = 0; i < n; i++) {
		if (r->skipped[i] >= lo && r->skipped[i] <= hi) {
			*ret_pn = r->skipped[i];
			return true;
		}
	}
	return false;
}

/* Keeps in rs the delivery state of the newest packet acknowledged. */
static void rate_track(struct psd_recovery *r, const struct psd_sent_pkt *p,
		       struct psd_rate_sample *rs, uint64_t *ret_prior_time,
		       uint64_t *ret_send_elapsed)
{
	r->delivered += p->bytes;
	rs->acked += p->bytes;
	if (rs->acked != p->bytes && p->delivered < rs->prior_delivered)
		return;
	rs->prior_delivered = p->delivered;
	rs->app_limited = p->app_limited;
	*ret_prior_time = p->delivered_time;
	*ret_send_elapsed = p->time_sent - p->first_sent_time;
	r->first_sent_time = p->time_sent;
}

static void mark_acked(struct psd_recovery *r, struct psd_sent_pkt *p,
		       uint64_t now)
{
	unsigned int i;

	p->state = SLOT_ACKED;
	remove_in_flight(r, p);
	r->cc->ops->on_acked(r->cc, now, p->bytes, p->time_sent,
			     r->bytes_in_flight, &r->rtt);
	for (i = 0; i < p->n_frames; i++)
		r->ops->on_frame_acked(r->ctx, &p->frames[i]);
	if (r->ops->on_packet_acked)
		r->ops->on_packet_acked(r->ctx, p, now);
}

/* Every number in the ranges was sent (and not skipped): else *ret_bad_pn. */
static bool ack_plausible(const struct psd_recovery *r,
			  const struct psd_frame_ack *a, uint64_t *ret_bad_pn)
{
	unsigned int i;
	uint64_t pn;

	if (a->r[0].hi >= r->next_pn) {
		*ret_bad_pn = a->r[0].hi;
		return false;
	}
	for (i = 0; i < a->n_ranges; i++) {
		if (was_skipped(r, a->r[i].lo, a->r[i].hi, ret_bad_pn))
			return false;
		for (pn = a->r[i].lo > r->base ? a->r[i].lo : r->base;
		     pn <= a->r[i].hi; pn++) {
			if (slot(r, pn)->state == SLOT_SKIPPED) {
				*ret_bad_pn = pn;
				return false;
			}
		}
	}
	return true;
}

/* Lost packets this ACK shows were only late: widen the thresholds. */
static void detect_spurious(struct psd_recovery *r,
			    const struct psd_frame_ack *a)
{
	unsigned int i, k;

	for (k = 0; k < PSD_RECENT_LOST; k++) {
		uint64_t pn = r->recent_lost[k].pn, dist;

		if (pn == UINT64_MAX)
			continue;
		for (i = 0; i < a->n_ranges; i++)
			if (pn >= a->r[i].lo && pn <= a->r[i].hi)
				break;
		if (i == a->n_ranges)
			continue;
		r->recent_lost[k].pn = UINT64_MAX;
		r->spurious_losses++;
		dist = r->recent_lost[k].largest - pn + 1;
		if (dist > r->pkt_threshold)
			r->pkt_threshold = dist < PSD_PKT_THRESHOLD_MAX ?
					   (unsigned int)dist :
					   PSD_PKT_THRESHOLD_MAX;
		if (r->time_threshold < PSD_TIME_THRESHOLD_MAX)
			r->time_threshold++;
	}
}

void psd_recovery_on_app_limited(struct psd_recovery *r)
{
	uint64_t until = r->delivered + r->bytes_in_flight;

	r->app_limited_until = until ? until : 1;
}

/*
 * Completes the rate sample of an ACK: the interval is the longer of the
 * send and ACK intervals, and one shorter than the minimum RTT is not
 * trusted (ACK compression).
 */
static void rate_finish(struct psd_recovery *r, struct psd_rate_sample *rs,
			uint64_t now, uint64_t prior_time,
			uint64_t send_elapsed)
{
	uint64_t ack_elapsed = now - prior_time;

	r->delivered_time = now;
	if (r->app_limited_until && r->delivered > r->app_limited_until)
		r->app_limited_until = 0;
	rs->total_delivered = r->delivered;
	rs->delivered = r->delivered - rs->prior_delivered;
	rs->bytes_in_flight = r->bytes_in_flight;
	rs->interval = send_elapsed > ack_elapsed ? send_elapsed : ack_elapsed;
	if (r->have_rtt && rs->interval < r->rtt.min)
		rs->interval = 0;
}

int psd_recovery_on_ack(struct psd_recovery *r, const struct psd_frame_ack *a,
			uint64_t now, uint64_t *ret_bad_pn)
{
	struct psd_rate_sample rs = { 0 };
	uint64_t prior_time = now, send_elapsed = 0;
	struct psd_sent_pkt *largest;
	unsigned int i;
	int newly = 0;
	uint64_t pn;

	if (!ack_plausible(r, a, ret_bad_pn))
		return -EPROTO;
	detect_spurious(r, a);
	largest = slot(r, a->r[0].hi);
	if (a->r[0].hi >= r->base && largest->state == SLOT_SENT &&
	    now >= largest->time_sent) {
		update_rtt(r, now - largest->time_sent,
			   a->ack_delay_us * 1000, now);
		rs.rtt = r->rtt.latest;
	}
	for (i = 0; i < a->n_ranges; i++) {
		for (pn = a->r[i].lo > r->base ? a->r[i].lo : r->base;
		     pn <= a->r[i].hi; pn++) {
			if (slot(r, pn)->state != SLOT_SENT)
				continue;
			rate_track(r, slot(r, pn), &rs, &prior_time,
				   &send_elapsed);
			mark_acked(r, slot(r, pn), now);
			newly++;
		}
	}
	if (!r->any_acked || a->r[0].hi > r->largest_acked)
		r->largest_acked = a->r[0].hi;
	r->any_acked = true;
	if (newly) {
		detect_lost(r, now);
		r->pto_count = 0;
		rate_finish(r, &rs, now, prior_time, send_elapsed);
		if (r->cc->ops->on_rate_sample)
			r->cc->ops->on_rate_sample(r->cc, now, &rs);
	}
	advance_base(r);
	return newly;
}

uint64_t psd_recovery_pto(const struct psd_recovery *r)
{
	uint64_t var4 = 4 * r->rtt.var;

	return r->rtt.smoothed + (var4 > PSD_GRANULARITY ? var4 :
				  PSD_GRANULARITY) + PSD_MAX_ACK_DELAY;
}

uint64_t psd_recovery_pto_backoff(const struct psd_recovery *r,
				  unsigned int count)
{
	uint64_t pto = psd_recovery_pto(r);
	uint64_t cap = pto > PSD_PTO_INTERVAL_MAX ? pto : PSD_PTO_INTERVAL_MAX;
	uint64_t t = pto << (count < PSD_PTO_BACKOFF_MAX ? count :
						       PSD_PTO_BACKOFF_MAX);

	return t < cap ? t : cap;
}

uint64_t psd_recovery_timer(const struct psd_recovery *r)
{
	if (r->loss_time)
		return r->loss_time;
	if (r->ack_eliciting_in_flight == 0)
		return UINT64_MAX;
	return r->last_ack_eliciting_sent +
	       psd_recovery_pto_backoff(r, r->pto_count);
}

int psd_recovery_on_timeout(struct psd_recovery *r, uint64_t now)
{
	if (r->loss_time && now >= r->loss_time) {
		detect_lost(r, now);
		advance_base(r);
		return 0;
	}
	if (r->pto_count < PSD_PTO_BACKOFF_MAX)
		r->pto_count++;
	r->ptos++;
	return 2;
}
