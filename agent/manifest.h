/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Snapshot manifests: encoding, decoding of hostile bytes, signatures,
 * trust, the snapshot id and the two-level index. The byte layout, the
 * limits and the reasons for them are in docs/manifest-format.md; this
 * header is the C view of it. No I/O here.
 *
 *   manifest = body || Ed25519 signature (64 bytes) over the body
 *   body     = header (16 bytes) || fields (tag u16, length u32, value),
 *              tags strictly ascending, every length bounded
 *   id       = BLAKE2b-256(body)
 *
 * The body lists the hashes of the index chunks; index chunk k is the
 * concatenated hashes of data chunks [k * E, k * E + E), E = index chunk
 * size / 32 (the last one may be shorter). Index chunks are content-
 * addressed like data chunks and fetched lazily. All-zero chunks, data or
 * index, have the reserved hash PSD_HASH_ZERO (chunkhash.h).
 *
 * Errors: decoding returns -EBADMSG for malformed input and bad
 * signatures, -EKEYREJECTED for an untrusted publisher, -ENOMEM; encoding
 * -EINVAL for bad parameters. Each fills a struct psd_mf_err (when not
 * NULL) with a code for programs and a one-line reason for people.
 */
#ifndef PSD_MANIFEST_H
#define PSD_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkhash.h"
#include "identity.h"

#define PSD_MANIFEST_MAGIC		"PSNAPMAN"	/* 8 bytes, no NUL */
#define PSD_MANIFEST_VERSION		1
#define PSD_MANIFEST_HEADER_LEN		16
#define PSD_MANIFEST_FIELD_HDR_LEN	6	/* tag u16, length u32 */

/* Tags 1..0x7fff are critical: a reader that does not know one refuses
 * the manifest. Tags 0x8000..0xffff are optional: unknown ones are
 * skipped (they are still signed and part of the id). */
enum psd_mf_tag {
	PSD_MF_TAG_SIZE = 1,		/* u64 image bytes */
	PSD_MF_TAG_CHUNK_SIZE,		/* u32 bytes */
	PSD_MF_TAG_CHUNK_COUNT,		/* u64 */
	PSD_MF_TAG_INDEX_CHUNK_SIZE,	/* u32 bytes */
	PSD_MF_TAG_NAME,		/* 1..255 bytes of UTF-8 */
	PSD_MF_TAG_PARENT,		/* 32-byte snapshot id, optional */
	PSD_MF_TAG_CREATED,		/* u64 seconds since the epoch */
	PSD_MF_TAG_PUBLISHER,		/* 32-byte Ed25519 public key */
	PSD_MF_TAG_INDEX_HASHES,	/* index_count * 32 bytes */
	__PSD_MF_TAG_LAST,
	PSD_MF_TAG_MAX = __PSD_MF_TAG_LAST - 1,
	PSD_MF_TAG_OPTIONAL = 0x8000,	/* first optional tag */
};

/* Chunk sizes: the kernel's 8..8192 sectors, powers of two. */
#define PSD_CHUNK_SIZE_MIN		4096u
#define PSD_CHUNK_SIZE_MAX		(4u << 20)
#define PSD_INDEX_CHUNK_SIZE_MIN	4096u
#define PSD_INDEX_CHUNK_SIZE_MAX	(4u << 20)
#define PSD_MANIFEST_MAX_CHUNKS		(1ull << 32)
#define PSD_MANIFEST_MAX_INDEX_CHUNKS	65536u
#define PSD_MANIFEST_NAME_MAX		255
/* Every known field at its largest is 2 MiB + 415 bytes; the rest of the
 * last 4 KiB is room for optional fields of later versions. */
#define PSD_MANIFEST_MAX_BODY		((2u << 20) + 4096u)
#define PSD_MANIFEST_MAX_LEN		(PSD_MANIFEST_MAX_BODY + PSD_SIG_LEN)

