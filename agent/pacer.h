/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pacing: a token bucket that spreads a window's packets over the RTT
 * instead of sending them in one burst into the bottleneck's queue. Tokens
 * (bytes) accrue at the rate the controller allows (psd_cc_pacing_rate),
 * up to a burst of a few packets; a packet leaves when its bytes are there.
 */
#ifndef PSD_PACER_H
#define PSD_PACER_H

#include <stddef.h>
#include <stdint.h>

struct psd_pacer {
	uint64_t rate;			/* bytes per second; 0: unpaced */
	uint64_t burst;			/* bucket size, bytes */
	uint64_t tokens;
	uint64_t last;			/* ns of the last refill */
};

/* Starts with a full bucket of burst bytes at rate (0: unpaced). */
void psd_pacer_init(struct psd_pacer *p, uint64_t rate, uint64_t burst,
		    uint64_t now);

/* Changes the rate and burst (tokens already earned are kept, capped). */
void psd_pacer_set(struct psd_pacer *p, uint64_t rate, uint64_t burst,
		   uint64_t now);

/* The earliest time >= now at which a packet of bytes may leave. */
uint64_t psd_pacer_next(const struct psd_pacer *p, uint64_t now, size_t bytes);

/* Takes bytes out of the bucket (it may run dry, never negative). */
void psd_pacer_on_sent(struct psd_pacer *p, uint64_t now, size_t bytes);

#endif /* PSD_PACER_H */
