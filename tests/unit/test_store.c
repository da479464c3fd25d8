// SPDX-License-Identifier: GPL-2.0
/*
 * The snapshot store: add and reopen, refusals with their reasons, id
 * prefixes, leftovers of interrupted updates, origin and cache-device
 * records, copies by hash, and crash safety (a child adding snapshots is
 * SIGKILLed at varied moments; every reopen finds each snapshot whole or
 * absent).
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "loopdev.h"
#include "origin.h"
#include "rmtree.h"
#include "snapbuild.h"

#define CS		4096u
#define NCHUNKS		300u	/* 3 index chunks of 128 hashes at 4 KiB */
#define SIZE		((uint64_t)NCHUNKS * CS - 1000)	/* a short last chunk */

static struct psd_identity alice, bob;
static uint8_t alice_key[1][PSD_PUBKEY_LEN];
static const struct psd_trust trust_alice = { alice_key, 1 };

static void init_keys(void)
{
	uint8_t seed[PSD_SEED_LEN];

	if (psd_chunkhash_init())
		abort();
	memset(seed, 0xa1, sizeof(seed));
	psd_identity_from_seed(seed, &alice);
	memset(seed, 0xb0, sizeof(seed));
	psd_identity_from_seed(seed, &bob);
	memcpy(alice_key[0], alice.pk, PSD_PUBKEY_LEN);
}

/* Chunks 128..255 are zeros, so index chunk 1 is all zeros too. */
static uint8_t *make_image(unsigned int seed)
{
	uint8_t *d = malloc(SIZE);
	uint64_t i;

	for (i = 0; d && i < SIZE; i++)
		d[i] = (i / CS >= 128 && i / CS < 256) ? 0
			: (uint8_t)(i * 31 + seed * 7 + (i >> 12) + 1);
	return d;
}

static int count_files(const char *dir, const char *sub, const char *prefix)
{
	char path[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' || (prefix && !strncmp(e->d_name, prefix,
							       strlen(prefix))))
			n += !prefix || !strncmp(e->d_name, prefix,
						 strlen(prefix));
	closedir(d);
	return n;
}

static void write_file(const char *dir, const char *name, const void *buf,
		       size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0) {
		if (write(fd, buf, len) != (ssize_t)len)
			abort();
		close(fd);
	}
}

FIXTURE(store) {
	char dir[64];
	struct psd_store *s;
	uint8_t *data;
	struct snapbuild sb;
	char err[512];
};

