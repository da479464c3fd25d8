/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The anti-replay window of one receive direction (one key): which packet
 * numbers were already accepted, after RFC 6479. A bitmap of
 * PSD_REPLAY_BITS bits in 64-bit blocks used as a ring; the block holding
 * the greatest number accepted is the newest, the one after it (the oldest)
 * is cleared whenever the window slides into it, so the numbers accepted
 * may lag the greatest by less than PSD_REPLAY_WINDOW (2048 - 64 = 1984):
 *
 *   greatest - pn >= PSD_REPLAY_WINDOW      too old: -ESTALE
 *   bit of pn set                           seen: -EALREADY
 *   else                                    new: accepted, bit set; a pn
 *                                           above greatest slides the window
 *                                           (clearing at most every block)
 *
 * Check after decryption: only an authentic packet may move the window
 * (else a forged huge number would push every real packet out of it).
 * psd_replay_check() is the same test without marking, for dropping an
 * obvious duplicate before paying for decryption.
 *
 * Packet numbers are 64-bit and a key is retired long before its numbers
 * run out (rekey.h: reject after PSD_REJECT_AFTER_MESSAGES), so the window
 * never wraps around: no modular comparison is needed or done.
 */
#ifndef PSD_REPLAY_H
#define PSD_REPLAY_H

#include <stdint.h>

#define PSD_REPLAY_BITS		2048
#define PSD_REPLAY_BLOCKS	(PSD_REPLAY_BITS / 64)
#define PSD_REPLAY_WINDOW	(PSD_REPLAY_BITS - 64)

struct psd_replay {
	uint64_t greatest;			/* greatest accepted pn */
	uint64_t blocks[PSD_REPLAY_BLOCKS];
};

/* An empty window: nothing seen, every number from 0 is new. */
void psd_replay_init(struct psd_replay *r);

/* 0 if pn would be accepted, -EALREADY or -ESTALE. Changes nothing. */
int psd_replay_check(const struct psd_replay *r, uint64_t pn);

/* psd_replay_check(), and on 0 records pn (and slides the window). */
int psd_replay_accept(struct psd_replay *r, uint64_t pn);

#endif /* PSD_REPLAY_H */
