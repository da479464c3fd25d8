/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Chunk hashes: BLAKE2b-256 (libsodium's crypto_generichash, unkeyed) of
 * a chunk's bytes, data and index chunks alike (docs/manifest-format.md).
 *
 * A chunk whose bytes are all zero does not get its BLAKE2b hash: it gets
 * the reserved value PSD_HASH_ZERO, 32 zero bytes, which no BLAKE2b output
 * equals in practice (probability 2^-256). Such a chunk is never fetched
 * nor stored: its reader knows its length and writes zeros. Because an
 * index chunk that lists only all-zero chunks is itself all zeros, the rule
 * also covers the sparse parts of the index.
 *
 * psd_chunkhash_init() must run once before anything here (and before
 * identity.h and manifest.h): it is libsodium's sodium_init().
 */
#ifndef PSD_CHUNKHASH_H
#define PSD_CHUNKHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSD_HASH_LEN	32

/* -EIO if libsodium cannot initialise (no usable random source). */
int psd_chunkhash_init(void);

/* True if the len bytes at buf are all zero (len 0: true). */
bool psd_chunk_is_zero(const void *buf, size_t len);

/* True if h is the reserved all-zero-chunk value. */
bool psd_hash_is_zero(const uint8_t h[PSD_HASH_LEN]);

/* The hash of a chunk: PSD_HASH_ZERO for all zeros, else BLAKE2b-256. */
void psd_chunkhash(const void *buf, size_t len, uint8_t ret[PSD_HASH_LEN]);

/*
 * Checks a received chunk against the hash its manifest lists: 0 if it
 * matches, -EBADMSG if not. Data that fails here must never be written
 * to a cache device nor acknowledged; the sender is at fault, not the
 * chunk, so the caller fetches it again from another source.
 */
int psd_chunkhash_verify(const void *buf, size_t len,
			 const uint8_t expected[PSD_HASH_LEN]);

/*
 * Checks count consecutive chunks of chunk_size bytes at buf (one FETCH
 * covers several, contiguous in one buffer: fetch.c) against expected[0..
 * count). 0 if all match; else -EBADMSG with the first bad chunk's
 * position (0-based, from buf) in *ret_bad. -EINVAL if the range would
 * overflow size_t.
 */
int psd_chunkhash_verify_range(const void *buf, size_t chunk_size,
			       size_t count,
			       const uint8_t (*expected)[PSD_HASH_LEN],
			       size_t *ret_bad);

#endif /* PSD_CHUNKHASH_H */