enum psd_mf_code {
	PSD_MF_OK,
	PSD_MF_TOO_LARGE,		/* input longer than any manifest */
	PSD_MF_TRUNCATED,		/* input or a field cut short */
	PSD_MF_TRAILING_BYTES,		/* bytes after the signature */
	PSD_MF_BAD_MAGIC,
	PSD_MF_BAD_VERSION,
	PSD_MF_BAD_FLAGS,		/* reserved header bits set */
	PSD_MF_BAD_BODY_LEN,		/* header's body length out of range */
	PSD_MF_FIELD_ORDER,		/* tags not ascending */
	PSD_MF_DUPLICATE_FIELD,
	PSD_MF_UNKNOWN_FIELD,		/* an unknown critical tag */
	PSD_MF_FIELD_LENGTH,		/* a field's length out of its bounds */
	PSD_MF_MISSING_FIELD,
	PSD_MF_BAD_SIZE,
	PSD_MF_BAD_CHUNK_SIZE,
	PSD_MF_BAD_CHUNK_COUNT,
	PSD_MF_BAD_INDEX_CHUNK_SIZE,
	PSD_MF_BAD_INDEX_COUNT,
	PSD_MF_BAD_NAME,
	PSD_MF_BAD_PARENT,
	PSD_MF_BAD_TIME,
	PSD_MF_BAD_SIGNATURE,		/* tampered, or not the publisher's */
	PSD_MF_UNTRUSTED,		/* publisher not in the trust list */
	PSD_MF_BAD_INDEX_CHUNK,		/* an index chunk's length or hash */
	PSD_MF_NO_MEMORY,		/* -ENOMEM, not the input's fault */
	__PSD_MF_CODE_MAX,
};

struct psd_mf_err {
	enum psd_mf_code code;
	char msg[192];
};

/* A short constant name for a code ("truncated", "bad signature"). */
const char *psd_mf_code_str(enum psd_mf_code code);

/* ---- geometry: the two-level index ------------------------------------- */

struct psd_geometry {
	uint64_t size;			/* image bytes, >= 1 */
	uint64_t chunk_count;		/* ceil(size / chunk_size) */
	uint32_t chunk_size;
	uint32_t index_chunk_size;
	uint32_t index_entries;		/* hashes per index chunk */
	uint32_t index_count;		/* index chunks */
};

/*
 * The publisher's default index chunk size for chunk_count chunks: the
 * smallest power of two, 4 KiB .. 4 MiB, not smaller than the list of
 * index hashes it leads to. That balances the body, fetched whole before
 * the first read, against the one index chunk the first read also needs,
 * and minimises their sum (docs/manifest-format.md).
 */
uint32_t psd_geometry_default_index_chunk_size(uint64_t chunk_count);

/*
 * Validates and derives a geometry; index_chunk_size 0 picks the default.
 * -EINVAL with PSD_MF_BAD_SIZE, _BAD_CHUNK_SIZE, _BAD_INDEX_CHUNK_SIZE or
 * _BAD_INDEX_COUNT (more than PSD_MANIFEST_MAX_INDEX_CHUNKS). *ret on
 * success only.
 */
int psd_geometry_init(struct psd_geometry *ret, uint64_t size,
		      uint32_t chunk_size, uint32_t index_chunk_size,
		      struct psd_mf_err *err);

/* Which index chunk, and which slot in it, holds data chunk `chunk`'s
 * hash. -ERANGE past the last chunk. */
int psd_geometry_locate(const struct psd_geometry *g, uint64_t chunk,
			uint32_t *ret_index, uint32_t *ret_slot);

/* Bytes of index chunk `index` (only the last may be short); 0 if there
 * is no such index chunk. */
size_t psd_geometry_index_len(const struct psd_geometry *g, uint32_t index);

/* Bytes of a manifest (body and signature) with this geometry, a name of
 * name_len bytes and a parent or not. */