FIXTURE_SETUP(store)
{
	init_keys();
	snprintf(self->dir, sizeof(self->dir), "/tmp/psd-store-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	self->data = make_image(1);
	ASSERT_NE(NULL, self->data);
	ASSERT_EQ(0, snapbuild(&self->sb, self->data, SIZE, CS, 4096, "v1",
			       1000, &alice));
	ASSERT_EQ(3, self->sb.geo.index_count);
	ASSERT_TRUE(psd_hash_is_zero(self->sb.index_hashes[1]));
	ASSERT_EQ(0, psd_store_open(&self->s, self->dir, &trust_alice,
				    self->err, sizeof(self->err)));
}

FIXTURE_TEARDOWN(store)
{
	psd_store_close(self->s);
	snapbuild_free(&self->sb);
	free(self->data);
	rmtree(self->dir);
}

static void reopen(struct __test_metadata *_metadata,
		   FIXTURE_DATA(store) *self)
{
	psd_store_close(self->s);
	self->s = NULL;
	ASSERT_EQ(0, psd_store_open(&self->s, self->dir, &trust_alice,
				    self->err, sizeof(self->err)));
}

static int add(FIXTURE_DATA(store) *self, const struct snapbuild *sb,
	       bool *existed, struct psd_mf_err *e)
{
	return psd_store_add(self->s, sb->manifest, sb->len, sb->blobs,
			     sb->geo.index_count, NULL, existed, e);
}

/* Every chunk hash the store gives equals the publisher's. */
static bool hashes_match(struct psd_store *s, const struct snapbuild *sb)
{
	const struct psd_store_snapshot *sn = psd_store_get(s, sb->id);
	uint8_t h[PSD_HASH_LEN];
	uint64_t i;
	uint32_t k, slot;

	for (i = 0; sn && i < sb->geo.chunk_count; i++) {
		psd_geometry_locate(&sb->geo, i, &k, &slot);
		if (psd_store_chunk_hash(s, sn, i, h) ||
		    memcmp(h, sb->index[k] + slot * PSD_HASH_LEN, PSD_HASH_LEN))
			return false;
	}
	return sn != NULL;
}

TEST_F(store, add_and_reopen)
{
	const struct psd_store_snapshot *sn;
	const struct psd_manifest *m;
	uint8_t buf[4096], h[PSD_HASH_LEN];
	struct psd_mf_err e;
	bool existed = true;
	size_t len;

	ASSERT_EQ(0, add(self, &self->sb, &existed, &e)) TH_LOG("%s", e.msg);
	EXPECT_FALSE(existed);
	/* Two index chunks stored; the all-zero one is not. */
	EXPECT_EQ(2, psd_store_get_stats(self->s)->index_chunks_stored);
	EXPECT_EQ(2, count_files(self->dir, "index", NULL));
	EXPECT_TRUE(hashes_match(self->s, &self->sb));
	reopen(_metadata, self);
	ASSERT_EQ(1, psd_store_count(self->s));
	EXPECT_EQ(0, psd_store_get_stats(self->s)->skipped);
	sn = psd_store_nth(self->s, 0);
	m = psd_store_manifest(sn);
	EXPECT_EQ(0, memcmp(m->id, self->sb.id, PSD_HASH_LEN));
	EXPECT_STREQ("v1", m->name);
	EXPECT_EQ(SIZE, m->geo.size);
	EXPECT_EQ(NULL, psd_store_origin(sn));
	EXPECT_TRUE(hashes_match(self->s, &self->sb));
	/* Index chunks come back verified; a zero one as zeros. */
	ASSERT_EQ(0, psd_store_index_read(self->s, sn, 0, buf, sizeof(buf),
					  &len));
	EXPECT_EQ(4096, len);
	EXPECT_EQ(0, memcmp(buf, self->sb.index[0], len));
	ASSERT_EQ(0, psd_store_index_read(self->s, sn, 1, buf, sizeof(buf),
					  &len));
	EXPECT_TRUE(psd_chunk_is_zero(buf, len));
	ASSERT_EQ(0, psd_store_index_read(self->s, sn, 2, buf, sizeof(buf),
					  &len));
	EXPECT_EQ((NCHUNKS - 256) * PSD_HASH_LEN, len);
	EXPECT_EQ(-ERANGE, psd_store_index_read(self->s, sn, 3, buf,
						sizeof(buf), &len));
	EXPECT_EQ(-ENOBUFS, psd_store_index_read(self->s, sn, 0, buf, 100,
						 &len));
	EXPECT_EQ(-ERANGE, psd_store_chunk_hash(self->s, sn, NCHUNKS, h));
	/* Adding it again is a no-op. */
	ASSERT_EQ(0, add(self, &self->sb, &existed, &e));
	EXPECT_TRUE(existed);
	EXPECT_EQ(1, psd_store_count(self->s));
}

TEST_F(store, staged_add_sends_only_what_is_needed)
{
	struct psd_store_add *a;
	struct psd_mf_err e;
	bool existed;

	ASSERT_EQ(0, psd_store_add_begin(self->s, self->sb.manifest,
					 self->sb.len, &a, &e));
	EXPECT_TRUE(psd_store_add_needs(a, 0));
	EXPECT_FALSE(psd_store_add_needs(a, 1));	/* zero hash */
	EXPECT_TRUE(psd_store_add_needs(a, 2));
	EXPECT_FALSE(psd_store_add_needs(a, 3));	/* out of range */
	ASSERT_EQ(0, psd_store_add_index(a, 2, self->sb.blobs[2].buf,
					 self->sb.blobs[2].len, &e));
	EXPECT_FALSE(psd_store_add_needs(a, 2));
	/* Index chunk 0 is missing: nothing is added. */
	EXPECT_EQ(-ENODATA, psd_store_add_commit(a, NULL, &existed, &e));
	EXPECT_STREQ("index chunk 0 of 3 was not sent", e.msg);
	EXPECT_EQ(0, psd_store_count(self->s));
	EXPECT_EQ(0, count_files(self->dir, "manifests", NULL));
	/* A retry needs only what is still missing. */
	ASSERT_EQ(0, psd_store_add_begin(self->s, self->sb.manifest,
					 self->sb.len, &a, &e));
	EXPECT_TRUE(psd_store_add_needs(a, 0));
	EXPECT_FALSE(psd_store_add_needs(a, 2));
	ASSERT_EQ(0, psd_store_add_index(a, 0, self->sb.blobs[0].buf,
					 self->sb.blobs[0].len, &e));
	ASSERT_EQ(0, psd_store_add_commit(a, NULL, &existed, &e));
	EXPECT_EQ(1, psd_store_count(self->s));
	EXPECT_TRUE(hashes_match(self->s, &self->sb));
}

/* Two control clients adding the same snapshot at once: the second commit
 * finds it stored by the first, and the store holds it once. */
TEST_F(store, concurrent_adds_of_one_snapshot_store_it_once)
{
	struct psd_store_add *a, *b;
	const struct psd_store_snapshot *sa, *sb;
	struct psd_mf_err e;
	bool existed = true;
	uint32_t k;

	ASSERT_EQ(0, psd_store_add_begin(self->s, self->sb.manifest,
					 self->sb.len, &a, &e));
	ASSERT_EQ(0, psd_store_add_begin(self->s, self->sb.manifest,
					 self->sb.len, &b, &e));
	for (k = 0; k < self->sb.geo.index_count; k++) {
		if (!psd_store_add_needs(a, k))
			continue;
		ASSERT_EQ(0, psd_store_add_index(a, k, self->sb.blobs[k].buf,
						 self->sb.blobs[k].len, &e));
		ASSERT_EQ(0, psd_store_add_index(b, k, self->sb.blobs[k].buf,
						 self->sb.blobs[k].len, &e));
	}
	ASSERT_EQ(0, psd_store_add_commit(a, &sa, &existed, &e));
	EXPECT_FALSE(existed);
	ASSERT_EQ(0, psd_store_add_commit(b, &sb, &existed, &e));
	EXPECT_TRUE(existed);
	EXPECT_EQ(sa, sb);
	EXPECT_EQ(1, psd_store_count(self->s));
	EXPECT_EQ(1, psd_store_get_stats(self->s)->snapshots);
	reopen(_metadata, self);
	EXPECT_EQ(1, psd_store_count(self->s));
	EXPECT_EQ(0, psd_store_get_stats(self->s)->skipped);
}

TEST_F(store, refuses_untrusted_tampered_and_bad_index)
{
	struct snapbuild evil;
	struct psd_mf_err e;
	uint8_t *bad;

	ASSERT_EQ(0, snapbuild(&evil, self->data, SIZE, CS, 4096, "v1", 1000,
			       &bob));
	EXPECT_EQ(-EKEYREJECTED, add(self, &evil, NULL, &e));
	EXPECT_EQ(PSD_MF_UNTRUSTED, e.code);
	snapbuild_free(&evil);

	/* One flipped byte of the name: the signature no longer holds. */
	self->sb.manifest[self->sb.len - PSD_SIG_LEN - 1] ^= 1;
	EXPECT_EQ(-EBADMSG, add(self, &self->sb, NULL, &e));
	EXPECT_EQ(PSD_MF_BAD_SIGNATURE, e.code) TH_LOG("%s", e.msg);
	self->sb.manifest[self->sb.len - PSD_SIG_LEN - 1] ^= 1;

	/* A bad index chunk: refused with its reason, nothing stored. */
	bad = self->sb.index[2];
	bad[5] ^= 0x40;
	EXPECT_EQ(-EBADMSG, add(self, &self->sb, NULL, &e));
	EXPECT_EQ(PSD_MF_BAD_INDEX_CHUNK, e.code);
	EXPECT_NE(NULL, strstr(e.msg, "index chunk 2")) TH_LOG("%s", e.msg);
	bad[5] ^= 0x40;
	/* A short one too. */
	self->sb.blobs[2].len--;
	EXPECT_EQ(-EBADMSG, add(self, &self->sb, NULL, &e));
	EXPECT_EQ(PSD_MF_BAD_INDEX_CHUNK, e.code);
	EXPECT_STREQ("index chunk 2 has 1407 bytes; expected 1408", e.msg);
	self->sb.blobs[2].len++;
	EXPECT_EQ(0, psd_store_count(self->s));
	EXPECT_EQ(0, count_files(self->dir, "manifests", NULL));
	/* Index chunk 0 verified and stays: a retry does not resend it. */
	EXPECT_EQ(1, count_files(self->dir, "index", NULL));
}

/* A stored index chunk altered on disk is caught when read. */
TEST_F(store, corrupt_index_file_is_detected)
{
	const struct psd_store_snapshot *sn;
	char path[512], hex[PSD_SNAPSHOT_HEX_LEN + 1];
	uint8_t h[PSD_HASH_LEN];
	int fd;

	ASSERT_EQ(0, add(self, &self->sb, NULL, NULL));
	reopen(_metadata, self);
	psd_hex_id_format(self->sb.index_hashes[2], hex);
	snprintf(path, sizeof(path), "%s/index/%s", self->dir, hex);
	fd = open(path, O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, pwrite(fd, "X", 1, 7));
	close(fd);
	sn = psd_store_get(self->s, self->sb.id);
	ASSERT_NE(NULL, sn);
	EXPECT_EQ(0, psd_store_chunk_hash(self->s, sn, 0, h));
	EXPECT_EQ(-EBADMSG, psd_store_chunk_hash(self->s, sn, 260, h));
	EXPECT_EQ(1, psd_store_get_stats(self->s)->index_bad);
}

/*
 * Two snapshots whose ids share 8 hex digits: the body's creation time
 * is varied and the id (BLAKE2b of the body, before the signature) is
 * computed directly until two collide on 32 bits; only those two get
 * signed. About 2^16 tries.
 */
static int colliding_times(const struct snapbuild *sb, uint64_t *ret_a,
			   uint64_t *ret_b)
{
	size_t body = sb->len - PSD_SIG_LEN, off, n = 1u << 20, i;
	uint32_t *seen = calloc(n, sizeof(*seen));
	uint8_t *copy = malloc(body), h[PSD_HASH_LEN];
	uint64_t t, created = 1000;

	for (off = 0; off + 8 <= body; off++)
		if (!memcmp(sb->manifest + off, &created, 8))
			break;
	if (!seen || !copy || off + 8 > body)
		return -1;
	memcpy(copy, sb->manifest, body);
	for (t = 1; t < 4000000; t++) {
		uint32_t key;

		memcpy(copy + off, &t, 8);
		psd_chunkhash(copy, body, h);
		key = (uint32_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		for (i = key % n; seen[i]; i = (i + 1) % n) {
			memcpy(copy + off, &seen[i], 4);
			memset(copy + off + 4, 0, 4);
			psd_chunkhash(copy, body, h);
			if (((uint32_t)h[0] << 24 | h[1] << 16 | h[2] << 8 |
			     h[3]) == key) {
				*ret_a = seen[i];
				*ret_b = t;
				free(seen);
				free(copy);
				return 0;
			}
		}
		seen[i] = (uint32_t)t;
	}
	free(seen);
	free(copy);
	return -1;
}

TEST_F(store, lookup_by_prefix)
{
	struct snapbuild a, b;
	const struct psd_store_snapshot *sn;
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];
	uint64_t ta, tb;
	size_t i;

	ASSERT_EQ(0, colliding_times(&self->sb, &ta, &tb));
	ASSERT_EQ(0, snapbuild(&a, self->data, SIZE, CS, 4096, "v1", ta,
			       &alice));
	ASSERT_EQ(0, snapbuild(&b, self->data, SIZE, CS, 4096, "v1", tb,
			       &alice));
	ASSERT_EQ(0, memcmp(a.id, b.id, 4));
	ASSERT_NE(0, memcmp(a.id, b.id, PSD_HASH_LEN));
	ASSERT_EQ(0, add(self, &a, NULL, NULL));
	psd_hex_id_format(a.id, hex);
	/* Alone, 8 digits find it. */
	ASSERT_EQ(0, psd_store_lookup(self->s, hex, 8, &sn));
	EXPECT_EQ(0, memcmp(psd_store_manifest(sn)->id, a.id, PSD_HASH_LEN));
	ASSERT_EQ(0, add(self, &b, NULL, NULL));
	EXPECT_EQ(-ENOTUNIQ, psd_store_lookup(self->s, hex, 8, &sn));
	/* Enough digits, in either case, tell them apart. */
	for (i = 0; i < PSD_SNAPSHOT_HEX_LEN; i++)
		hex[i] = (char)toupper((unsigned char)hex[i]);
	ASSERT_EQ(0, psd_store_lookup(self->s, hex, PSD_SNAPSHOT_HEX_LEN, &sn));
	EXPECT_EQ(0, memcmp(psd_store_manifest(sn)->id, a.id, PSD_HASH_LEN));
	EXPECT_EQ(-EINVAL, psd_store_lookup(self->s, hex, 7, &sn));
	EXPECT_EQ(-EINVAL, psd_store_lookup(self->s, "0123456g", 8, &sn));
	EXPECT_EQ(-EINVAL, psd_store_lookup(self->s, hex, 65, &sn));
	hex[0] = hex[0] == '0' ? '1' : '0';
	EXPECT_EQ(-ENOENT, psd_store_lookup(self->s, hex, 8, &sn));
	/* At open, snapshots come in creation order. */
	reopen(_metadata, self);
	ASSERT_EQ(2, psd_store_count(self->s));
	EXPECT_EQ(ta < tb ? ta : tb,
		  psd_store_manifest(psd_store_nth(self->s, 0))->created);
	EXPECT_EQ(NULL, psd_store_nth(self->s, 2));
	snapbuild_free(&a);
	snapbuild_free(&b);
}

TEST_F(store, leftovers_and_garbage_are_skipped)
{
	static const char junk[] = "not a manifest";
	char sub[512], hex[PSD_SNAPSHOT_HEX_LEN + 1];
	const struct psd_store_stats *st;

	ASSERT_EQ(0, add(self, &self->sb, NULL, NULL));
	psd_hex_id_format(self->sb.id, hex);
	snprintf(sub, sizeof(sub), "%s/manifests", self->dir);
	write_file(sub, ".tmp.half-written", junk, sizeof(junk));
	write_file(sub, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		   junk, sizeof(junk));
	write_file(sub, "README", junk, sizeof(junk));
	snprintf(sub, sizeof(sub), "%s/index", self->dir);
	write_file(sub, ".tmp.0000", junk, sizeof(junk));
	snprintf(sub, sizeof(sub), "%s/origins", self->dir);
	write_file(sub, hex, junk, sizeof(junk));
	snprintf(sub, sizeof(sub), "%s/caches", self->dir);
	write_file(sub, "x-y", junk, sizeof(junk));
	reopen(_metadata, self);
	st = psd_store_get_stats(self->s);
	EXPECT_EQ(1, psd_store_count(self->s));
	EXPECT_EQ(4, st->skipped);
	EXPECT_EQ(2, st->temp_removed);
	EXPECT_EQ(0, count_files(self->dir, "manifests", ".tmp."));
	EXPECT_EQ(0, count_files(self->dir, "index", ".tmp."));
	EXPECT_EQ(NULL, psd_store_origin(psd_store_nth(self->s, 0)));
	EXPECT_TRUE(hashes_match(self->s, &self->sb));
}

/* A publisher no longer trusted: its snapshots are skipped, not lost. */
TEST_F(store, trust_is_checked_at_open)
{
	ASSERT_EQ(0, add(self, &self->sb, NULL, NULL));
	psd_store_close(self->s);
	ASSERT_EQ(0, psd_store_open(&self->s, self->dir, NULL, self->err,
				    sizeof(self->err)));
	EXPECT_EQ(0, psd_store_count(self->s));
	EXPECT_EQ(1, psd_store_get_stats(self->s)->skipped);
	reopen(_metadata, self);
	EXPECT_EQ(1, psd_store_count(self->s));
}

static void write_image(const char *path, const uint8_t *d, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, d, len) != (ssize_t)len)
		abort();
	close(fd);
}

