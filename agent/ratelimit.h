/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A token bucket per source address for handshake processing (each
 * accepted handshake costs Diffie-Hellman operations): at most
 * PSD_RATELIMIT_PER_SECOND per source per second after a burst of
 * PSD_RATELIMIT_BURST. Used under load, on messages whose mac2 proved the
 * source address (cookie.h), so a source cannot be spoofed to drain
 * another's budget.
 *
 * The table has a fixed number of entries, allocated once, in sets of
 * PSD_RATELIMIT_WAYS picked by a keyed SipHash of the address (an attacker
 * cannot aim at a victim's set). An entry idle long enough to have refilled
 * its whole burst is the same as no entry, so it is reused: old entries
 * expire without any sweep. When every entry of a set is still live, a new
 * source is refused (fails closed, as WireGuard does when its table is
 * full): the per-source bound always holds and memory never grows.
 * Time is passed in (monotonic ns).
 */
#ifndef PSD_RATELIMIT_H
#define PSD_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PSD_RATELIMIT_PER_SECOND	20
#define PSD_RATELIMIT_BURST		5
#define PSD_RATELIMIT_WAYS		8
#define PSD_RATELIMIT_KEY_MAX		16
/* Default table size: 8192 sources active within ~250 ms. */
#define PSD_RATELIMIT_ENTRIES		8192

struct psd_ratelimit_entry;

struct psd_ratelimiter {
	struct psd_ratelimit_entry *entries;
	size_t n_sets;
	uint8_t hash_key[16];
};

/*
 * A table of at least `entries` entries (rounded up to whole sets; 0 means
 * PSD_RATELIMIT_ENTRIES). -ENOMEM, -EINVAL if absurdly large.
 */
int psd_ratelimit_init(struct psd_ratelimiter *ret, size_t entries);

/* Frees the table. Accepts a zeroed or freed limiter. */
void psd_ratelimit_free(struct psd_ratelimiter *rl);

/*
 * True if the source key (len <= PSD_RATELIMIT_KEY_MAX bytes, e.g. from
 * psd_ratelimit_key()) may have one more handshake now, and counts it.
 * False if its bucket is empty, its set is full, or len is too long.
 */
bool psd_ratelimit_allow(struct psd_ratelimiter *rl, const void *key,
			 size_t len, uint64_t now_ns);

/*
 * The rate-limiting key of an address: an IPv4 address, also v4-mapped
 * (4 bytes), or the /64 prefix of an IPv6 one (8 bytes: a host commonly
 * owns a whole /64).
 * Returns its length, or -EAFNOSUPPORT.
 */
int psd_ratelimit_key(const struct sockaddr *sa,
		      uint8_t ret[PSD_RATELIMIT_KEY_MAX]);

#endif /* PSD_RATELIMIT_H */
