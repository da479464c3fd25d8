// SPDX-License-Identifier: GPL-2.0
/*
 * Writes fuzz_manifest's seed corpus: small valid manifests, signed with a
 * fixed test key, each reaching different decoder paths. Run by
 * `make -C tests/unit manifest-seeds` when the format changes.
 *
 * Usage: gen_manifest_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

struct seed {
	const char *file;
	struct psd_manifest_params p;
};

static const uint8_t parent[PSD_HASH_LEN] = { 0xab, 0xcd, 1, 2, 3 };

static const struct seed seeds[] = {
	{ "one-chunk.bin", { .size = 1, .chunk_size = 4096,
			     .name = "x", .created = 0 } },
	{ "parent.bin", { .size = 1000 * 4096 - 1, .chunk_size = 4096,
			  .index_chunk_size = 4096, .name = "with parent",
			  .parent = parent, .created = 1700000000 } },
	{ "utf8-4m.bin", { .size = 3ull << 30, .chunk_size = 4 << 20,
			   .name = "d\xc3\xa9" "bian \xf0\x9f\x90\xa7",
			   .created = 1 } },
};

static int write_seed(const char *dir, const struct seed *s,
		      const struct psd_identity *id)
{
	uint8_t (*idx)[PSD_HASH_LEN];
	struct psd_geometry g;
	struct psd_mf_err err;
	char path[4096];
	uint8_t *buf;
	size_t len;
	uint32_t i;
	FILE *f;
	int r;

	r = psd_geometry_init(&g, s->p.size, s->p.chunk_size,
			      s->p.index_chunk_size, &err);
	idx = r ? NULL : calloc(g.index_count, PSD_HASH_LEN);
	if (!idx) {
		fprintf(stderr, "%s: %s\n", s->file, r ? err.msg : "no memory");
		return -1;
	}
	/* Index hashes: zero (never fetched) and real-looking ones. */
	for (i = 1; i < g.index_count; i += 2)
		memset(idx[i], (int)(i & 0xff) | 1, PSD_HASH_LEN);
	r = psd_manifest_encode(&s->p, idx, g.index_count, id, &buf, &len,
				&err);
	free(idx);
	if (r) {
		fprintf(stderr, "%s: %s\n", s->file, err.msg);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, s->file);
	f = fopen(path, "wb");
	r = f && fwrite(buf, 1, len, f) == len ? 0 : -1;
	if (f && fclose(f))
		r = -1;
	free(buf);
	if (r)
		perror(path);
	return r;
}

int main(int argc, char **argv)
{
	uint8_t seed[PSD_SEED_LEN];
	struct psd_identity id;
	size_t i;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	if (psd_chunkhash_init())
		return 1;
	memset(seed, 's', sizeof(seed));
	psd_identity_from_seed(seed, &id);
	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		if (write_seed(argv[1], &seeds[i], &id))
			return 1;
	return 0;
}