TEST_F(store, origins_and_copies)
{
	const struct psd_store_snapshot *sn;
	struct psd_store_copy c[4];
	char img[128];
	uint8_t h[PSD_HASH_LEN];

	ASSERT_EQ(0, add(self, &self->sb, NULL, NULL));
	snprintf(img, sizeof(img), "%s/image", self->dir);
	write_image(img, self->data, SIZE - 1);
	EXPECT_EQ(-EMEDIUMTYPE, psd_store_set_origin(self->s, self->sb.id, img,
						     self->err,
						     sizeof(self->err)));
	EXPECT_NE(NULL, strstr(self->err, "not a regular file of")) TH_LOG("%s", self->err);
	EXPECT_EQ(-EINVAL, psd_store_set_origin(self->s, self->sb.id, "image",
						self->err, sizeof(self->err)));
	write_image(img, self->data, SIZE);
	ASSERT_EQ(0, psd_store_set_origin(self->s, self->sb.id, img, self->err,
					  sizeof(self->err)));
	h[0] = self->sb.id[0] ^ 1;
	memcpy(h + 1, self->sb.id + 1, PSD_HASH_LEN - 1);
	EXPECT_EQ(-ENOENT, psd_store_set_origin(self->s, h, img, self->err,
						sizeof(self->err)));
	reopen(_metadata, self);
	sn = psd_store_get(self->s, self->sb.id);
	ASSERT_NE(NULL, sn);
	EXPECT_STREQ(img, psd_store_origin(sn));
	/* Chunk 7's hash is found at chunk 7 of the origin. */
	ASSERT_EQ(0, psd_store_chunk_hash(self->s, sn, 7, h));
	ASSERT_EQ(1, psd_store_find_copies(self->s, h, CS, c, 4));
	EXPECT_EQ(PSD_COPY_ORIGIN, c[0].kind);
	EXPECT_STREQ(img, c[0].path);
	EXPECT_EQ(7 * CS, c[0].offset);
	EXPECT_EQ(0, psd_store_find_copies(self->s, h, 2 * CS, c, 4));
	ASSERT_EQ(0, psd_store_chunk_hash(self->s, sn, 200, h));
	EXPECT_TRUE(psd_hash_is_zero(h));
	EXPECT_EQ(0, psd_store_find_copies(self->s, h, CS, c, 4));
}

