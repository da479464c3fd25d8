/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The key schedule's primitives, from libsodium 1.0.18's BLAKE2b
 * (crypto_generichash), which has a keyed mode: no HMAC is needed around
 * it, since keyed BLAKE2b is itself a PRF (RFC 7693 section 2.5), and
 * libsodium has no HKDF. docs/protocol.md ("Key derivation") gives the
 * construction with test vectors:
 *
 *   HASH(x)        = BLAKE2b(out=32, key=none, x)
 *   MAC(k, x)      = BLAKE2b(out=32, key=k (32 bytes), x)
 *   MAC16(k, x)    = BLAKE2b(out=16, key=k (32 bytes), x)     (mac1, mac2)
 *   KDFn(ck, ikm):   prk = MAC(ck, ikm)
 *                    T1  = MAC(prk, 0x01)
 *                    Ti  = MAC(prk, T(i-1) || i)              (i = 2, 3)
 *                    returns T1..Tn
 *
 * KDFn is HKDF (RFC 5869) with HMAC replaced by keyed BLAKE2b and an empty
 * info, as WireGuard's KDF1..3 are with HMAC-BLAKE2s. The intermediate
 * prk and T values are wiped before returning.
 * psd_chunkhash_init() (sodium_init()) must have run.
 */
#ifndef PSD_KDF_H
#define PSD_KDF_H

#include <stddef.h>
#include <stdint.h>

#define PSD_KDF_LEN	32	/* HASH, MAC and KDF outputs, chaining keys */
#define PSD_MAC16_LEN	16

/* HASH(a || b): either may be empty (len 0, pointer may be NULL). */
void psd_kdf_hash2(uint8_t out[PSD_KDF_LEN], const void *a, size_t alen,
		   const void *b, size_t blen);

/* MAC(key, in). */
void psd_kdf_mac(uint8_t out[PSD_KDF_LEN], const uint8_t key[PSD_KDF_LEN],
		 const void *in, size_t len);

/* MAC16(key, in). */
void psd_kdf_mac16(uint8_t out[PSD_MAC16_LEN],
		   const uint8_t key[PSD_KDF_LEN], const void *in, size_t len);

/*
 * KDFn(ck, ikm) with n = 1, 2 or 3 outputs: out1 always; out2 NULL for
 * one output, out3 NULL for two (out3 only with out2). Any output may
 * alias ck (the chaining key is usually replaced by T1).
 */
void psd_kdf(uint8_t out1[PSD_KDF_LEN], uint8_t *out2, uint8_t *out3,
	     const uint8_t ck[PSD_KDF_LEN], const void *ikm, size_t ikm_len);

#endif /* PSD_KDF_H */
