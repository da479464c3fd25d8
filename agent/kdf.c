// SPDX-License-Identifier: GPL-2.0
/*
 * Keyed BLAKE2b as MAC and HKDF-like KDF (kdf.h, docs/protocol.md).
 */
#include <string.h>

#include <sodium.h>

#include "kdf.h"

_Static_assert(PSD_KDF_LEN >= crypto_generichash_KEYBYTES_MIN &&
	       PSD_KDF_LEN <= crypto_generichash_KEYBYTES_MAX,
	       "32-byte keys are valid BLAKE2b keys");
_Static_assert(PSD_MAC16_LEN >= crypto_generichash_BYTES_MIN,
	       "16-byte BLAKE2b outputs are allowed");

void psd_kdf_hash2(uint8_t out[PSD_KDF_LEN], const void *a, size_t alen,
		   const void *b, size_t blen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, PSD_KDF_LEN);
	if (alen)
		crypto_generichash_update(&st, a, alen);
	if (blen)
		crypto_generichash_update(&st, b, blen);
	crypto_generichash_final(&st, out, PSD_KDF_LEN);
}

/* Keyed BLAKE2b whose state (it holds the key) is wiped afterwards. */
static void keyed_blake2b(uint8_t *out, size_t out_len,
			  const uint8_t key[PSD_KDF_LEN], const void *in,
			  size_t len)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, key, PSD_KDF_LEN, out_len);
	crypto_generichash_update(&st, in, len);
	crypto_generichash_final(&st, out, out_len);
	sodium_memzero(&st, sizeof(st));
}

void psd_kdf_mac(uint8_t out[PSD_KDF_LEN], const uint8_t key[PSD_KDF_LEN],
		 const void *in, size_t len)
{
	keyed_blake2b(out, PSD_KDF_LEN, key, in, len);
}

void psd_kdf_mac16(uint8_t out[PSD_MAC16_LEN],
		   const uint8_t key[PSD_KDF_LEN], const void *in, size_t len)
{
	keyed_blake2b(out, PSD_MAC16_LEN, key, in, len);
}

/* T(i) = MAC(prk, T(i-1) || i), T(0) empty; t holds T(i-1), gets T(i). */
static void expand_step(uint8_t t[PSD_KDF_LEN], const uint8_t prk[PSD_KDF_LEN],
			uint8_t i)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, prk, PSD_KDF_LEN, PSD_KDF_LEN);
	if (i > 1)
		crypto_generichash_update(&st, t, PSD_KDF_LEN);
	crypto_generichash_update(&st, &i, 1);
	crypto_generichash_final(&st, t, PSD_KDF_LEN);
	sodium_memzero(&st, sizeof(st));
}

void psd_kdf(uint8_t out1[PSD_KDF_LEN], uint8_t *out2, uint8_t *out3,
	     const uint8_t ck[PSD_KDF_LEN], const void *ikm, size_t ikm_len)
{
	uint8_t prk[PSD_KDF_LEN], t[PSD_KDF_LEN];
	uint8_t *outs[3] = { out1, out2, out2 ? out3 : NULL };

	psd_kdf_mac(prk, ck, ikm, ikm_len);
	/* Outputs may alias ck: ck is not read after prk exists. */
	for (uint8_t i = 1; i <= 3 && outs[i - 1]; i++) {
		expand_step(t, prk, i);
		memcpy(outs[i - 1], t, PSD_KDF_LEN);
	}
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(t, sizeof(t));
}
