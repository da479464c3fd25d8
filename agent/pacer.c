// SPDX-License-Identifier: GPL-2.0
/*
 * The token bucket (pacer.h). Time is the caller's nanoseconds; products
 * are 128-bit so no rate or interval overflows.
 */
#include "cc.h"
#include "pacer.h"

/* Tokens earned by now, capped at the burst. */
static uint64_t tokens_at(const struct psd_pacer *p, uint64_t now)
{
	unsigned __int128 earned;

	if (p->rate == 0 || now <= p->last)
		return p->tokens;
	earned = (unsigned __int128)(now - p->last) * p->rate / PSD_NSEC;
	earned += p->tokens;
	return earned > p->burst ? p->burst : (uint64_t)earned;
}

void psd_pacer_init(struct psd_pacer *p, uint64_t rate, uint64_t burst,
		    uint64_t now)
{
	*p = (struct psd_pacer){ .rate = rate, .burst = burst,
				 .tokens = burst, .last = now };
}

void psd_pacer_set(struct psd_pacer *p, uint64_t rate, uint64_t burst,
		   uint64_t now)
{
	p->tokens = tokens_at(p, now);
	if (now > p->last)
		p->last = now;
	p->rate = rate;
	p->burst = burst;
	if (p->tokens > burst)
		p->tokens = burst;
}

uint64_t psd_pacer_next(const struct psd_pacer *p, uint64_t now, size_t bytes)
{
	uint64_t have = tokens_at(p, now);
	unsigned __int128 wait;

	if (p->rate == 0 || have >= bytes)
		return now;
	wait = (unsigned __int128)(bytes - have) * PSD_NSEC + p->rate - 1;
	wait /= p->rate;
	return now + (uint64_t)wait;
}

void psd_pacer_on_sent(struct psd_pacer *p, uint64_t now, size_t bytes)
{
	p->tokens = tokens_at(p, now);
	if (now > p->last)
		p->last = now;
	p->tokens = p->tokens > bytes ? p->tokens - bytes : 0;
}
