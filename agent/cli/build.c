// SPDX-License-Identifier: GPL-2.0
/* Building and adding a new snapshot: see build.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build.h"

int cli_build_init(struct cli_build *b, uint64_t size, uint32_t chunk_size,
		   uint32_t index_chunk_size, struct psd_mf_err *err)
{
	int r;

	r = psd_geometry_init(&b->geo, size, chunk_size, index_chunk_size,
			      err);
	if (r)
		return r;
	/* chunk_count <= 2^32 (geometry), so this cannot overflow. */
	b->hashes = calloc(b->geo.chunk_count, PSD_HASH_LEN);
	return b->hashes ? 0 : -ENOMEM;
}

void cli_build_free(struct cli_build *b)
{
	free(b->hashes);
	b->hashes = NULL;
}

const uint8_t *cli_build_index_chunk(const struct cli_build *b, uint32_t k,
				     size_t *ret_len)
{
	*ret_len = psd_geometry_index_len(&b->geo, k);
	return b->hashes[(uint64_t)k * b->geo.index_entries];
}

int cli_load_identity(struct cli_ctx *ctx, struct psd_identity *ret)
{
	const struct psd_config *cfg;
	char err[512], *path;
	int r;

	r = cli_config(ctx, &cfg);
	if (r < 0)
		return r;
	path = psd_config_identity_path(cfg);
	if (!path) {
		cli_error("out of memory");
		return -ENOMEM;
	}
	r = psd_identity_load(path, ret, err, sizeof(err));
	if (r == -ENOENT)
		cli_error("no identity at %s: run 'peersnap keygen' first",
			  path);
	else if (r < 0)
		cli_error("%s", err);
	free(path);
	return r;
}

int cli_build_sign(const struct cli_build *b, const struct psd_identity *id,
		   const char *name, const uint8_t *parent,
		   uint8_t **ret_buf, size_t *ret_len)
{
	const struct psd_manifest_params p = {
		.size = b->geo.size,
		.chunk_size = b->geo.chunk_size,
		.index_chunk_size = b->geo.index_chunk_size,
		.name = name,
		.parent = parent,
		.created = (uint64_t)time(NULL),
	};
	uint8_t (*index_hashes)[PSD_HASH_LEN];
	struct psd_mf_err err;
	const uint8_t *chunk;
	size_t len;
	uint32_t k;
	int r;

	index_hashes = calloc(b->geo.index_count, PSD_HASH_LEN);
	if (!index_hashes) {
		cli_error("out of memory");
		return -ENOMEM;
	}
	for (k = 0; k < b->geo.index_count; k++) {
		chunk = cli_build_index_chunk(b, k, &len);
		psd_chunkhash(chunk, len, index_hashes[k]);
	}
	r = psd_manifest_encode(&p, (const uint8_t (*)[PSD_HASH_LEN])
				index_hashes, b->geo.index_count, id,
				ret_buf, ret_len, &err);
	if (r)
		cli_error("cannot build the manifest: %s", err.msg);
	free(index_hashes);
	return r;
}

static int add_begin(struct cli_client *c, const uint8_t *manifest,
		     size_t len, const struct cli_source *src,
		     uint32_t index_count)
{
	struct psd_ctl_msg m;
	int r;

	cli_client_begin(c, PSD_CTL_ADD_BEGIN);
	psd_ctl_put_bytes(&c->req, PSD_CTL_A_MANIFEST, manifest, len);
	psd_ctl_put_u8(&c->req, PSD_CTL_A_SOURCE_KIND, (uint8_t)src->kind);
	psd_ctl_put_str(&c->req, PSD_CTL_A_PATH, src->path);
	r = cli_client_call(c, &m);
	if (r)
		return r;
	if (psd_ctl_u32(&m.at, PSD_CTL_A_INDEX_COUNT) != index_count) {
		snprintf(c->err, sizeof(c->err),
			 "peersnapd counts %u index chunks, we built %u",
			 psd_ctl_u32(&m.at, PSD_CTL_A_INDEX_COUNT),
			 index_count);
		return -EPROTO;
	}
	return 0;
}