/* Cache-device records: needs a block device (a loop device, as root). */
TEST_F(store, cache_records_and_in_place)
{
	const struct psd_store_snapshot *sn;
	struct psd_store_copy c[4];
	uint8_t h[PSD_HASH_LEN], bits[(NCHUNKS + 7) / 8] = { 0 };
	struct snapbuild v2;
	struct loopdev ld;
	uint32_t dev;

	if (loopdev_create(&ld, 1 << 20) < 0)
		SKIP(return, "no loop device: %s", strerror(errno));
	dev = encode_dev(major(ld.rdev), minor(ld.rdev));
	ASSERT_EQ(0, add(self, &self->sb, NULL, NULL));
	sn = psd_store_get(self->s, self->sb.id);
	EXPECT_EQ(-ENOTBLK, psd_store_set_cache(self->s, self->sb.id, "/dev/null",
						"d1", NULL, 0, self->err,
						sizeof(self->err)));
	EXPECT_EQ(-EINVAL, psd_store_set_cache(self->s, self->sb.id, ld.node,
					       "d1", bits, 3, self->err,
					       sizeof(self->err)));
	EXPECT_NE(NULL, strstr(self->err, "present bitmap of 3 bytes"));
	ASSERT_EQ(0, psd_store_set_cache(self->s, self->sb.id, ld.node, "d1",
					 NULL, 0, self->err,
					 sizeof(self->err))) TH_LOG("%s", self->err);
	EXPECT_TRUE(psd_store_cache_attached(self->s, "d1"));
	ASSERT_EQ(0, psd_store_chunk_hash(self->s, sn, 3, h));
	ASSERT_EQ(1, psd_store_find_copies(self->s, h, CS, c, 4));
	EXPECT_EQ(PSD_COPY_CACHE, c[0].kind);
	EXPECT_EQ(dev, c[0].dev);
	EXPECT_EQ(3 * CS, c[0].offset);
	/* Its own record does not make the target a source in place... */
	EXPECT_FALSE(psd_store_in_place(self->s, dev, sn, 3, h));

	/* ...but for v2 (chunk 3 the same, chunk 4 changed) it does. */
	self->data[4 * CS] ^= 0xff;
	ASSERT_EQ(0, snapbuild(&v2, self->data, SIZE, CS, 4096, "v2", 2000,
			       &alice));
	ASSERT_EQ(0, add(self, &v2, NULL, NULL));
	EXPECT_TRUE(psd_store_in_place(self->s, dev, psd_store_get(self->s, v2.id),
				       3, h));
	ASSERT_EQ(0, psd_store_chunk_hash(self->s, psd_store_get(self->s, v2.id),
					  4, h));
	EXPECT_FALSE(psd_store_in_place(self->s, dev,
					psd_store_get(self->s, v2.id), 4, h));
	EXPECT_FALSE(psd_store_in_place(self->s, dev + 1,
					psd_store_get(self->s, v2.id), 3, h));

	/* Detached: the record stays (in-place reuse), without its name. */
	EXPECT_EQ(0, psd_store_cache_detached(self->s, "d1"));
	EXPECT_FALSE(psd_store_cache_attached(self->s, "d1"));
	EXPECT_EQ(-ENOENT, psd_store_cache_detached(self->s, "d1"));
	/* A present bitmap limits what a record offers. */
	bits[0] = 1 << 5;
	ASSERT_EQ(0, psd_store_set_cache(self->s, v2.id, ld.node, "d2", bits,
					 sizeof(bits), self->err,
					 sizeof(self->err)));
	ASSERT_EQ(0, psd_store_chunk_hash(self->s, psd_store_get(self->s, v2.id),
					  4, h));
	EXPECT_EQ(0, psd_store_find_copies(self->s, h, CS, c, 4));
	EXPECT_FALSE(psd_store_in_place(self->s, dev,
					psd_store_get(self->s, v2.id), 4, h));
	ASSERT_EQ(0, psd_store_chunk_hash(self->s, psd_store_get(self->s, v2.id),
					  5, h));
	EXPECT_TRUE(psd_store_in_place(self->s, dev,
				       psd_store_get(self->s, v2.id), 5, h));
	/* v1 (detached, no bitmap) and v2 (chunk 5 only) hold chunk 5. */
	EXPECT_EQ(2, psd_store_find_copies(self->s, h, CS, c, 4));

	reopen(_metadata, self);
	EXPECT_EQ(2, psd_store_get_stats(self->s)->cache_records);
	EXPECT_EQ(0, psd_store_get_stats(self->s)->skipped);
	EXPECT_TRUE(psd_store_cache_attached(self->s, "d2"));
	EXPECT_FALSE(psd_store_cache_attached(self->s, "d1"));
	EXPECT_EQ(2, psd_store_find_copies(self->s, h, CS, c, 4));
	EXPECT_TRUE(psd_store_in_place(self->s, dev,
				       psd_store_get(self->s, v2.id), 5, h));
	snapbuild_free(&v2);
	loopdev_destroy(&ld);
}

