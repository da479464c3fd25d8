/* SPDX-License-Identifier: GPL-2.0 */
/*
 * QUIC variable-length integers (RFC 9000 section 16): the two high bits
 * of the first byte give the length (1, 2, 4 or 8 bytes), the other bits
 * are the value, big-endian. Values up to 2^62 - 1.
 *
 * Decoding is strict about the buffer (never reads past len) but accepts
 * non-minimal encodings, as QUIC does.
 */
#ifndef PSD_VARINT_H
#define PSD_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define PSD_VARINT_MAX	((1ull << 62) - 1)

/* Bytes needed for v (v <= PSD_VARINT_MAX). */
static inline size_t psd_varint_len(uint64_t v)
{
	if (v < (1ull << 6))
		return 1;
	if (v < (1ull << 14))
		return 2;
	if (v < (1ull << 30))
		return 4;
	return 8;
}

/* Writes v at p (cap bytes there); returns bytes written, 0 if no room. */
static inline size_t psd_varint_put(uint8_t *p, size_t cap, uint64_t v)
{
	size_t n = psd_varint_len(v), i;
	static const uint8_t prefix[9] = { [1] = 0x00, [2] = 0x40,
					   [4] = 0x80, [8] = 0xc0 };

	if (v > PSD_VARINT_MAX || n > cap)
		return 0;
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> 8 * (n - 1 - i));
	p[0] |= prefix[n];
	return n;
}

/* Reads one varint from p (len bytes); returns bytes used, 0 if truncated. */
static inline size_t psd_varint_get(const uint8_t *p, size_t len,
				    uint64_t *ret)
{
	size_t n, i;
	uint64_t v;

	if (len == 0)
		return 0;
	n = (size_t)1 << (p[0] >> 6);
	if (n > len)
		return 0;
	v = p[0] & 0x3f;
	for (i = 1; i < n; i++)
		v = v << 8 | p[i];
	*ret = v;
	return n;
}

#endif /* PSD_VARINT_H */
