// SPDX-License-Identifier: GPL-2.0
/* The Ed25519 identity and its key file: see identity.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fdio.h"
#include "identity.h"
#include "origin.h"

_Static_assert(PSD_PUBKEY_LEN == crypto_sign_PUBLICKEYBYTES, "pk size");
_Static_assert(PSD_SECKEY_LEN == crypto_sign_SECRETKEYBYTES, "sk size");
_Static_assert(PSD_SEED_LEN == crypto_sign_SEEDBYTES, "seed size");
_Static_assert(PSD_SIG_LEN == crypto_sign_BYTES, "signature size");
/* A public key is written like a snapshot id: 64 hex digits. */
_Static_assert(PSD_PUBKEY_LEN == PEERSNAP_SNAPSHOT_ID_LEN, "hex codec");

void psd_identity_from_seed(const uint8_t seed[PSD_SEED_LEN],
			    struct psd_identity *ret)
{
	/* Cannot fail: every 32-byte string is a valid seed. */
	crypto_sign_seed_keypair(ret->pk, ret->sk, seed);
}

void psd_identity_generate(struct psd_identity *ret)
{
	uint8_t seed[PSD_SEED_LEN];

	randombytes_buf(seed, sizeof(seed));
	psd_identity_from_seed(seed, ret);
	sodium_memzero(seed, sizeof(seed));
}

void psd_identity_wipe(struct psd_identity *id)
{
	if (id)
		sodium_memzero(id, sizeof(*id));
}

int psd_pubkey_parse(const char *s, size_t len, uint8_t ret[PSD_PUBKEY_LEN])
{
	return psd_hex_id_parse(s, len, ret);
}

void psd_pubkey_format(const uint8_t pk[PSD_PUBKEY_LEN],
		       char out[PSD_PUBKEY_HEX_LEN + 1])
{
	psd_hex_id_format(pk, out);
}

/* ---- saving ------------------------------------------------------------ */

/* The new name must survive a crash too, not only the file's data. */
static int fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	int fd, r = 0;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return -ENAMETOOLONG;
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* The file's contents: the seed in hex and a newline. */
static void encode_file(const struct psd_identity *id,
			char out[PSD_IDENTITY_FILE_LEN + 1])
{
	uint8_t seed[PSD_SEED_LEN];

	crypto_sign_ed25519_sk_to_seed(seed, id->sk);
	psd_hex_id_format(seed, out);
	out[PSD_IDENTITY_FILE_LEN - 1] = '\n';
	out[PSD_IDENTITY_FILE_LEN] = '\0';
	sodium_memzero(seed, sizeof(seed));
}

/* Fills the new file; the caller unlinks it on failure. */
static int fill_new_file(int fd, const struct psd_identity *id)
{
	char text[PSD_IDENTITY_FILE_LEN + 1];
	int r;

	/* O_CREAT's mode went through the umask; the contract is 0600. */
	if (fchmod(fd, 0600) < 0)
		return -errno;
	encode_file(id, text);
	r = psd_write_full(fd, text, PSD_IDENTITY_FILE_LEN);
	sodium_memzero(text, sizeof(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

int psd_identity_save(const char *path, const struct psd_identity *id,
		      char *err, size_t errlen)
{
	int fd, r;

	/* O_EXCL also fails on a symlink, dangling or not. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		r = -errno;
		if (r == -EEXIST)
			snprintf(err, errlen,
				 "%s: already exists; refusing to overwrite an identity",
				 path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	r = fill_new_file(fd, id);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0)
		r = fsync_parent(path);
	if (r < 0) {
		unlink(path);
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	}
	return r;
}

int psd_identity_keygen(const char *path, struct psd_identity *ret,
			char *err, size_t errlen)
{
	struct psd_identity id;
	int r;

	psd_identity_generate(&id);
	r = psd_identity_save(path, &id, err, errlen);
	if (r == 0)
		*ret = id;
	psd_identity_wipe(&id);
	return r;
}

/* ---- loading ----------------------------------------------------------- */

/* Owner, type, mode and size, each with its own reason. */
static int check_key_file(int fd, const char *path, char *err,
			  size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int r = -errno;

		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen,
			 "%s: owned by uid %u, not by this user (uid %u)",
			 path, (unsigned int)st.st_uid,
			 (unsigned int)geteuid());
		return -EACCES;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "%s: permissions %04o are too open; the key must be readable by its owner only (chmod 600)",
			 path, (unsigned int)(st.st_mode & 07777));
		return -EACCES;
	}
	if (st.st_size != PSD_IDENTITY_FILE_LEN) {
		snprintf(err, errlen,
			 "%s: %lld bytes; a key file has %d (64 hex digits and a newline)",
			 path, (long long)st.st_size, PSD_IDENTITY_FILE_LEN);
		return -EINVAL;
	}
	return 0;
}

/* Reads exactly the checked size: the file may not change under us. */
static int read_key_text(int fd, char text[PSD_IDENTITY_FILE_LEN + 1])
{
	size_t got;
	int r;

	/* One byte more than expected, to notice a file that grew. */
	r = psd_read_full(fd, text, PSD_IDENTITY_FILE_LEN + 1, &got);
	if (r)
		return r;
	return got == PSD_IDENTITY_FILE_LEN ? 0 : -EINVAL;
}

static int decode_file(const char *text, struct psd_identity *ret)
{
	uint8_t seed[PSD_SEED_LEN];

	if (text[PSD_IDENTITY_FILE_LEN - 1] != '\n' ||
	    psd_hex_id_parse(text, 2 * PSD_SEED_LEN, seed))
		return -EINVAL;
	psd_identity_from_seed(seed, ret);
	sodium_memzero(seed, sizeof(seed));
	return 0;
}

/* Reads and decodes the checked file, explaining a failure in err. */
static int read_key(int fd, const char *path, struct psd_identity *ret,
		    char *err, size_t errlen)
{
	char text[PSD_IDENTITY_FILE_LEN + 1];
	int r;

	r = read_key_text(fd, text);
	if (r == 0)
		r = decode_file(text, ret);
	sodium_memzero(text, sizeof(text));
	if (r == -EINVAL)
		snprintf(err, errlen,
			 "%s: not a key file (64 hex digits and a newline)",
			 path);
	else if (r < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
	return r;
}

int psd_identity_load(const char *path, struct psd_identity *ret,
		      char *err, size_t errlen)
{
	struct psd_identity id;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	r = check_key_file(fd, path, err, errlen);
	if (r == 0)
		r = read_key(fd, path, &id, err, errlen);
	close(fd);
	if (r == 0)
		*ret = id;
	psd_identity_wipe(&id);
	return r;
}