/* A device keeps its newest records; a dm name names one record. */
TEST_F(store, cache_records_are_bounded_per_device)
{
	unsigned int n = PSD_STORE_MAX_CACHE_PER_DEV + 2, i;
	struct snapbuild sb[PSD_STORE_MAX_CACHE_PER_DEV + 2];
	struct loopdev ld;

	if (loopdev_create(&ld, 1 << 20) < 0)
		SKIP(return, "no loop device: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		self->data[0] = (uint8_t)i;
		ASSERT_EQ(0, snapbuild(&sb[i], self->data, SIZE, CS, 4096, "v",
				       i, &alice));
		ASSERT_EQ(0, add(self, &sb[i], NULL, NULL));
		ASSERT_EQ(0, psd_store_set_cache(self->s, sb[i].id, ld.node,
						 "vol", NULL, 0, self->err,
						 sizeof(self->err)));
	}
	EXPECT_EQ(PSD_STORE_MAX_CACHE_PER_DEV,
		  psd_store_get_stats(self->s)->cache_records);
	EXPECT_EQ(PSD_STORE_MAX_CACHE_PER_DEV,
		  count_files(self->dir, "caches", NULL));
	reopen(_metadata, self);
	EXPECT_EQ(PSD_STORE_MAX_CACHE_PER_DEV,
		  psd_store_get_stats(self->s)->cache_records);
	EXPECT_TRUE(psd_store_cache_attached(self->s, "vol"));
	/* Only the newest record still carries the name. */
	EXPECT_EQ(0, psd_store_cache_detached(self->s, "vol"));
	EXPECT_FALSE(psd_store_cache_attached(self->s, "vol"));
	for (i = 0; i < n; i++)
		snapbuild_free(&sb[i]);
	loopdev_destroy(&ld);
}

