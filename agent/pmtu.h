/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Path MTU discovery upward for one connection (DPLPMTUD, RFC 8899; RFC
 * 9000 14.3): which datagram size the connection may use, and which probe
 * to send next. Pure logic: the connection tells it what was sent,
 * acknowledged and lost, and asks it for sizes (docs/protocol.md, "Path
 * MTU").
 *
 *   SEARCHING  probes look for a larger size: first max itself (most paths
 *              carry it), then a binary search between the largest size
 *              acknowledged (cur) and the smallest one that failed (hi),
 *              until the two are within PSD_PMTU_STEP. One probe is in
 *              flight at a time. A size fails when PSD_PMTU_MAX_PROBES
 *              probes of it in a row are lost; an acknowledged probe
 *              raises cur at once.
 *   COMPLETE   no probes; after PSD_PMTU_RAISE_TIMER the search starts
 *              again from cur (the path may have grown).
 *   DISABLED   max is the base: every datagram is PSD_DGRAM_MIN.
 *
 * Black holes: a path whose MTU shrinks drops every packet above it.
 * When PSD_PMTU_BLACK_HOLE_LOSSES packets above the base are lost in a
 * row (none of them acknowledged in between) while a base-size packet
 * sent after the first of them is acknowledged, cur falls back to the
 * base and a new search starts. (The connection sends the probes of a PTO
 * at the base size, so a shrunken path still gets some through.) An
 * outage that base-size packets outlive may look the same: it costs one
 * search.
 */
#ifndef PSD_PMTU_H
#define PSD_PMTU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc.h"
#include "packet.h"

#define PSD_PMTU_MAX_PROBES		3
#define PSD_PMTU_STEP			16	/* bytes: the search's resolution */
#define PSD_PMTU_RAISE_TIMER		(600 * PSD_NSEC)
#define PSD_PMTU_BLACK_HOLE_LOSSES	16
/*
 * A datagram built for a size may come out this much longer: the session
 * layer may encode a packet number in 4 bytes where the connection
 * counted 1 (docs/protocol.md, "Key ownership").
 */
#define PSD_PMTU_PN_SLACK	(PSD_PKT_HDR_MAX - (1 + PSD_PKT_CID_LEN + 1))

enum psd_pmtu_state {
	PSD_PMTU_DISABLED,
	PSD_PMTU_SEARCHING,
	PSD_PMTU_COMPLETE,
};

struct psd_pmtu_stats {
	uint64_t probes_sent, probes_acked, probes_lost;
	uint64_t black_holes;		/* fallbacks to the base */
	uint64_t searches;		/* searches started */
};

struct psd_pmtu {
	enum psd_pmtu_state state;
	size_t max;			/* the largest size to try */
	size_t cur;			/* acknowledged: packets may be this big */
	size_t hi;			/* smallest size that failed; max + 1: none */
	size_t probing;			/* the probe in flight; 0: none */
	unsigned int failures;		/* probes of the next size lost in a row */
	uint64_t raise_at;		/* COMPLETE: when to search again */
	/* Black hole detection: lost packets above the base in a row, the
	 * send time of the first, and of the newest base-size packet acked. */
	unsigned int lost_run;
	uint64_t lost_run_start;
	uint64_t base_acked_sent;
	bool base_acked;
	struct psd_pmtu_stats st;
};

/* Starts at the base; searches up to max at once, or never if max <= base. */
void psd_pmtu_init(struct psd_pmtu *pm, size_t max);

/* The size packets may have now (PSD_DGRAM_MIN .. max). */
static inline size_t psd_pmtu_size(const struct psd_pmtu *pm)
{
	return pm->cur;
}

/* The size of the probe to send now; 0: none due. */
size_t psd_pmtu_probe_size(const struct psd_pmtu *pm);

/* The caller can send nothing above limit (its buffer): max drops to it. */
void psd_pmtu_limit(struct psd_pmtu *pm, size_t limit, uint64_t now);

/* A probe of psd_pmtu_probe_size() bytes left. */
void psd_pmtu_on_probe_sent(struct psd_pmtu *pm, size_t size);

/*
 * A packet of bytes on the wire, sent at time_sent, was acknowledged or
 * declared lost at now; probe: it was the probe.
 */
void psd_pmtu_on_acked(struct psd_pmtu *pm, size_t bytes, bool probe,
		       uint64_t time_sent, uint64_t now);
void psd_pmtu_on_lost(struct psd_pmtu *pm, size_t bytes, bool probe,
		      uint64_t time_sent, uint64_t now);

/* When psd_pmtu_on_timeout has work (the raise timer); UINT64_MAX: never. */
uint64_t psd_pmtu_timer(const struct psd_pmtu *pm);
void psd_pmtu_on_timeout(struct psd_pmtu *pm, uint64_t now);

#endif /* PSD_PMTU_H */
