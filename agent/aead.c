// SPDX-License-Identifier: GPL-2.0
/*
 * Packet protection: libsodium's combined-mode AEADs behind one key type,
 * with the packet-number nonce of aead.h.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "aead.h"

_Static_assert(crypto_aead_chacha20poly1305_IETF_KEYBYTES == PSD_AEAD_KEY_LEN &&
	       crypto_aead_aes256gcm_KEYBYTES == PSD_AEAD_KEY_LEN,
	       "both algorithms take a 32-byte key");
_Static_assert(crypto_aead_chacha20poly1305_IETF_NPUBBYTES ==
	       PSD_AEAD_NONCE_LEN &&
	       crypto_aead_aes256gcm_NPUBBYTES == PSD_AEAD_NONCE_LEN,
	       "both algorithms take a 12-byte nonce");
_Static_assert(crypto_aead_chacha20poly1305_IETF_ABYTES == PSD_AEAD_TAG_LEN &&
	       crypto_aead_aes256gcm_ABYTES == PSD_AEAD_TAG_LEN,
	       "both algorithms add a 16-byte tag");

bool psd_aead_available(enum psd_aead_alg alg)
{
	switch (alg) {
	case PSD_AEAD_CHACHA20_POLY1305:
		return true;
	case PSD_AEAD_AES256_GCM:
		return crypto_aead_aes256gcm_is_available() == 1;
	}
	return false;
}

enum psd_aead_alg psd_aead_preferred(void)
{
	if (psd_aead_available(PSD_AEAD_AES256_GCM))
		return PSD_AEAD_AES256_GCM;
	return PSD_AEAD_CHACHA20_POLY1305;
}

const char *psd_aead_name(enum psd_aead_alg alg)
{
	switch (alg) {
	case PSD_AEAD_CHACHA20_POLY1305:
		return "chacha20-poly1305";
	case PSD_AEAD_AES256_GCM:
		return "aes-256-gcm";
	}
	return "unknown";
}

int psd_aead_key_init(struct psd_aead_key *ret, enum psd_aead_alg alg,
		      const uint8_t key[PSD_AEAD_KEY_LEN])
{
	if (alg != PSD_AEAD_CHACHA20_POLY1305 && alg != PSD_AEAD_AES256_GCM)
		return -EINVAL;
	if (!psd_aead_available(alg))
		return -EOPNOTSUPP;
	memcpy(ret->key, key, PSD_AEAD_KEY_LEN);
	ret->alg = alg;
	return 0;
}

/* aead.h: four zero bytes, then the packet number in little-endian. */
static void pn_nonce(uint64_t pn, uint8_t nonce[PSD_AEAD_NONCE_LEN])
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(pn >> (8 * i));
}

static size_t max_plaintext(enum psd_aead_alg alg)
{
	if (alg == PSD_AEAD_AES256_GCM)
		return crypto_aead_aes256gcm_messagebytes_max();
	return crypto_aead_chacha20poly1305_ietf_messagebytes_max();
}

int psd_aead_seal(const struct psd_aead_key *k, uint64_t pn,
		  const void *ad, size_t ad_len,
		  const void *pt, size_t pt_len, uint8_t *out)
{
	uint8_t nonce[PSD_AEAD_NONCE_LEN];

	if (pt_len > max_plaintext(k->alg))
		return -EMSGSIZE;
	pn_nonce(pn, nonce);
	if (k->alg == PSD_AEAD_AES256_GCM)
		crypto_aead_aes256gcm_encrypt(out, NULL, pt, pt_len, ad,
					      ad_len, NULL, nonce, k->key);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt,
							  pt_len, ad, ad_len,
							  NULL, nonce, k->key);
	return 0;
}

int psd_aead_open(const struct psd_aead_key *k, uint64_t pn,
		  const void *ad, size_t ad_len,
		  const void *ct, size_t ct_len, uint8_t *out)
{
	uint8_t nonce[PSD_AEAD_NONCE_LEN];
	int rc;

	if (ct_len < PSD_AEAD_TAG_LEN)
		return -EBADMSG;
	pn_nonce(pn, nonce);
	if (k->alg == PSD_AEAD_AES256_GCM)
		rc = crypto_aead_aes256gcm_decrypt(out, NULL, NULL, ct, ct_len,
						   ad, ad_len, nonce, k->key);
	else
		rc = crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL,
							       ct, ct_len, ad,
							       ad_len, nonce,
							       k->key);
	return rc == 0 ? 0 : -EBADMSG;
}

void psd_aead_key_wipe(struct psd_aead_key *k)
{
	if (k)
		sodium_memzero(k, sizeof(*k));
}