/* ---- crash safety ------------------------------------------------------ */

#define CRASH_ROUNDS	40
#define CRASH_SECONDS	20

#define CRASH_BATCH	6

/*
 * The child: builds CRASH_BATCH snapshots, says 'R', then adds them one
 * after another, reporting each id once its add returned.
 */
static void crash_child(const char *dir, int report_fd, unsigned int round)
{
	struct snapbuild sb[CRASH_BATCH];
	struct psd_store *s;
	unsigned int i;
	uint8_t *data;
	char err[256];

	for (i = 0; i < CRASH_BATCH; i++) {
		data = make_image(round * 1000 + i + 2);
		if (!data || snapbuild(&sb[i], data, SIZE, CS, 4096, "crash",
				       round * 1000 + i, &alice) < 0)
			_exit(3);
		free(data);
	}
	if (psd_store_open(&s, dir, &trust_alice, err, sizeof(err)) < 0 ||
	    write(report_fd, "R", 1) != 1)
		_exit(2);
	for (i = 0; i < CRASH_BATCH; i++) {
		if (psd_store_add(s, sb[i].manifest, sb[i].len, sb[i].blobs,
				  sb[i].geo.index_count, NULL, NULL, NULL) < 0)
			_exit(4);
		if (write(report_fd, sb[i].id, PSD_HASH_LEN) != PSD_HASH_LEN)
			_exit(5);
	}
	pause();
	_exit(0);
}

