// SPDX-License-Identifier: GPL-2.0
/*
 * Serving chunks to peers (agent/serve.c): a chunk is served from the
 * store's origin copy only once its bytes there hash to its name; the
 * extent names exactly those bytes; unknown and zero hashes, and a copy
 * that holds other data, are -ENOENT; a hit is served from the table.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "serve.h"
#include "rmtree.h"
#include "snapbuild.h"

#define CHUNK	65536u
#define CHUNKS	8u
#define SIZE	((uint64_t)CHUNKS * CHUNK)

struct env {
	char dir[64], path[96];
	uint8_t *data;
	struct snapbuild sb;
	struct psd_store *store;
	struct psd_serve *serve;
};

/* Chunk 6 is all zeros: it has no copies. */
static uint8_t byte_at(uint64_t off)
{
	return off / CHUNK == 6 ? 0 : (uint8_t)(off * 7 + (off >> 16) + 1) | 1;
}

static int env_start(struct env *e)
{
	uint8_t seed[PSD_SEED_LEN], key[1][PSD_PUBKEY_LEN];
	struct psd_trust trust = { key, 1 };
	struct psd_identity id;
	char err[256];
	uint64_t i;
	int fd;

	memset(seed, 0x5e, sizeof(seed));
	psd_identity_from_seed(seed, &id);
	memcpy(key[0], id.pk, PSD_PUBKEY_LEN);
	snprintf(e->dir, sizeof(e->dir), "/tmp/psd-serve-XXXXXX");
	e->data = malloc(SIZE);
	if (psd_chunkhash_init() || !mkdtemp(e->dir) || !e->data)
		return -1;
	for (i = 0; i < SIZE; i++)
		e->data[i] = byte_at(i);
	snprintf(e->path, sizeof(e->path), "%s/image", e->dir);
	fd = open(e->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, e->data, SIZE) != (ssize_t)SIZE || close(fd))
		return -1;
	if (psd_store_open(&e->store, e->dir, &trust, err, sizeof(err)) ||
	    snapbuild(&e->sb, e->data, SIZE, CHUNK, 0, "s", 1, &id) ||
	    psd_store_add(e->store, e->sb.manifest, e->sb.len, e->sb.blobs,
			  e->sb.geo.index_count, NULL, NULL, NULL) ||
	    psd_store_set_origin(e->store, e->sb.id, e->path, err,
				 sizeof(err)))
		return -1;
	return psd_serve_new(&e->serve, e->store);
}

static void env_stop(struct env *e)
{
	psd_serve_free(e->serve);
	psd_store_close(e->store);
	snapbuild_free(&e->sb);
	free(e->data);
	rmtree(e->dir);
}

static void hash_of(struct env *e, uint32_t c, uint8_t ret[PSD_HASH_LEN])
{
	psd_chunkhash(e->data + (uint64_t)c * CHUNK, CHUNK, ret);
}

/* The extent's bytes are chunk c's. */
static bool extent_is_chunk(struct env *e, const struct psd_swarm_extent *x,
			    uint32_t c)
{
	uint8_t *buf = malloc(CHUNK);
	bool ok = x->len == CHUNK &&
		  pread(x->fd, buf, CHUNK, (off_t)x->offset) == CHUNK &&
		  !memcmp(buf, e->data + (uint64_t)c * CHUNK, CHUNK);

	free(buf);
	return ok;
}

static int corrupt(struct env *e, uint32_t c)
{
	uint8_t b = 0xee;
	int fd = open(e->path, O_WRONLY);
	int r = fd >= 0 && pwrite(fd, &b, 1, (off_t)c * CHUNK + 99) == 1;

	if (fd >= 0)
		close(fd);
	return r ? 0 : -1;
}

FIXTURE(serve) {
	struct env e;
};

FIXTURE_SETUP(serve)
{
	memset(&self->e, 0, sizeof(self->e));
	ASSERT_EQ(0, env_start(&self->e));
}

FIXTURE_TEARDOWN(serve)
{
	env_stop(&self->e);
}

TEST_F(serve, serves_verified_origin_chunks)
{
	struct psd_swarm_extent x, y;
	uint8_t h[PSD_HASH_LEN];
	uint32_t c;

	for (c = 0; c < CHUNKS; c++) {
		if (c == 6)
			continue;
		hash_of(&self->e, c, h);
		ASSERT_EQ(0, psd_serve_lookup(self->e.serve, h, &x));
		EXPECT_EQ((uint64_t)c * CHUNK, x.offset);
		EXPECT_TRUE(extent_is_chunk(&self->e, &x, c));
	}
	/* A second lookup (the swarm asks again per frame) is the table's. */
	hash_of(&self->e, 3, h);
	ASSERT_EQ(0, psd_serve_lookup(self->e.serve, h, &x));
	ASSERT_EQ(0, psd_serve_lookup(self->e.serve, h, &y));
	EXPECT_EQ(x.fd, y.fd);
	EXPECT_EQ(x.offset, y.offset);
}

TEST_F(serve, unknown_and_zero_hashes_are_not_found)
{
	struct psd_swarm_extent x;
	uint8_t h[PSD_HASH_LEN];

	memset(h, 0x42, sizeof(h));
	EXPECT_EQ(-ENOENT, psd_serve_lookup(self->e.serve, h, &x));
	hash_of(&self->e, 6, h);	/* the reserved all-zero chunk */
	EXPECT_EQ(-ENOENT, psd_serve_lookup(self->e.serve, h, &x));
}

TEST_F(serve, a_copy_with_other_data_is_not_served)
{
	struct psd_swarm_extent x;
	uint8_t h[PSD_HASH_LEN];

	ASSERT_EQ(0, corrupt(&self->e, 2));
	hash_of(&self->e, 2, h);
	EXPECT_EQ(-ENOENT, psd_serve_lookup(self->e.serve, h, &x));
	hash_of(&self->e, 1, h);
	ASSERT_EQ(0, psd_serve_lookup(self->e.serve, h, &x));
	EXPECT_TRUE(extent_is_chunk(&self->e, &x, 1));
}

TEST_HARNESS_MAIN
