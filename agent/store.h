/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The snapshot store under <state_dir> (docs/store.md): signed manifests,
 * their index chunks (content-addressed), and records of where verified
 * copies of chunks live:
 *
 *   origin  an image file holding every chunk of snapshot X at
 *           chunk * chunk_size (what `peersnap publish` recorded);
 *   cache   a block device holding X's chunks at chunk * chunk_size, for
 *           the chunks of a present bitmap, or, without one, for the
 *           chunks the kernel fetched while X was attached on it.
 *
 * Records are hints. Every chunk read from a recorded place is verified
 * against its hash before use (fetch.c), so a stale record costs a failed
 * verification, never wrong data. Manifests and index chunks, on the other
 * hand, are verified before they are stored: a manifest only through
 * psd_manifest_accept() with the trust list, an index chunk only through
 * psd_manifest_index_verify(), and both again when read back.
 *
 * Every update is crash-safe: written to a temporary file, fsync'ed,
 * renamed into place, the directory fsync'ed. A snapshot is added
 * all-or-nothing: its index chunks are made durable before its manifest,
 * and the manifest's file is what makes it exist.
 *
 * Single-threaded (the agent's loop thread). Snapshot handles and the
 * manifests they return live until psd_store_close(): nothing is ever
 * removed from the store while it is open.
 *
 * Errors are -errno. Functions that take (err, errlen) also explain a
 * failure there in one line that quotes the bad input; the others do not
 * log, except psd_store_open(), which logs (warning) each file it skips.
 */
#ifndef PSD_STORE_H
#define PSD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkhash.h"
#include "manifest.h"

/* Hex digits of a snapshot id prefix accepted by psd_store_lookup(). */
#define PSD_STORE_PREFIX_MIN	8
/* Cache-device records kept per device path; the oldest goes first. */
#define PSD_STORE_MAX_CACHE_PER_DEV	8
/* Longest dm name recorded (DM_NAME_LEN - 1). */
#define PSD_STORE_DM_NAME_MAX	127

struct psd_store;
struct psd_store_snapshot;

struct psd_store_stats {
	uint64_t snapshots;		/* in the store now */
	uint64_t origins;		/* origin records */
	uint64_t cache_records;		/* cache-device records */
	uint64_t index_chunks_stored;	/* index chunk files written */
	uint64_t index_reads;		/* index chunks read from disk */
	uint64_t index_bad;		/* ... that failed verification */
	uint64_t skipped;		/* files skipped at open (logged) */
	uint64_t temp_removed;		/* temp files of an interrupted update */
	uint64_t table_entries;		/* hash -> copy entries */
};

/*
 * Opens (creating its subdirectories, mode 0700) the store in dir, which
 * must exist. Loads every manifest that the trust list accepts and whose
 * index chunks are all there, and every record naming such a snapshot;
 * removes temporary files left by an interrupted update; logs and skips
 * (counted in `skipped`) every file that does not parse, fails
 * verification, names an unknown snapshot, or is from a publisher no
 * longer trusted. The trust list is copied.
 * -ENOTDIR, -EACCES or another -errno of dir; -ENOMEM.
 */
int psd_store_open(struct psd_store **ret, const char *dir,
		   const struct psd_trust *trust, char *err, size_t errlen);
/* Accepts NULL. */
void psd_store_close(struct psd_store *s);

const struct psd_store_stats *psd_store_get_stats(const struct psd_store *s);

/*
 * Changes whenever a recorded place of chunks (an origin, a cache record)
 * is added, replaced or removed, so that the candidate sources of a chunk
 * (psd_store_in_place(), psd_store_find_copies()) may differ from the last
 * call: a fetch that counts the sources it tried starts over.
 */
uint64_t psd_store_generation(const struct psd_store *s);

/* ---- adding a snapshot ------------------------------------------------- */

/*
 * Adding is staged so that index chunks (up to 4 MiB each, 65536 of them)
 * need not all be in memory at once:
 *
 *   psd_store_add_begin()   accepts the manifest (trust, signature)
 *   psd_store_add_index()   verifies and stores index chunk k, any order
 *   psd_store_add_commit()  makes the snapshot exist (manifest written)
 *   psd_store_add_abort()   forgets it (stored index chunks stay: they are
 *                           content-addressed and a retry reuses them)
 *
 * Index chunks whose manifest hash is PSD_HASH_ZERO, and those already in
 * the store, need not be sent (psd_store_add_needs()). Adding a snapshot
 * that is already stored is not an error: commit reports it in *ret_existed
 * and changes nothing.
 */
struct psd_store_add;

/* -EKEYREJECTED (untrusted publisher), -EBADMSG (malformed, bad
 * signature), -ENOMEM; explained in err (psd_mf_err codes). */
int psd_store_add_begin(struct psd_store *s, const void *manifest,
			size_t len, struct psd_store_add **ret,
			struct psd_mf_err *err);

/* The accepted manifest (for its id and index count). */
const struct psd_manifest *psd_store_add_manifest(
	const struct psd_store_add *a);

/* Whether index chunk k must still be sent: false for zero hashes, for
 * chunks already received or already in the store, and for k out of range. */
bool psd_store_add_needs(const struct psd_store_add *a, uint32_t k);

/* -ERANGE (no index chunk k), -EBADMSG (length or hash wrong,
 * PSD_MF_BAD_INDEX_CHUNK), or the -errno of writing it. */
int psd_store_add_index(struct psd_store_add *a, uint32_t k,
			const void *buf, size_t len, struct psd_mf_err *err);

/*
 * Ends the add (a is freed whatever the result). -ENODATA if an index
 * chunk is still needed (err names the first), or the -errno of writing
 * the manifest. *ret (may be NULL) is the snapshot's handle.
 */
int psd_store_add_commit(struct psd_store_add *a,
			 const struct psd_store_snapshot **ret,
			 bool *ret_existed, struct psd_mf_err *err);

/* Accepts NULL. */
void psd_store_add_abort(struct psd_store_add *a);

/* A blob of bytes, for psd_store_add(). */
struct psd_store_blob {
	const void *buf;
	size_t len;
};

/*
 * The stages in one call: index[k] for every k < index_count (entries
 * with a zero hash may be {NULL, 0}). Same errors as the stages.
 */
int psd_store_add(struct psd_store *s, const void *manifest, size_t len,
		  const struct psd_store_blob *index, size_t n_index,
		  const struct psd_store_snapshot **ret, bool *ret_existed,
		  struct psd_mf_err *err);

/* ---- snapshots --------------------------------------------------------- */

/* NULL if the store has no snapshot with this id. */
const struct psd_store_snapshot *psd_store_get(const struct psd_store *s,
					       const uint8_t id[PSD_HASH_LEN]);

/*
 * By id or unique id prefix: 8..64 hex digits, either case. -EINVAL (not
 * hex, too short or too long), -ENOENT (no match), -ENOTUNIQ (more than
 * one snapshot starts with it).
 */
int psd_store_lookup(const struct psd_store *s, const char *hex, size_t len,
		     const struct psd_store_snapshot **ret);

/* Snapshots in the order they were added (at open: by creation time). */
size_t psd_store_count(const struct psd_store *s);
const struct psd_store_snapshot *psd_store_nth(const struct psd_store *s,
					       size_t i);

const struct psd_manifest *psd_store_manifest(
	const struct psd_store_snapshot *sn);

/* The recorded origin image's path, or NULL. */
const char *psd_store_origin(const struct psd_store_snapshot *sn);

/*
 * Copies index chunk k (verified again as it is read; all zeros for a
 * zero hash) into buf: *ret_len = psd_geometry_index_len(). -ERANGE (no
 * such chunk), -ENOBUFS (cap too small), -EBADMSG (the file is corrupt:
 * counted in index_bad), -ENOMEM, or the -errno of reading it.
 */
int psd_store_index_read(struct psd_store *s,
			 const struct psd_store_snapshot *sn, uint32_t k,
			 void *buf, size_t cap, size_t *ret_len);

/* The hash of data chunk `chunk` of sn. -ERANGE past the last chunk;
 * otherwise the errors of psd_store_index_read(). */
int psd_store_chunk_hash(struct psd_store *s,
			 const struct psd_store_snapshot *sn, uint64_t chunk,
			 uint8_t ret[PSD_HASH_LEN]);

/* ---- where copies live ------------------------------------------------- */

/*
 * Records path (absolute, a regular file of the manifest's size) as the
 * origin of snapshot id, replacing an earlier one. -ENOENT (no such
 * snapshot), -EINVAL (relative or too long), -EMEDIUMTYPE (not a regular
 * file, or another size), the -errno of stat or of the write.
 */
int psd_store_set_origin(struct psd_store *s, const uint8_t id[PSD_HASH_LEN],
			 const char *path, char *err, size_t errlen);

/*
 * Records that the block device at dev_path (its dev_t is resolved now)
 * holds snapshot id's chunks: those set in `present` (little-endian bit
 * order, bit i of byte j = chunk 8j + i; present_len must be exactly
 * ceil(chunk_count / 8)), or with present NULL those the kernel fetched
 * while `dm_name` had id attached on it. dm_name may be NULL (a commit's
 * source device). Replaces the record for the same device and snapshot;
 * a device keeps at most PSD_STORE_MAX_CACHE_PER_DEV records.
 * -ENOENT (no such snapshot), -EINVAL (relative path, bad dm name, wrong
 * bitmap length), -ENOTBLK (not a block device), the -errno of stat or of
 * the write.
 */
int psd_store_set_cache(struct psd_store *s, const uint8_t id[PSD_HASH_LEN],
			const char *dev_path, const char *dm_name,
			const uint8_t *present, size_t present_len,
			char *err, size_t errlen);

/*
 * The dm device dm_name was removed. Its record stays (the cache device
 * still holds the data: a later version attached on it reuses it in
 * place), without the dm name. -ENOENT if no record names dm_name, or the
 * -errno of the write.
 */
int psd_store_cache_detached(struct psd_store *s, const char *dm_name);

/* Whether some dm device is recorded as attached under this name. */
bool psd_store_cache_attached(const struct psd_store *s,
			      const char *dm_name);

/*
 * In-place reuse: true if a record says the device dev (new_encode_dev(),
 * as a FETCH carries it) held, at chunk `chunk` and the same chunk size,
 * a chunk whose hash is `hash`, under a snapshot other than `target` (a
 * record for target itself counts only through its present bitmap: those
 * are the chunks being fetched).
 */
bool psd_store_in_place(struct psd_store *s, uint32_t dev,
			const struct psd_store_snapshot *target,
			uint64_t chunk, const uint8_t hash[PSD_HASH_LEN]);

enum psd_copy_kind {
	PSD_COPY_ORIGIN,	/* a regular file, read buffered */
	PSD_COPY_CACHE,		/* a block device, read O_DIRECT */
};

struct psd_store_copy {
	enum psd_copy_kind kind;
	const char *path;	/* valid until the next change to the store */
	uint32_t dev;		/* cache: the recorded dev_t (encoded) */
	uint64_t offset;	/* byte offset of the chunk there */
};

/*
 * Places that should hold a chunk of chunk_size bytes with this hash:
 * origins first, then cache devices. A FETCH's own target place (its
 * cache device at its chunk's offset) may be among them: the caller skips
 * it, having tried it in place. Fills at most max entries, returns how
 * many. Zero hashes have no copies.
 */
size_t psd_store_find_copies(struct psd_store *s,
			     const uint8_t hash[PSD_HASH_LEN],
			     uint32_t chunk_size,
			     struct psd_store_copy *ret, size_t max);

#endif /* PSD_STORE_H */
