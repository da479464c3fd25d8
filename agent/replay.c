// SPDX-License-Identifier: GPL-2.0
/*
 * RFC 6479 anti-replay window (replay.h).
 */
#include <errno.h>
#include <string.h>

#include "replay.h"

_Static_assert((PSD_REPLAY_BLOCKS & (PSD_REPLAY_BLOCKS - 1)) == 0,
	       "a power-of-two ring");

void psd_replay_init(struct psd_replay *r)
{
	memset(r, 0, sizeof(*r));
}

static uint64_t *block_of(struct psd_replay *r, uint64_t pn)
{
	return &r->blocks[(pn / 64) % PSD_REPLAY_BLOCKS];
}

static uint64_t bit_of(uint64_t pn)
{
	return 1ull << (pn % 64);
}

int psd_replay_check(const struct psd_replay *r, uint64_t pn)
{
	if (pn > r->greatest)
		return 0;
	if (r->greatest - pn >= PSD_REPLAY_WINDOW)
		return -ESTALE;
	if (r->blocks[(pn / 64) % PSD_REPLAY_BLOCKS] & bit_of(pn))
		return -EALREADY;
	return 0;
}

/* Clears the blocks the window slides into on its way to pn. */
static void slide_to(struct psd_replay *r, uint64_t pn)
{
	uint64_t from = r->greatest / 64, to = pn / 64;
	uint64_t n = to - from;

	if (n > PSD_REPLAY_BLOCKS)
		n = PSD_REPLAY_BLOCKS;
	for (uint64_t i = 1; i <= n; i++)
		r->blocks[(from + i) % PSD_REPLAY_BLOCKS] = 0;
	r->greatest = pn;
}

int psd_replay_accept(struct psd_replay *r, uint64_t pn)
{
	int rc = psd_replay_check(r, pn);

	if (rc)
		return rc;
	if (pn > r->greatest)
		slide_to(r, pn);
	*block_of(r, pn) |= bit_of(pn);
	return 0;
}
