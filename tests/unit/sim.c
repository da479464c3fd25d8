// SPDX-License-Identifier: GPL-2.0
/*
 * The network simulator (sim.h). A link's queue is implicit: the
 * transmitter is busy until busy_until, so the bytes waiting at time t are
 * (busy_until - t) * rate. Packets in flight on both links wait in one
 * binary heap ordered by (arrival time, sequence number): ties keep their
 * send order, so a run depends only on the seed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define NEVER		UINT64_MAX
#define SENDS_PER_TURN	256
/* Iterations at one clock value before the run counts as stuck. */
#define SAME_TIME_MAX	10000
#define ITERATIONS_MAX	50000000ull

struct sim_pkt {
	uint64_t arrival, seq;
	int to;
	unsigned int src;		/* sender's address: 0, 1 rebound */
	size_t len;
	uint8_t data[];
};

uint64_t sim_random64(struct sim *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double sim_random(struct sim *s)
{
	return (double)(sim_random64(s) >> 11) / (double)(1ull << 53);
}

int sim_init(struct sim *s, uint64_t seed, const struct sim_link_cfg *a_to_b,
	     const struct sim_link_cfg *b_to_a)
{
	memset(s, 0, sizeof(*s));
	s->rng = seed;
	s->link[0].cfg = *a_to_b;
	s->link[1].cfg = *b_to_a;
	s->heap = calloc(SIM_INFLIGHT_MAX, sizeof(*s->heap));
	return s->heap ? 0 : -ENOMEM;
}

void sim_free(struct sim *s)
{
	size_t i;

	for (i = 0; i < s->n_heap; i++)
		free(s->heap[i]);
	free(s->heap);
	s->heap = NULL;
}

/* ---- the heap ------------------------------------------------------------ */

static bool before(const struct sim_pkt *a, const struct sim_pkt *b)
{
	return a->arrival < b->arrival ||
	       (a->arrival == b->arrival && a->seq < b->seq);
}

static void swap(struct sim_pkt **a, struct sim_pkt **b)
{
	struct sim_pkt *t = *a;

	*a = *b;
	*b = t;
}

static void heap_push(struct sim *s, struct sim_pkt *p)
{
	size_t i = s->n_heap++;

	s->heap[i] = p;
	while (i && before(s->heap[i], s->heap[(i - 1) / 2])) {
		swap(&s->heap[i], &s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
}

static struct sim_pkt *heap_pop(struct sim *s)
{
	struct sim_pkt *top = s->heap[0];
	size_t i = 0;

	s->heap[0] = s->heap[--s->n_heap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < s->n_heap && before(s->heap[l], s->heap[m]))
			m = l;
		if (r < s->n_heap && before(s->heap[r], s->heap[m]))
			m = r;
		if (m == i)
			break;
		swap(&s->heap[i], &s->heap[m]);
		i = m;
	}
	return top;
}

/* ---- links --------------------------------------------------------------- */

static bool lost(struct sim *s, struct sim_link *l)
{
	const struct sim_link_cfg *c = &l->cfg;

	if (c->ge_p_gb > 0) {
		/* Move the two-state chain one step, then lose by state. */
		if (l->ge_bad ? sim_random(s) < c->ge_p_bg :
				sim_random(s) < c->ge_p_gb)
			l->ge_bad = !l->ge_bad;
		if (l->ge_bad && sim_random(s) < c->ge_loss_bad)
			return true;
	}
	return c->loss > 0 && sim_random(s) < c->loss;
}

static uint64_t serialization(const struct sim_link_cfg *c, size_t len)
{
	return c->rate_bps ? (uint64_t)len * 8 * 1000000000ull / c->rate_bps : 0;
}

/* Admits a datagram to the queue; false if the queue is full. */
static bool enqueue(struct sim *s, struct sim_link *l, size_t len,
		    uint64_t *ret_done)
{
	const struct sim_link_cfg *c = &l->cfg;
	uint64_t start = l->busy_until > s->now ? l->busy_until : s->now;
	uint64_t backlog = 0;

	if (c->rate_bps && l->busy_until > s->now)
		backlog = (l->busy_until - s->now) * c->rate_bps / 8 /
			  1000000000ull;
	if (c->queue_bytes && backlog + len > c->queue_bytes)
		return false;
	if (backlog + len > l->st.max_queue_bytes)
		l->st.max_queue_bytes = backlog + len;
	l->busy_until = start + serialization(c, len);
	*ret_done = l->busy_until;
	return true;
}

static void put_in_flight(struct sim *s, int from, const uint8_t *d,
			  size_t len, unsigned int src, uint64_t arrival)
{
	struct sim_link *l = &s->link[from];
	struct sim_pkt *p;

	if (s->n_heap == SIM_INFLIGHT_MAX ||
	    !(p = malloc(sizeof(*p) + len))) {
		l->st.overflow++;
		return;
	}
	p->arrival = arrival;
	p->seq = s->seq++;
	p->to = 1 - from;
	p->src = src;
	p->len = len;
	memcpy(p->data, d, len);
	if (l->cfg.corrupt > 0 && sim_random(s) < l->cfg.corrupt) {
		p->data[sim_random64(s) % len] ^=
			(uint8_t)(1u << (sim_random64(s) % 8));
		l->st.corrupted++;
	}
	heap_push(s, p);
}

static void transmit(struct sim *s, int from, const uint8_t *d, size_t len)
{
	struct sim_link *l = &s->link[from];
	const struct sim_link_cfg *c = &l->cfg;
	unsigned int src = c->rebind_at && s->now >= c->rebind_at;
	uint64_t done, arrival;

	l->st.sent++;
	l->st.rebound += src;
	if (c->mtu && len > c->mtu) {
		l->st.mtu_drops++;
		return;
	}
	if (!enqueue(s, l, len, &done)) {
		l->st.queue_drops++;
		return;
	}
	if (done >= c->blackhole_start && done < c->blackhole_end) {
		l->st.blackholed++;
		return;
	}
	if (lost(s, l)) {
		l->st.lost++;
		return;
	}
	arrival = done + c->delay;
	if (c->reorder > 0 && sim_random(s) < c->reorder) {
		arrival += sim_random64(s) % (c->reorder_delay + 1);
		l->st.reordered++;
	}
	put_in_flight(s, from, d, len, src, arrival);
	if (c->duplicate > 0 && sim_random(s) < c->duplicate) {
		l->st.duplicated++;
		put_in_flight(s, from, d, len, src,
			      arrival + sim_random64(s) % (c->delay + 1));
	}
}

/* ---- the loop ------------------------------------------------------------ */

static void let_nodes_send(struct sim *s)
{
	uint8_t buf[SIM_DGRAM_MAX];
	int i, k;

	for (i = 0; i < 2; i++) {
		for (k = 0; k < SENDS_PER_TURN; k++) {
			size_t n = s->node[i].send(s->node[i].ctx, buf,
						   sizeof(buf), s->now);

			if (n == 0)
				break;
			transmit(s, i, buf, n);
		}
	}
}

static uint64_t next_event(struct sim *s)
{
	uint64_t t = s->n_heap ? s->heap[0]->arrival : NEVER;
	int i;

	for (i = 0; i < 2; i++) {
		uint64_t n = s->node[i].timeout(s->node[i].ctx, s->now);

		if (n < t)
			t = n;
	}
	return t;
}

static void deliver_due(struct sim *s)
{
	while (s->n_heap && s->heap[0]->arrival <= s->now) {
		struct sim_pkt *p = heap_pop(s);
		struct sim_link *l = &s->link[1 - p->to];

		l->st.delivered++;
		l->st.bytes_delivered += p->len;
		if (s->node[p->to].recv_from)
			s->node[p->to].recv_from(s->node[p->to].ctx, p->data,
						 p->len, p->src, s->now);
		else
			s->node[p->to].recv(s->node[p->to].ctx, p->data,
					    p->len, s->now);
		free(p);
	}
}

static void fire_timers(struct sim *s)
{
	int i;

	for (i = 0; i < 2; i++)
		if (s->node[i].timeout(s->node[i].ctx, s->now) <= s->now)
			s->node[i].on_timeout(s->node[i].ctx, s->now);
}

int sim_run(struct sim *s, uint64_t until,
	    bool (*step)(void *ctx, uint64_t now), void *ctx)
{
	uint64_t same_time = 0, last = s->now;

	while (s->iterations++ < ITERATIONS_MAX) {
		uint64_t t;

		if (step(ctx, s->now))
			return 0;
		let_nodes_send(s);
		t = next_event(s);
		if (t > until) {
			/* Nothing happens before until: look at it there. */
			s->now = until > s->now ? until : s->now;
			return step(ctx, s->now) ? 0 : -ETIMEDOUT;
		}
		if (t > s->now)
			s->now = t;
		same_time = s->now == last ? same_time + 1 : 0;
		last = s->now;
		if (same_time > SAME_TIME_MAX) {
			fprintf(stderr, "# sim stuck at %llu ns: node timers %llu %llu\n",
				(unsigned long long)s->now,
				(unsigned long long)s->node[0].timeout(s->node[0].ctx, s->now),
				(unsigned long long)s->node[1].timeout(s->node[1].ctx, s->now));
			return -ELOOP;
		}
		deliver_due(s);
		fire_timers(s);
	}
	return -ELOOP;
}

/* ---- psd_conn as a node --------------------------------------------------- */

static size_t conn_send(void *ctx, uint8_t *buf, size_t cap, uint64_t now)
{
	struct sim_conn *sc = ctx;
	size_t n = psd_conn_send(sc->c, buf, cap, now);
	uint64_t pn = psd_conn_stats(sc->c)->last_pn;

	if (n == 0)
		return 0;
	if (sc->any_sent && pn <= sc->last_pn)
		sc->pn_reuses++;
	sc->any_sent = true;
	sc->last_pn = pn;
	return n;
}

static void conn_recv(void *ctx, const uint8_t *d, size_t len, uint64_t now)
{
	struct sim_conn *sc = ctx;

	psd_conn_recv(sc->c, d, len, now);
}

static uint64_t conn_timeout(void *ctx, uint64_t now)
{
	struct sim_conn *sc = ctx;

	return psd_conn_timeout(sc->c, now);
}

static void conn_on_timeout(void *ctx, uint64_t now)
{
	struct sim_conn *sc = ctx;

	psd_conn_on_timeout(sc->c, now);
}

struct sim_node sim_conn_node(struct sim_conn *sc)
{
	return (struct sim_node){ .send = conn_send, .recv = conn_recv,
				  .timeout = conn_timeout,
				  .on_timeout = conn_on_timeout, .ctx = sc };
}
