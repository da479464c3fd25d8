// SPDX-License-Identifier: GPL-2.0
/*
 * The Ed25519 identity: RFC 8032's test vector, the key file's mode,
 * refusal to overwrite, and every reason a key file is refused on load.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "identity.h"

/* RFC 8032, 7.1, TEST 1. */
#define RFC_SEED "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define RFC_PK	 "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

FIXTURE(dir)
{
	char dir[64];
	char path[128];
	char err[512];
};

FIXTURE_SETUP(dir)
{
	ASSERT_EQ(0, psd_chunkhash_init());
	strcpy(self->dir, "/tmp/psd-identity-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/identity.key",
		 self->dir);
	self->err[0] = '\0';
}

FIXTURE_TEARDOWN(dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
	if (system(cmd))
		TH_LOG("cleanup of %s failed", self->dir);
}

/* Writes a file as the test wants it, whatever its contents or mode. */
static void put_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, mode) || close(fd))
		abort();
}

/* The file's text, up to len - 1 bytes. */
static const char *slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return (mode_t)-1;
	return st.st_mode & 07777;
}

TEST(rfc8032_seed_gives_its_public_key)
{
	uint8_t seed[PSD_SEED_LEN], pk[PSD_PUBKEY_LEN];
	char hex[PSD_PUBKEY_HEX_LEN + 1];
	struct psd_identity id;

	ASSERT_EQ(0, psd_chunkhash_init());
	ASSERT_EQ(0, psd_pubkey_parse(RFC_SEED, 64, seed));
	ASSERT_EQ(0, psd_pubkey_parse(RFC_PK, 64, pk));
	psd_identity_from_seed(seed, &id);
	EXPECT_EQ(0, memcmp(pk, id.pk, sizeof(pk)));
	psd_pubkey_format(id.pk, hex);
	EXPECT_STREQ(RFC_PK, hex);
	psd_identity_wipe(&id);
	EXPECT_EQ(0, id.sk[0] | id.sk[63] | id.pk[0]);
	psd_identity_wipe(NULL);
}

TEST(pubkey_hex_rules)
{
	uint8_t pk[PSD_PUBKEY_LEN];

	EXPECT_EQ(0, psd_pubkey_parse("D75A980182B10AB7D54BFED3C964073A0EE172F3DAA62325AF021A68F707511A",
				      64, pk));
	EXPECT_EQ(0xd7, pk[0]);
	EXPECT_EQ(-EINVAL, psd_pubkey_parse(RFC_PK, 63, pk));
	EXPECT_EQ(-EINVAL, psd_pubkey_parse(RFC_PK "0", 65, pk));
	EXPECT_EQ(-EINVAL, psd_pubkey_parse("g75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
					    64, pk));
}

TEST_F(dir, keygen_writes_0600_and_loads_back)
{
	struct psd_identity made, loaded;
	mode_t old = umask(0);		/* the mode must not depend on it */
	char text[80];

	ASSERT_EQ(0, psd_identity_keygen(self->path, &made, self->err,
					 sizeof(self->err)))
		TH_LOG("%s", self->err);
	umask(old);
	EXPECT_EQ(0600, mode_of(self->path));
	EXPECT_EQ(PSD_IDENTITY_FILE_LEN,
		  strlen(slurp(self->path, text, sizeof(text))));
	EXPECT_EQ('\n', text[64]);
	EXPECT_EQ(64, strspn(text, "0123456789abcdef"));

	ASSERT_EQ(0, psd_identity_load(self->path, &loaded, self->err,
				       sizeof(self->err)))
		TH_LOG("%s", self->err);
	EXPECT_EQ(0, memcmp(&made, &loaded, sizeof(made)));
	psd_identity_wipe(&made);
	psd_identity_wipe(&loaded);
}

TEST_F(dir, restrictive_umask_still_gives_0600)
{
	struct psd_identity id;
	mode_t old = umask(0277);

	ASSERT_EQ(0, psd_identity_keygen(self->path, &id, self->err,
					 sizeof(self->err)));
	umask(old);
	EXPECT_EQ(0600, mode_of(self->path));
	EXPECT_EQ(0, psd_identity_load(self->path, &id, self->err,
				       sizeof(self->err)));
}