/* Every snapshot present is whole: each index chunk reads and verifies. */
static bool store_whole(struct psd_store *s)
{
	uint8_t *buf = malloc(PSD_INDEX_CHUNK_SIZE_MAX);
	size_t i, len;
	uint32_t k;
	bool ok = buf != NULL;

	for (i = 0; ok && i < psd_store_count(s); i++) {
		const struct psd_store_snapshot *sn = psd_store_nth(s, i);

		for (k = 0; ok && k < psd_store_manifest(sn)->geo.index_count;
		     k++)
			ok = psd_store_index_read(s, sn, k, buf,
						  PSD_INDEX_CHUNK_SIZE_MAX,
						  &len) == 0;
	}
	free(buf);
	return ok;
}

/*
 * Kills land anywhere in the adds: the delay after 'R' is drawn from 0 to
 * a little more than one batch took the round before.
 */
TEST_F(store, survives_sigkill_mid_update)
{
	time_t end = time(NULL) + CRASH_SECONDS;
	unsigned int round, reported = 0, i;
	uint8_t (*ids)[PSD_HASH_LEN] = NULL;
	unsigned long long temps = 0;
	long span_us = 20000;

	srand(42);
	for (round = 0; round < CRASH_ROUNDS && time(NULL) < end; round++) {
		struct timespec ts = { 0, (rand() % span_us) * 1000 };
		uint8_t id[PSD_HASH_LEN];
		unsigned int before = reported;
		int p[2], status;
		char ready;
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			close(p[0]);
			crash_child(self->dir, p[1], round);
		}
		close(p[1]);
		ASSERT_EQ(1, read(p[0], &ready, 1));
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exit %d",
							WEXITSTATUS(status));
		while (read(p[0], id, sizeof(id)) == (ssize_t)sizeof(id)) {
			ids = realloc(ids, (reported + 1) * sizeof(*ids));
			ASSERT_NE(NULL, ids);
			memcpy(ids[reported++], id, sizeof(id));
		}
		close(p[0]);
		/* Whole batch done: aim the next kill earlier. */
		if (reported - before == CRASH_BATCH && span_us > 2000)
			span_us = span_us * 3 / 4;
		reopen(_metadata, self);
		temps += psd_store_get_stats(self->s)->temp_removed;
		/* Nothing corrupt, nothing half there... */
		EXPECT_EQ(0, psd_store_get_stats(self->s)->skipped);
		EXPECT_TRUE(store_whole(self->s));
		/* ...and every add that returned is there. */
		for (i = 0; i < reported; i++)
			EXPECT_NE(NULL, psd_store_get(self->s, ids[i]));
		if (!_metadata->passed)
			break;
	}
	TH_LOG("%u rounds, %u adds returned, %zu snapshots, %llu temp files of killed updates removed",
	       round, reported, psd_store_count(self->s), temps);
	EXPECT_LE(reported, psd_store_count(self->s));
	EXPECT_LT(0, psd_store_count(self->s));
	free(ids);
}

TEST_HARNESS_MAIN
