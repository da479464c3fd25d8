/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test helper: publishes an image held in memory the way `peersnap
 * publish` does (hash every chunk, build the index chunks, sign the
 * manifest), for the store and fetch tests.
 */
#ifndef PSD_TEST_SNAPBUILD_H
#define PSD_TEST_SNAPBUILD_H

#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "store.h"

struct snapbuild {
	uint8_t *manifest;
	size_t len;
	uint8_t id[PSD_HASH_LEN];
	struct psd_geometry geo;
	uint8_t **index;			/* geo.index_count chunks */
	struct psd_store_blob *blobs;		/* for psd_store_add() */
	uint8_t (*index_hashes)[PSD_HASH_LEN];
};

static inline void snapbuild_free(struct snapbuild *sb)
{
	uint32_t k;

	for (k = 0; sb->index && k < sb->geo.index_count; k++)
		free(sb->index[k]);
	free(sb->index);
	free(sb->blobs);
	free(sb->index_hashes);
	free(sb->manifest);
	memset(sb, 0, sizeof(*sb));
}

/* Index chunks: every chunk's hash (padded with zeros past size). */
static inline int snapbuild_index(struct snapbuild *sb, const uint8_t *data)
{
	const struct psd_geometry *g = &sb->geo;
	uint8_t *chunk = calloc(1, g->chunk_size);
	uint64_t i;
	uint32_t k, slot;

	if (!chunk)
		return -1;
	for (i = 0; i < g->chunk_count; i++) {
		uint64_t off = i * g->chunk_size;
		uint64_t n = g->size - off < g->chunk_size ? g->size - off
							   : g->chunk_size;

		memset(chunk, 0, g->chunk_size);
		memcpy(chunk, data + off, n);
		psd_geometry_locate(g, i, &k, &slot);
		psd_chunkhash(chunk, g->chunk_size,
			      sb->index[k] + (size_t)slot * PSD_HASH_LEN);
	}
	free(chunk);
	for (k = 0; k < g->index_count; k++) {
		sb->blobs[k].buf = sb->index[k];
		sb->blobs[k].len = psd_geometry_index_len(g, k);
		psd_chunkhash(sb->index[k], sb->blobs[k].len,
			      sb->index_hashes[k]);
	}
	return 0;
}

/* Returns 0, or -1 on any failure. index_chunk_size 0: the default. */
static inline int snapbuild(struct snapbuild *sb, const uint8_t *data,
			    uint64_t size, uint32_t chunk_size,
			    uint32_t index_chunk_size, const char *name,
			    uint64_t created, const struct psd_identity *signer)
{
	struct psd_manifest_params p = {
		.size = size, .chunk_size = chunk_size,
		.index_chunk_size = index_chunk_size, .name = name,
		.created = created,
	};
	struct psd_manifest *m;
	uint32_t k;

	memset(sb, 0, sizeof(*sb));
	if (psd_geometry_init(&sb->geo, size, chunk_size, index_chunk_size,
			      NULL) < 0)
		return -1;
	p.index_chunk_size = sb->geo.index_chunk_size;
	sb->index = calloc(sb->geo.index_count, sizeof(*sb->index));
	sb->blobs = calloc(sb->geo.index_count, sizeof(*sb->blobs));
	sb->index_hashes = calloc(sb->geo.index_count, PSD_HASH_LEN);
	if (!sb->index || !sb->blobs || !sb->index_hashes)
		return -1;
	for (k = 0; k < sb->geo.index_count; k++) {
		sb->index[k] = calloc(1, sb->geo.index_chunk_size);
		if (!sb->index[k])
			return -1;
	}
	if (snapbuild_index(sb, data) < 0 ||
	    psd_manifest_encode(&p, (const uint8_t (*)[PSD_HASH_LEN])
				sb->index_hashes, sb->geo.index_count, signer,
				&sb->manifest, &sb->len, NULL) < 0 ||
	    psd_manifest_decode(sb->manifest, sb->len, &m, NULL) < 0)
		return -1;
	memcpy(sb->id, m->id, PSD_HASH_LEN);
	psd_manifest_free(m);
	return 0;
}

#endif /* PSD_TEST_SNAPBUILD_H */