static int add_index(struct cli_client *c, const struct cli_build *b)
{
	struct psd_ctl_msg m;
	const uint8_t *chunk;
	size_t len;
	uint32_t k;
	int r;

	for (k = 0; k < b->geo.index_count; k++) {
		chunk = cli_build_index_chunk(b, k, &len);
		if (psd_chunk_is_zero(chunk, len))
			continue;	/* never stored: its hash says zeros */
		cli_client_begin(c, PSD_CTL_ADD_INDEX);
		psd_ctl_put_u32(&c->req, PSD_CTL_A_INDEX, k);
		psd_ctl_put_bytes(&c->req, PSD_CTL_A_INDEX_DATA, chunk, len);
		r = cli_client_call(c, &m);
		if (r)
			return r;
	}
	return 0;
}

/* The present bitmap in slices of at most PSD_CTL_BITMAP_MAX bytes. */
static int add_present(struct cli_client *c, const struct cli_build *b,
		       const uint8_t *present)
{
	uint64_t bytes = (b->geo.chunk_count + 7) / 8, off, n;
	struct psd_ctl_msg m;
	int r;

	for (off = 0; off < bytes; off += n) {
		n = bytes - off < PSD_CTL_BITMAP_MAX ? bytes - off
						     : PSD_CTL_BITMAP_MAX;
		if (psd_chunk_is_zero(present + off, n))
			continue;	/* nothing to mark */
		cli_client_begin(c, PSD_CTL_ADD_PRESENT);
		psd_ctl_put_u64(&c->req, PSD_CTL_A_FIRST_CHUNK, off * 8);
		psd_ctl_put_bytes(&c->req, PSD_CTL_A_BITMAP, present + off, n);
		r = cli_client_call(c, &m);
		if (r)
			return r;
	}
	return 0;
}

/* The daemon's id must be the one we signed: the id of our body. */
static int add_commit(struct cli_client *c, const uint8_t *manifest,
		      size_t manifest_len, uint8_t ret_id[PSD_HASH_LEN])
{
	struct psd_manifest *mf;
	struct psd_ctl_msg m;
	const uint8_t *id;
	uint32_t len;
	int r;

	cli_client_begin(c, PSD_CTL_ADD_COMMIT);
	r = cli_client_call(c, &m);
	if (r)
		return r;
	r = psd_manifest_decode(manifest, manifest_len, &mf, NULL);
	if (r) {
		snprintf(c->err, sizeof(c->err),
			 "cannot decode our own manifest: %s", strerror(-r));
		return r;
	}
	id = psd_ctl_bytes(&m.at, PSD_CTL_A_ID, &len);
	if (memcmp(id, mf->id, PSD_HASH_LEN)) {
		snprintf(c->err, sizeof(c->err),
			 "peersnapd stored the snapshot under another id");
		r = -EPROTO;
	}
	memcpy(ret_id, mf->id, PSD_HASH_LEN);
	psd_manifest_free(mf);
	return r;
}

int cli_build_add(struct cli_client *c, const struct cli_build *b,
		  const uint8_t *manifest, size_t manifest_len,
		  const struct cli_source *src, uint8_t ret_id[PSD_HASH_LEN])
{
	char reason[sizeof(c->err)];
	struct psd_ctl_msg m;
	int r;

	r = add_begin(c, manifest, manifest_len, src, b->geo.index_count);
	if (r)
		return r;
	r = add_index(c, b);
	if (!r && src->kind == PSD_CTL_SOURCE_CACHE)
		r = add_present(c, b, src->present);
	if (!r)
		return add_commit(c, manifest, manifest_len, ret_id);
	/* Keep the first reason; the abort only tidies up. */
	memcpy(reason, c->err, sizeof(reason));
	cli_client_begin(c, PSD_CTL_ADD_ABORT);
	cli_client_call(c, &m);
	memcpy(c->err, reason, sizeof(reason));
	return r;
}
