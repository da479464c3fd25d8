/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A bounded set of integer ranges, kept descending and merged: the packet
 * numbers an endpoint has received (what its ACK frames report), and the
 * byte ranges of a request received so far (reassembly).
 *
 * The set never holds more than its capacity of ranges, whatever a peer
 * sends. When it is full, a set made with evict=true forgets its lowest
 * range and raises its floor past it: every number below the floor counts
 * as present from then on (a packet number that old is a duplicate as far
 * as we care; its frames get retransmitted in a new packet if needed). A
 * set made with evict=false refuses the range instead (-ENOSPC): a
 * reassembly must not forget bytes.
 */
#ifndef PSD_ACKRANGES_H
#define PSD_ACKRANGES_H

#include <stdbool.h>
#include <stdint.h>

#include "frame.h"

#define PSD_RANGES_CAP_MAX	4096

struct psd_ranges {
	struct psd_ack_range *r;	/* r[0] is the highest range */
	unsigned int n, cap;
	uint64_t floor;			/* all below counts as present */
	bool evict;
};

/* cap in 1..PSD_RANGES_CAP_MAX. -EINVAL, -ENOMEM. */
int psd_ranges_init(struct psd_ranges *s, unsigned int cap, bool evict);

/* Frees the array. Accepts a zeroed or already freed set. */
void psd_ranges_free(struct psd_ranges *s);

/* Adds lo..hi (lo <= hi < 2^62). 0, -EINVAL, -ENOSPC (full, evict=false). */
int psd_ranges_add(struct psd_ranges *s, uint64_t lo, uint64_t hi);

/* True if v is in a range or below the floor. */
bool psd_ranges_contains(const struct psd_ranges *s, uint64_t v);

/* How many of lo..hi (lo <= hi) the ranges hold (the floor aside). */
uint64_t psd_ranges_count_in(const struct psd_ranges *s, uint64_t lo,
			     uint64_t hi);

/* True if the set is exactly one range lo..hi (a complete reassembly). */
bool psd_ranges_is_exactly(const struct psd_ranges *s, uint64_t lo,
			   uint64_t hi);

/*
 * Fills an ACK frame with the highest max_ranges ranges (the most recent
 * packets first; older ones are left out, not misreported). The set must
 * not be empty.
 */
void psd_ranges_to_ack(const struct psd_ranges *s, unsigned int max_ranges,
		       uint64_t ack_delay_us, struct psd_frame_ack *ret);

#endif /* PSD_ACKRANGES_H */
