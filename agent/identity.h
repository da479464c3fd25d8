/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's identity: one Ed25519 key pair. It signs the manifests this
 * host publishes, its public key is trusted like a configured publisher's,
 * and (later) it converts to the X25519 static key of the transport.
 *
 * The key file holds the 32-byte Ed25519 seed as 64 lower-case hex digits
 * and a newline: 65 bytes, mode 0600, owned by the user that reads it. A
 * file that is group- or world-accessible, owned by someone else, not a
 * regular file, or of another size is refused (as ssh refuses a private
 * key that others can read): a leaked key lets anyone publish as us.
 * Generating never replaces an existing file: losing an identity orphans
 * every snapshot it signed.
 *
 * Secret bytes are wiped (sodium_memzero) on every path that held them;
 * call psd_identity_wipe() when done with a loaded identity.
 */
#ifndef PSD_IDENTITY_H
#define PSD_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define PSD_PUBKEY_LEN		32
#define PSD_SECKEY_LEN		64	/* libsodium's: seed, then public key */
#define PSD_SEED_LEN		32
#define PSD_SIG_LEN		64
#define PSD_PUBKEY_HEX_LEN	(2 * PSD_PUBKEY_LEN)
/* The key file: the seed in hex and a newline. */
#define PSD_IDENTITY_FILE_LEN	(2 * PSD_SEED_LEN + 1)

struct psd_identity {
	uint8_t pk[PSD_PUBKEY_LEN];
	uint8_t sk[PSD_SECKEY_LEN];
};

/* The key pair of a seed (deterministic: tests use fixed seeds). */
void psd_identity_from_seed(const uint8_t seed[PSD_SEED_LEN],
			    struct psd_identity *ret);

/* A fresh random key pair, in memory only. */
void psd_identity_generate(struct psd_identity *ret);

/*
 * Writes id's seed to a new file at path (O_CREAT | O_EXCL, mode 0600
 * whatever the umask, flushed with its directory). -EEXIST if anything,
 * even a dangling symlink, is at path; on any failure no file is left.
 * Explains failures in err as "PATH: reason".
 */
int psd_identity_save(const char *path, const struct psd_identity *id,
		      char *err, size_t errlen);

/* psd_identity_generate() then psd_identity_save(); *ret on success only. */
int psd_identity_keygen(const char *path, struct psd_identity *ret,
			char *err, size_t errlen);

/*
 * Reads a key file written by psd_identity_save(). -ENOENT, -EACCES
 * (mode or owner), -EINVAL (not a regular file, wrong size, not hex) or
 * another -errno, explained in err as "PATH: reason". *ret on success only.
 */
int psd_identity_load(const char *path, struct psd_identity *ret,
		      char *err, size_t errlen);

/* Zeroes the secret key (and the rest). Accepts NULL. */
void psd_identity_wipe(struct psd_identity *id);

/* Exactly 64 hex digits, either case. -EINVAL. */
int psd_pubkey_parse(const char *s, size_t len,
		     uint8_t ret[PSD_PUBKEY_LEN]);

/* 64 lower-case hex digits and a NUL. */
void psd_pubkey_format(const uint8_t pk[PSD_PUBKEY_LEN],
		       char out[PSD_PUBKEY_HEX_LEN + 1]);

#endif /* PSD_IDENTITY_H */