size_t psd_manifest_encoded_len(const struct psd_geometry *g,
				size_t name_len, bool has_parent);

/* ---- manifests --------------------------------------------------------- */

struct psd_manifest {
	struct psd_geometry geo;
	uint64_t created;
	char name[PSD_MANIFEST_NAME_MAX + 1];	/* NUL-terminated */
	bool has_parent;
	uint8_t parent[PSD_HASH_LEN];
	uint8_t publisher[PSD_PUBKEY_LEN];
	uint8_t id[PSD_HASH_LEN];
	/* Point into raw: geo.index_count hashes, and the signature. */
	const uint8_t (*index_hashes)[PSD_HASH_LEN];
	const uint8_t *signature;
	size_t body_len;
	size_t raw_len;
	uint8_t raw[];			/* the manifest's bytes, as received */
};

/* What a publisher describes; the index hashes and the key come apart. */
struct psd_manifest_params {
	uint64_t size;
	uint32_t chunk_size;
	uint32_t index_chunk_size;	/* 0: the default for the size */
	const char *name;
	const uint8_t *parent;		/* NULL: no parent */
	uint64_t created;		/* seconds since the epoch, UTC */
};

/*
 * Builds and signs a manifest: publisher = signer->pk. index_hashes has
 * n_index entries, which must be the geometry's index count (the index
 * chunks' hashes, psd_chunkhash() of each). On success *ret_buf (free())
 * and *ret_len; -EINVAL for any parameter the decoder would refuse.
 */
int psd_manifest_encode(const struct psd_manifest_params *p,
			const uint8_t (*index_hashes)[PSD_HASH_LEN],
			size_t n_index, const struct psd_identity *signer,
			uint8_t **ret_buf, size_t *ret_len,
			struct psd_mf_err *err);

/*
 * Decodes untrusted bytes and checks the signature against the publisher
 * key the manifest names. Says nothing about whether that publisher is
 * trusted: see psd_manifest_accept(). *ret (psd_manifest_free()) on
 * success only.
 */
int psd_manifest_decode(const void *buf, size_t len,
			struct psd_manifest **ret, struct psd_mf_err *err);

/* The publisher keys whose manifests this agent accepts: the configured
 * ones and its own. */
struct psd_trust {
	const uint8_t (*keys)[PSD_PUBKEY_LEN];
	size_t n;
};

bool psd_trust_has(const struct psd_trust *t,
		   const uint8_t pk[PSD_PUBKEY_LEN]);

/*
 * What every received manifest goes through: decode, then refuse an
 * untrusted publisher (-EKEYREJECTED, before spending a signature check
 * on it), then the signature.
 */
int psd_manifest_accept(const void *buf, size_t len,
			const struct psd_trust *trust,
			struct psd_manifest **ret, struct psd_mf_err *err);

void psd_manifest_free(struct psd_manifest *m);

/*
 * Checks a fetched index chunk against the manifest before it is stored
 * or used: its length must be psd_geometry_index_len() and its hash the
 * listed one. -ERANGE for no such index chunk, -EBADMSG with
 * PSD_MF_BAD_INDEX_CHUNK on a mismatch.
 */
int psd_manifest_index_verify(const struct psd_manifest *m, uint32_t index,
			      const void *buf, size_t len,
			      struct psd_mf_err *err);

/*
 * The hash of data chunk `chunk`, read from its index chunk (verified
 * with psd_manifest_index_verify()). index_chunk may be NULL when that
 * index chunk's hash is PSD_HASH_ZERO: it is never fetched, and every
 * chunk it covers is all zeros. -ERANGE past the last chunk, -EINVAL for
 * a NULL index chunk that is not all zeros.
 */
int psd_manifest_chunk_hash(const struct psd_manifest *m, uint64_t chunk,
			    const void *index_chunk,
			    uint8_t ret[PSD_HASH_LEN]);

#endif /* PSD_MANIFEST_H */
