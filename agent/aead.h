/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet protection for one direction of a transport session: one AEAD key
 * that seals (or opens) every packet sent (or received) in that direction.
 *
 * Algorithms: ChaCha20-Poly1305 (IETF, RFC 8439) everywhere; AES-256-GCM
 * where libsodium says the CPU has it (crypto_aead_aes256gcm_is_available():
 * AES-NI and PCLMUL). Both take a 32-byte key, a 12-byte nonce and add a
 * 16-byte tag, so a sealed packet is always plaintext + PSD_AEAD_TAG_LEN.
 *
 * Nonce: the 12 bytes are four zero bytes followed by the packet number as
 * a 64-bit little-endian integer (as WireGuard's data packets do):
 *
 *     nonce = 00 00 00 00 || le64(pn)
 *
 * No secret IV is mixed in: every key comes fresh from one handshake
 * (kdf.h, noise.h) and is used in one direction only, so (key, nonce) is
 * unique as long as a packet number is never used twice under one key.
 * THE CALLER GUARANTEES THAT: packet numbers of a direction start at 0 and
 * only grow, a retransmission gets a new number, and a key is retired
 * (rekey.h) long before 2^64 numbers. Reusing a number under one key
 * breaks confidentiality and lets an attacker forge packets.
 *
 * Associated data: the packet header, exactly as it is on the wire
 * (including the packet number field), so the header cannot be changed
 * without the tag failing. It is authenticated, not encrypted.
 *
 * The algorithm is part of the key: both ends of a session must build their
 * keys with the same one (the handshake settles which).
 * psd_chunkhash_init() (libsodium's sodium_init()) must have run.
 */
#ifndef PSD_AEAD_H
#define PSD_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PSD_AEAD_KEY_LEN	32
#define PSD_AEAD_TAG_LEN	16
#define PSD_AEAD_NONCE_LEN	12

/* Wire values (the handshake carries them): never renumber. */
enum psd_aead_alg {
	PSD_AEAD_CHACHA20_POLY1305 = 1,
	PSD_AEAD_AES256_GCM = 2,
};

struct psd_aead_key {
	uint8_t key[PSD_AEAD_KEY_LEN];
	enum psd_aead_alg alg;
};

/* True if alg is known and this CPU can run it. */
bool psd_aead_available(enum psd_aead_alg alg);

/* AES-256-GCM where available (faster with AES-NI), else ChaCha20-Poly1305. */
enum psd_aead_alg psd_aead_preferred(void);

/* "chacha20-poly1305", "aes-256-gcm" or "unknown". */
const char *psd_aead_name(enum psd_aead_alg alg);

/*
 * Builds a key from 32 secret bytes. -EINVAL for an unknown alg,
 * -EOPNOTSUPP if this CPU cannot run it. *ret on success only.
 */
int psd_aead_key_init(struct psd_aead_key *ret, enum psd_aead_alg alg,
		      const uint8_t key[PSD_AEAD_KEY_LEN]);

/*
 * Encrypts pt_len bytes of pt under packet number pn, authenticating the
 * ad_len bytes of ad (the header), and writes ciphertext || tag to out:
 * pt_len + PSD_AEAD_TAG_LEN bytes. out may be pt itself (in place, the
 * tag lands after the plaintext); no other overlap. -EMSGSIZE if pt_len is
 * beyond the algorithm's limit. Never fails otherwise.
 */
int psd_aead_seal(const struct psd_aead_key *k, uint64_t pn,
		  const void *ad, size_t ad_len,
		  const void *pt, size_t pt_len, uint8_t *out);

/*
 * Checks and decrypts ct_len bytes of ciphertext || tag received under
 * packet number pn with header ad, writing ct_len - PSD_AEAD_TAG_LEN bytes
 * of plaintext to out (which may be ct itself). -EBADMSG if ct_len is
 * shorter than a tag or the tag does not verify (wrong key, pn, header or
 * bytes): then out holds nothing usable. Only after success may the caller
 * mark pn as seen (replay.h).
 */
int psd_aead_open(const struct psd_aead_key *k, uint64_t pn,
		  const void *ad, size_t ad_len,
		  const void *ct, size_t ct_len, uint8_t *out);

/* Zeroes the key (sodium_memzero). Accepts NULL. */
void psd_aead_key_wipe(struct psd_aead_key *k);

#endif /* PSD_AEAD_H */
