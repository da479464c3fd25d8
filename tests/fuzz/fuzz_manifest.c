// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the manifest decoder on arbitrary bytes, as a peer
 * would send them. Every input must end in a manifest whose every derived
 * value is consistent, or in a code and a reason, without crashing,
 * leaking or reading out of bounds. The seeds (corpus/manifest, made by
 * tests/fuzz/gen_manifest_seeds.c) are valid manifests signed with the
 * key below. A mutated input whose only fault is its signature is signed
 * again with that key and decoded once more, so the fuzzer also reaches
 * what happens after the signature check, on every geometry it finds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manifest.h"

/* The seeds' publisher (gen_manifest_seeds.c: seed 's' x 32). */
static struct psd_identity signer;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t seed[PSD_SEED_LEN];

	(void)argc;
	(void)argv;
	if (psd_chunkhash_init())
		abort();
	memset(seed, 's', sizeof(seed));
	psd_identity_from_seed(seed, &signer);
	return 0;
}

/* What a decoded manifest promises the store and the fetch path. */
static void check_accepted(const struct psd_manifest *m, const uint8_t *data,
			   size_t size)
{
	const struct psd_geometry *g = &m->geo;
	uint8_t id[PSD_HASH_LEN], h[PSD_HASH_LEN];
	uint32_t index, slot;

	crypto_generichash(id, sizeof(id), data, m->body_len, NULL, 0);
	if (memcmp(id, m->id, sizeof(id)) || m->raw_len != size ||
	    m->body_len + PSD_SIG_LEN != size)
		abort();
	if (g->chunk_count == 0 || g->chunk_count > PSD_MANIFEST_MAX_CHUNKS ||
	    (g->chunk_count - 1) * g->chunk_size >= g->size ||
	    g->chunk_count * g->chunk_size < g->size ||
	    g->index_count == 0 ||
	    g->index_count > PSD_MANIFEST_MAX_INDEX_CHUNKS ||
	    strlen(m->name) == 0 || strlen(m->name) > PSD_MANIFEST_NAME_MAX)
		abort();
	if (psd_geometry_locate(g, g->chunk_count - 1, &index, &slot) ||
	    index != g->index_count - 1 ||
	    (size_t)(slot + 1) * PSD_HASH_LEN !=
		    psd_geometry_index_len(g, index))
		abort();
	if (psd_manifest_chunk_hash(m, g->chunk_count, NULL, h) != -ERANGE)
		abort();
}

/* A decoded manifest; accept() must agree when its publisher is trusted. */
static void check_decoded(struct psd_manifest *m, const uint8_t *data,
			  size_t size)
{
	uint8_t publisher[PSD_PUBKEY_LEN];
	struct psd_trust trust = { .keys = &publisher, .n = 1 };
	struct psd_mf_err err;

	check_accepted(m, data, size);
	memcpy(publisher, m->publisher, sizeof(publisher));
	psd_manifest_free(m);
	if (psd_manifest_accept(data, size, &trust, &m, &err))
		abort();
	psd_manifest_free(m);
}

/* Well-formed but for the signature: sign it as the seeds' publisher. */
static void resign(const uint8_t *data, size_t size)
{
	struct psd_manifest *m = NULL;
	struct psd_mf_err err;
	uint8_t *copy;
	int r;

	copy = malloc(size);
	if (!copy)
		return;
	memcpy(copy, data, size);
	crypto_sign_detached(copy + size - PSD_SIG_LEN, NULL, copy,
			     size - PSD_SIG_LEN, signer.sk);
	r = psd_manifest_decode(copy, size, &m, &err);
	/* Still refused only if it names another publisher. */
	if (r == 0)
		check_decoded(m, copy, size);
	else if (err.code != PSD_MF_BAD_SIGNATURE)
		abort();
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct psd_manifest *m = NULL;
	struct psd_mf_err err;
	int r;

	r = psd_manifest_decode(data, size, &m, &err);
	if (r == 0) {
		check_decoded(m, data, size);
		return 0;
	}
	if (r != -EBADMSG || err.code == PSD_MF_OK || !err.msg[0] ||
	    m != NULL)
		abort();
	if (err.code == PSD_MF_BAD_SIGNATURE)
		resign(data, size);
	return 0;
}