TEST_F(dir, keygen_refuses_to_overwrite)
{
	struct psd_identity id = { .pk = { 42 } };
	char want[256];

	put_file(self->path, "precious\n", 0600);
	EXPECT_EQ(-EEXIST, psd_identity_keygen(self->path, &id, self->err,
					       sizeof(self->err)));
	snprintf(want, sizeof(want),
		 "%s: already exists; refusing to overwrite an identity",
		 self->path);
	EXPECT_STREQ(want, self->err);
	EXPECT_EQ(42, id.pk[0]);	/* untouched on failure */
	EXPECT_EQ(0600, mode_of(self->path));
	EXPECT_STREQ("precious\n", slurp(self->path, want, sizeof(want)));
}

/* A symlink at the path, even a dangling one, is not followed. */
TEST_F(dir, keygen_refuses_a_symlink)
{
	char target[256];
	struct psd_identity id;

	snprintf(target, sizeof(target), "%s/elsewhere", self->dir);
	ASSERT_EQ(0, symlink(target, self->path));
	EXPECT_EQ(-EEXIST, psd_identity_keygen(self->path, &id, self->err,
					       sizeof(self->err)));
	EXPECT_NE(0, access(target, F_OK));
}

TEST_F(dir, keygen_in_a_missing_directory)
{
	char path[256];
	struct psd_identity id;

	snprintf(path, sizeof(path), "%s/no/such/identity.key", self->dir);
	EXPECT_EQ(-ENOENT, psd_identity_keygen(path, &id, self->err,
					       sizeof(self->err)));
	EXPECT_NE(NULL, strstr(self->err, "No such file or directory"));
}

TEST_F(dir, load_refuses_open_permissions)
{
	static const mode_t modes[] = { 0640, 0604, 0660, 0644, 0601 };
	struct psd_identity id;
	char want[256];
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		put_file(self->path, RFC_SEED "\n", modes[i]);
		EXPECT_EQ(-EACCES, psd_identity_load(self->path, &id,
						     self->err,
						     sizeof(self->err)));
		snprintf(want, sizeof(want),
			 "%s: permissions %04o are too open; the key must be readable by its owner only (chmod 600)",
			 self->path, modes[i]);
		EXPECT_STREQ(want, self->err);
	}
	put_file(self->path, RFC_SEED "\n", 0400);	/* read-only is fine */
	EXPECT_EQ(0, psd_identity_load(self->path, &id, self->err,
				       sizeof(self->err)));
}

TEST_F(dir, load_refuses_bad_contents)
{
	static const char *const texts[] = {
		"",
		RFC_SEED,			/* no newline: 64 bytes */
		RFC_SEED "\n\n",		/* 66 bytes */
		RFC_SEED "x",			/* 65th byte not a newline */
		"zd61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n",
	};
	struct psd_identity id = { .pk = { 42 } };
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		put_file(self->path, texts[i], 0600);
		EXPECT_EQ(-EINVAL, psd_identity_load(self->path, &id,
						     self->err,
						     sizeof(self->err)))
			TH_LOG("case %zu", i);
		EXPECT_NE(NULL, strstr(self->err, self->path));
		EXPECT_EQ(42, id.pk[0]);
	}
}

TEST_F(dir, load_refuses_a_directory_and_a_missing_file)
{
	struct psd_identity id;

	EXPECT_EQ(-ENOENT, psd_identity_load(self->path, &id, self->err,
					     sizeof(self->err)));
	ASSERT_EQ(0, mkdir(self->path, 0700));
	EXPECT_EQ(-EINVAL, psd_identity_load(self->path, &id, self->err,
					     sizeof(self->err)));
	EXPECT_NE(NULL, strstr(self->err, "not a regular file"));
}

/* Someone else's key, even 0600, is not ours to use. */
TEST_F(dir, load_refuses_another_owner)
{
	struct psd_identity id;

	if (geteuid() != 0)
		SKIP(return, "needs root to chown");
	put_file(self->path, RFC_SEED "\n", 0600);
	ASSERT_EQ(0, chown(self->path, 65534, 65534));
	EXPECT_EQ(-EACCES, psd_identity_load(self->path, &id, self->err,
					     sizeof(self->err)));
	EXPECT_NE(NULL, strstr(self->err, "owned by uid 65534"));
}

TEST_HARNESS_MAIN
