// SPDX-License-Identifier: GPL-2.0
/* Chunk hashes and the all-zero reserved value: see chunkhash.h. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "chunkhash.h"

_Static_assert(PSD_HASH_LEN == crypto_generichash_BYTES,
	       "a chunk hash is libsodium's default BLAKE2b output");

int psd_chunkhash_init(void)
{
	/* 0: first call, 1: already done, -1: failure. */
	return sodium_init() < 0 ? -EIO : 0;
}

/*
 * Once the first byte is zero, buf equals itself shifted by one byte only
 * if every byte is zero: one memcmp, which the C library vectorises.
 */
bool psd_chunk_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	if (len == 0)
		return true;
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

bool psd_hash_is_zero(const uint8_t h[PSD_HASH_LEN])
{
	return sodium_is_zero(h, PSD_HASH_LEN);
}

void psd_chunkhash(const void *buf, size_t len, uint8_t ret[PSD_HASH_LEN])
{
	if (psd_chunk_is_zero(buf, len)) {
		memset(ret, 0, PSD_HASH_LEN);
		return;
	}
	/* Cannot fail for an unkeyed hash of the default length. */
	crypto_generichash(ret, PSD_HASH_LEN, buf, len, NULL, 0);
}

int psd_chunkhash_verify(const void *buf, size_t len,
			 const uint8_t expected[PSD_HASH_LEN])
{
	uint8_t h[PSD_HASH_LEN];

	/* Hashes are public: a plain comparison leaks nothing. */
	psd_chunkhash(buf, len, h);
	return memcmp(h, expected, PSD_HASH_LEN) ? -EBADMSG : 0;
}

int psd_chunkhash_verify_range(const void *buf, size_t chunk_size,
			       size_t count,
			       const uint8_t (*expected)[PSD_HASH_LEN],
			       size_t *ret_bad)
{
	const unsigned char *p = buf;
	size_t i;

	if (chunk_size && count > SIZE_MAX / chunk_size)
		return -EINVAL;
	for (i = 0; i < count; i++) {
		if (psd_chunkhash_verify(p + i * chunk_size, chunk_size,
					 expected[i])) {
			*ret_bad = i;
			return -EBADMSG;
		}
	}
	return 0;
}
