// SPDX-License-Identifier: GPL-2.0
/*
 * The bounded range set (ackranges.h). A sorted array: packets mostly
 * arrive in order, so the work is nearly always at r[0]; a shuffled or
 * hostile arrival costs at most one memmove of cap entries.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ackranges.h"
#include "varint.h"

int psd_ranges_init(struct psd_ranges *s, unsigned int cap, bool evict)
{
	if (cap == 0 || cap > PSD_RANGES_CAP_MAX)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->r = calloc(cap, sizeof(*s->r));
	if (!s->r)
		return -ENOMEM;
	s->cap = cap;
	s->evict = evict;
	return 0;
}

void psd_ranges_free(struct psd_ranges *s)
{
	free(s->r);
	s->r = NULL;
	s->n = 0;
}

static void remove_at(struct psd_ranges *s, unsigned int i, unsigned int count)
{
	memmove(&s->r[i], &s->r[i + count],
		(s->n - i - count) * sizeof(s->r[0]));
	s->n -= count;
}

static void insert_at(struct psd_ranges *s, unsigned int i, uint64_t lo,
		      uint64_t hi)
{
	memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
	s->r[i] = (struct psd_ack_range){ .lo = lo, .hi = hi };
	s->n++;
}

/* Makes room for one more range below index i; -ENOSPC if not allowed. */
static int make_room(struct psd_ranges *s, unsigned int i, uint64_t *lo,
		     uint64_t hi, bool *ret_dropped)
{
	*ret_dropped = false;
	if (s->n < s->cap)
		return 0;
	if (!s->evict)
		return -ENOSPC;
	if (i == s->n) {
		/* The new range would be the lowest: forget it instead. */
		s->floor = hi + 1;
		*ret_dropped = true;
		return 0;
	}
	s->floor = s->r[s->n - 1].hi + 1;
	s->n--;
	if (*lo < s->floor)
		*lo = s->floor;
	return 0;
}

int psd_ranges_add(struct psd_ranges *s, uint64_t lo, uint64_t hi)
{
	unsigned int i = 0, j;
	bool dropped;
	int err;

	if (lo > hi || hi > PSD_VARINT_MAX)
		return -EINVAL;
	if (hi < s->floor)
		return 0;
	if (lo < s->floor)
		lo = s->floor;
	/* Skip the ranges wholly above lo..hi and not touching it. */
	while (i < s->n && s->r[i].lo > hi + 1)
		i++;
	/* Merge every range that overlaps or touches lo..hi. */
	for (j = i; j < s->n && s->r[j].hi + 1 >= lo; j++) {
		if (s->r[j].lo < lo)
			lo = s->r[j].lo;
		if (s->r[j].hi > hi)
			hi = s->r[j].hi;
	}
	if (j > i) {
		s->r[i] = (struct psd_ack_range){ .lo = lo, .hi = hi };
		remove_at(s, i + 1, j - i - 1);
		return 0;
	}
	err = make_room(s, i, &lo, hi, &dropped);
	if (err || dropped)
		return err;
	insert_at(s, i, lo, hi);
	return 0;
}

uint64_t psd_ranges_count_in(const struct psd_ranges *s, uint64_t lo,
			     uint64_t hi)
{
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < s->n && s->r[i].hi >= lo; i++) {
		uint64_t a = s->r[i].lo > lo ? s->r[i].lo : lo;
		uint64_t b = s->r[i].hi < hi ? s->r[i].hi : hi;

		if (a <= b)
			n += b - a + 1;
	}
	return n;
}

bool psd_ranges_contains(const struct psd_ranges *s, uint64_t v)
{
	unsigned int lo = 0, hi = s->n;

	if (v < s->floor)
		return true;
	/* Binary search over the descending array. */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (s->r[mid].lo > v)
			lo = mid + 1;
		else if (s->r[mid].hi < v)
			hi = mid;
		else
			return true;
	}
	return false;
}

bool psd_ranges_is_exactly(const struct psd_ranges *s, uint64_t lo,
			   uint64_t hi)
{
	return s->n == 1 && s->r[0].lo == lo && s->r[0].hi == hi;
}

void psd_ranges_to_ack(const struct psd_ranges *s, unsigned int max_ranges,
		       uint64_t ack_delay_us, struct psd_frame_ack *ret)
{
	unsigned int n = s->n;

	if (n > max_ranges)
		n = max_ranges;
	if (n > PSD_ACK_RANGES_MAX)
		n = PSD_ACK_RANGES_MAX;
	ret->ack_delay_us = ack_delay_us;
	ret->n_ranges = n;
	memcpy(ret->r, s->r, n * sizeof(s->r[0]));
}
