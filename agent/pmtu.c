// SPDX-License-Identifier: GPL-2.0
/*
 * Path MTU discovery upward (pmtu.h). Sizes are the datagram sizes the
 * connection builds for; a probe of size s proves s (it is at least s on
 * the wire), and a packet built for cur is at most cur on the wire, so no
 * packet is larger than a probe that was acknowledged.
 */
#include <string.h>

#include "pmtu.h"

/* Packets no larger than this are base-size (see PSD_PMTU_PN_SLACK). */
#define BASE_BYTES	(PSD_DGRAM_MIN + PSD_PMTU_PN_SLACK)

void psd_pmtu_init(struct psd_pmtu *pm, size_t max)
{
	memset(pm, 0, sizeof(*pm));
	pm->cur = PSD_DGRAM_MIN;
	if (max <= PSD_DGRAM_MIN) {
		pm->state = PSD_PMTU_DISABLED;
		pm->max = PSD_DGRAM_MIN;
		return;
	}
	pm->state = PSD_PMTU_SEARCHING;
	pm->max = max;
	pm->hi = max + 1;
	pm->st.searches = 1;
}

/* The size to try next: max until it failed, then halfway up to hi. */
static size_t next_size(const struct psd_pmtu *pm)
{
	if (pm->hi > pm->max)
		return pm->max;
	return pm->cur + (pm->hi - pm->cur) / 2;
}

static bool search_done(const struct psd_pmtu *pm)
{
	return pm->cur >= pm->max ||
	       (pm->hi <= pm->max && pm->hi - pm->cur <= PSD_PMTU_STEP);
}

/* Ends the search if nothing is left to try; the raise timer starts. */
static void settle(struct psd_pmtu *pm, uint64_t now)
{
	if (pm->state != PSD_PMTU_SEARCHING || !search_done(pm))
		return;
	pm->state = PSD_PMTU_COMPLETE;
	pm->raise_at = now + PSD_PMTU_RAISE_TIMER;
}

/* A new search from cur, with every size above it worth a try again. */
static void search(struct psd_pmtu *pm, uint64_t now)
{
	pm->state = PSD_PMTU_SEARCHING;
	pm->hi = pm->max + 1;
	pm->failures = 0;
	pm->st.searches++;
	settle(pm, now);
}

size_t psd_pmtu_probe_size(const struct psd_pmtu *pm)
{
	if (pm->state != PSD_PMTU_SEARCHING || pm->probing)
		return 0;
	return next_size(pm);
}

void psd_pmtu_limit(struct psd_pmtu *pm, size_t limit, uint64_t now)
{
	if (pm->state == PSD_PMTU_DISABLED || limit >= pm->max)
		return;
	if (limit <= PSD_DGRAM_MIN) {
		psd_pmtu_init(pm, PSD_DGRAM_MIN);
		return;
	}
	pm->max = limit;
	if (pm->cur > limit)
		pm->cur = limit;
	if (pm->hi > limit + 1)
		pm->hi = limit + 1;
	settle(pm, now);
}

void psd_pmtu_on_probe_sent(struct psd_pmtu *pm, size_t size)
{
	pm->probing = size;
	pm->st.probes_sent++;
}

static void check_black_hole(struct psd_pmtu *pm, uint64_t now)
{
	if (pm->cur <= PSD_DGRAM_MIN ||
	    pm->lost_run < PSD_PMTU_BLACK_HOLE_LOSSES || !pm->base_acked ||
	    pm->base_acked_sent <= pm->lost_run_start)
		return;
	pm->cur = PSD_DGRAM_MIN;
	pm->lost_run = 0;
	pm->st.black_holes++;
	search(pm, now);
}

void psd_pmtu_on_acked(struct psd_pmtu *pm, size_t bytes, bool probe,
		       uint64_t time_sent, uint64_t now)
{
	if (pm->state == PSD_PMTU_DISABLED)
		return;
	if (probe) {
		pm->st.probes_acked++;
		if (pm->probing > pm->cur && pm->probing <= pm->max)
			pm->cur = pm->probing;
		pm->probing = 0;
		pm->failures = 0;
		pm->lost_run = 0;
		settle(pm, now);
		return;
	}
	if (bytes > BASE_BYTES) {
		pm->lost_run = 0;	/* large packets do get through */
		return;
	}
	if (!pm->base_acked || time_sent > pm->base_acked_sent)
		pm->base_acked_sent = time_sent;
	pm->base_acked = true;
	check_black_hole(pm, now);
}

void psd_pmtu_on_lost(struct psd_pmtu *pm, size_t bytes, bool probe,
		      uint64_t time_sent, uint64_t now)
{
	size_t size = pm->probing;

	if (pm->state == PSD_PMTU_DISABLED)
		return;
	if (probe) {
		pm->st.probes_lost++;
		pm->probing = 0;
		if (!size || ++pm->failures < PSD_PMTU_MAX_PROBES)
			return;
		if (size < pm->hi)
			pm->hi = size;
		pm->failures = 0;
		settle(pm, now);
		return;
	}
	if (bytes <= BASE_BYTES)
		return;
	if (pm->lost_run++ == 0 || time_sent < pm->lost_run_start)
		pm->lost_run_start = time_sent;
	check_black_hole(pm, now);
}

uint64_t psd_pmtu_timer(const struct psd_pmtu *pm)
{
	return pm->state == PSD_PMTU_COMPLETE ? pm->raise_at : UINT64_MAX;
}

void psd_pmtu_on_timeout(struct psd_pmtu *pm, uint64_t now)
{
	if (pm->state == PSD_PMTU_COMPLETE && now >= pm->raise_at)
		search(pm, now);
}
