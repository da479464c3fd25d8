// SPDX-License-Identifier: GPL-2.0
/*
 * Per-source token buckets in a fixed set-associative table (ratelimit.h).
 * Tokens are counted in nanoseconds of refill time, as WireGuard's
 * ratelimiter does: a handshake costs 1 s / PER_SECOND, a bucket holds at
 * most BURST handshakes' worth, and time elapsed is added back.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ratelimit.h"

#define NS_PER_S	1000000000ull
#define COST_NS		(NS_PER_S / PSD_RATELIMIT_PER_SECOND)
#define MAX_TOKENS_NS	(COST_NS * PSD_RATELIMIT_BURST)
/* No source can fill more than this; beyond it is a sign of a bug. */
#define MAX_ENTRIES	(1u << 24)

struct psd_ratelimit_entry {
	uint8_t key[PSD_RATELIMIT_KEY_MAX];
	uint8_t key_len;		/* 0: never used */
	uint64_t last_ns;
	uint64_t tokens_ns;
};

_Static_assert(crypto_shorthash_KEYBYTES == 16, "SipHash-2-4 key");

int psd_ratelimit_init(struct psd_ratelimiter *ret, size_t entries)
{
	size_t n_sets;

	if (!entries)
		entries = PSD_RATELIMIT_ENTRIES;
	if (entries > MAX_ENTRIES)
		return -EINVAL;
	n_sets = (entries + PSD_RATELIMIT_WAYS - 1) / PSD_RATELIMIT_WAYS;
	ret->entries = calloc(n_sets * PSD_RATELIMIT_WAYS,
			      sizeof(*ret->entries));
	if (!ret->entries)
		return -ENOMEM;
	ret->n_sets = n_sets;
	randombytes_buf(ret->hash_key, sizeof(ret->hash_key));
	return 0;
}

void psd_ratelimit_free(struct psd_ratelimiter *rl)
{
	free(rl->entries);
	memset(rl, 0, sizeof(*rl));
}

/* Tokens after refilling since last_ns, capped at a full burst. */
static uint64_t tokens_now(const struct psd_ratelimit_entry *e,
			   uint64_t now_ns)
{
	uint64_t elapsed = now_ns - e->last_ns;

	if (elapsed >= MAX_TOKENS_NS || e->tokens_ns >= MAX_TOKENS_NS - elapsed)
		return MAX_TOKENS_NS;
	return e->tokens_ns + elapsed;
}

/* An unused entry, or one whose bucket has refilled: as good as new. */
static bool entry_is_free(const struct psd_ratelimit_entry *e,
			  uint64_t now_ns)
{
	return !e->key_len || tokens_now(e, now_ns) == MAX_TOKENS_NS;
}

/* The entry of key in its set, else a free one to take, else NULL. */
static struct psd_ratelimit_entry *find_entry(struct psd_ratelimiter *rl,
					      const void *key, size_t len,
					      uint64_t now_ns)
{
	struct psd_ratelimit_entry *set, *free_entry = NULL;
	uint64_t h;

	crypto_shorthash((uint8_t *)&h, key, len, rl->hash_key);
	set = rl->entries + (h % rl->n_sets) * PSD_RATELIMIT_WAYS;
	for (int i = 0; i < PSD_RATELIMIT_WAYS; i++) {
		if (set[i].key_len == len && !memcmp(set[i].key, key, len))
			return &set[i];
		if (!free_entry && entry_is_free(&set[i], now_ns))
			free_entry = &set[i];
	}
	if (free_entry) {
		memcpy(free_entry->key, key, len);
		free_entry->key_len = (uint8_t)len;
		free_entry->last_ns = now_ns;
		free_entry->tokens_ns = MAX_TOKENS_NS;
	}
	return free_entry;
}

bool psd_ratelimit_allow(struct psd_ratelimiter *rl, const void *key,
			 size_t len, uint64_t now_ns)
{
	struct psd_ratelimit_entry *e;
	uint64_t tokens;

	if (!len || len > PSD_RATELIMIT_KEY_MAX)
		return false;
	e = find_entry(rl, key, len, now_ns);
	if (!e)
		return false;
	tokens = tokens_now(e, now_ns);
	e->last_ns = now_ns;
	if (tokens < COST_NS) {
		e->tokens_ns = tokens;
		return false;
	}
	e->tokens_ns = tokens - COST_NS;
	return true;
}

int psd_ratelimit_key(const struct sockaddr *sa,
		      uint8_t ret[PSD_RATELIMIT_KEY_MAX])
{
	memset(ret, 0, PSD_RATELIMIT_KEY_MAX);
	if (sa->sa_family == AF_INET) {
		memcpy(ret, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
			&((const struct sockaddr_in6 *)sa)->sin6_addr;

		/* A dual-stack socket's IPv4 peers: one bucket per address. */
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(ret, a->s6_addr + 12, 4);
			return 4;
		}
		memcpy(ret, a->s6_addr, 8);
		return 8;
	}
	return -EAFNOSUPPORT;
}
