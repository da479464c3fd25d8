// SPDX-License-Identifier: GPL-2.0
/*
 * The snapshot store: see store.h, and docs/store.md for the files.
 *
 *   <dir>/manifests/<id>    a signed manifest, as received
 *   <dir>/index/<hash>      an index chunk, named by its hash
 *   <dir>/origins/<id>      record: the origin image of snapshot <id>
 *   <dir>/caches/<id>-<p>   record: a cache device (p: hash of its path)
 *
 * In memory: the snapshots (manifest, origin, cache records), verified
 * index chunks read so far (up to INDEX_CACHE_MAX bytes), and the chunk
 * table: open addressing from the first 8 bytes of a chunk hash to
 * (snapshot, chunk), one entry per distinct hash per snapshot that has a
 * place recorded. A table hit is confirmed against the full hash.
 *
 * Files are written and read through storefile.h (crash-safe writes,
 * checksummed records).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"
#include "origin.h"
#include "store.h"
#include "storefile.h"

#define INDEX_CACHE_MAX		(64u << 20)
/* A cache record's largest bitmap: 2^32 chunks. */
#define REC_MAX_PAYLOAD		((size_t)(PSD_MANIFEST_MAX_CHUNKS / 8) + 4096)
#define CACHE_REC_FIXED		(PSD_HASH_LEN + 8 + 4 + 2 + 1 + 4)

enum subdir { DIR_MANIFESTS, DIR_INDEX, DIR_ORIGINS, DIR_CACHES, NR_DIRS };

static const char *const subdir_name[NR_DIRS] = {
	"manifests", "index", "origins", "caches",
};

struct cache_rec {
	struct psd_store_snapshot *sn;
	struct cache_rec *next;		/* every record, newest first */
	char *path;
	uint32_t dev;			/* new_encode_dev() */
	char dm_name[PSD_STORE_DM_NAME_MAX + 1];	/* "": detached */
	uint8_t *present;		/* NULL: no bitmap */
	size_t present_len;
	uint64_t seq;
};

struct psd_store_snapshot {
	struct psd_manifest *m;
	char *origin;
	uint8_t **index;		/* cached verified index chunks */
	uint32_t pos;			/* in s->snaps */
	bool tabled;			/* its hashes are in the table */
};

struct table_entry {
	uint64_t key;
	uint32_t snap;			/* pos + 1; 0: empty slot */
	uint32_t chunk;
};

struct psd_store {
	int dfd[NR_DIRS];
	uint8_t (*keys)[PSD_PUBKEY_LEN];
	struct psd_trust trust;
	struct psd_store_snapshot **snaps;
	size_t n_snaps, cap_snaps;
	struct cache_rec *caches;
	struct table_entry *table;
	size_t table_cap;		/* a power of two, or 0 */
	size_t index_cached;		/* bytes */
	uint64_t seq;
	uint64_t generation;		/* psd_store_generation() */
	struct psd_store_stats stats;
};

struct psd_store_add {
	struct psd_store *s;
	struct psd_manifest *m;
	uint8_t *have;			/* per index chunk: stored or zero */
	bool existed;
};

static uint32_t dev_encode(dev_t d)
{
	unsigned int ma = major(d), mi = minor(d);

	return (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
}

static void hex_name(const uint8_t id[PSD_HASH_LEN],
		     char out[PSD_SNAPSHOT_HEX_LEN + 1])
{
	psd_hex_id_format(id, out);
}

/* ---- index chunks ------------------------------------------------------ */

static bool index_file_ok(struct psd_store *s, const uint8_t hash[PSD_HASH_LEN],
			  size_t len)
{
	char name[PSD_SNAPSHOT_HEX_LEN + 1];
	struct stat st;

	hex_name(hash, name);
	return fstatat(s->dfd[DIR_INDEX], name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISREG(st.st_mode) && (uint64_t)st.st_size == len;
}

/* Reads index chunk k of m from disk and verifies it (not zero-hashed). */
static int index_load(struct psd_store *s, const struct psd_manifest *m,
		      uint32_t k, uint8_t **ret)
{
	char name[PSD_SNAPSHOT_HEX_LEN + 1];
	uint8_t *buf;
	size_t len;
	int r;

	hex_name(m->index_hashes[k], name);
	s->stats.index_reads++;
	r = psd_file_read(s->dfd[DIR_INDEX], name, PSD_INDEX_CHUNK_SIZE_MAX,
		       &buf, &len);
	if (r == -EFBIG)
		r = -EBADMSG;
	if (r == 0 && psd_manifest_index_verify(m, k, buf, len, NULL) < 0) {
		free(buf);
		r = -EBADMSG;
	}
	if (r == -EBADMSG)
		s->stats.index_bad++;
	if (r == 0)
		*ret = buf;
	return r;
}

static void index_cache_drop(struct psd_store *s)
{
	size_t i;
	uint32_t k;

	for (i = 0; i < s->n_snaps; i++) {
		struct psd_store_snapshot *sn = s->snaps[i];

		for (k = 0; sn->index && k < sn->m->geo.index_count; k++) {
			free(sn->index[k]);
			sn->index[k] = NULL;
		}
	}
	s->index_cached = 0;
}

/*
 * Index chunk k of sn, verified, through the cache: NULL in *ret for a
 * zero hash. The pointer is valid until the next call.
 */
static int index_get(struct psd_store *s, struct psd_store_snapshot *sn,
		     uint32_t k, const uint8_t **ret)
{
	const struct psd_manifest *m = sn->m;
	size_t len = psd_geometry_index_len(&m->geo, k);
	uint8_t *buf;
	int r;

	if (k >= m->geo.index_count)
		return -ERANGE;
	if (psd_hash_is_zero(m->index_hashes[k])) {
		*ret = NULL;
		return 0;
	}
	if (!sn->index) {
		sn->index = calloc(m->geo.index_count, sizeof(*sn->index));
		if (!sn->index)
			return -ENOMEM;
	}
	if (!sn->index[k]) {
		r = index_load(s, m, k, &buf);
		if (r < 0)
			return r;
		if (s->index_cached + len > INDEX_CACHE_MAX)
			index_cache_drop(s);
		sn->index[k] = buf;
		s->index_cached += len;
	}
	*ret = sn->index[k];
	return 0;
}

int psd_store_index_read(struct psd_store *s,
			 const struct psd_store_snapshot *csn, uint32_t k,
			 void *buf, size_t cap, size_t *ret_len)
{
	struct psd_store_snapshot *sn = s->snaps[csn->pos];
	size_t len = psd_geometry_index_len(&sn->m->geo, k);
	const uint8_t *p;
	int r;

	if (!len)
		return -ERANGE;
	if (cap < len)
		return -ENOBUFS;
	r = index_get(s, sn, k, &p);
	if (r < 0)
		return r;
	if (p)
		memcpy(buf, p, len);
	else
		memset(buf, 0, len);
	*ret_len = len;
	return 0;
}

int psd_store_chunk_hash(struct psd_store *s,
			 const struct psd_store_snapshot *csn, uint64_t chunk,
			 uint8_t ret[PSD_HASH_LEN])
{
	struct psd_store_snapshot *sn = s->snaps[csn->pos];
	const uint8_t *p;
	uint32_t k, slot;
	int r;

	r = psd_geometry_locate(&sn->m->geo, chunk, &k, &slot);
	if (r < 0)
		return r;
	r = index_get(s, sn, k, &p);
	if (r < 0)
		return r;
	return psd_manifest_chunk_hash(sn->m, chunk, p, ret);
}

/* ---- the chunk table --------------------------------------------------- */

static uint64_t hash_key(const uint8_t h[PSD_HASH_LEN])
{
	uint64_t v;

	memcpy(&v, h, sizeof(v));
	return v;
}

static size_t table_slot(const struct psd_store *s, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 7) &
	       (s->table_cap - 1);
}

/* Adds (key, snap, chunk) unless that snapshot already has this key. */
static void table_put(struct psd_store *s, uint64_t key, uint32_t snap,
		      uint32_t chunk)
{
	size_t i = table_slot(s, key);

	for (;; i = (i + 1) & (s->table_cap - 1)) {
		struct table_entry *e = &s->table[i];

		if (!e->snap) {
			*e = (struct table_entry){ key, snap, chunk };
			s->stats.table_entries++;
			return;
		}
		if (e->key == key && e->snap == snap)
			return;
	}
}

/* Keeps the load factor at most 1/2 for `more` new entries. */
static int table_reserve(struct psd_store *s, uint64_t more)
{
	struct table_entry *old = s->table;
	size_t old_cap = s->table_cap, cap = old_cap ? old_cap : 1024, i;

	while ((s->stats.table_entries + more) * 2 > cap) {
		if (cap > SIZE_MAX / 2 / sizeof(*old))
			return -ENOMEM;
		cap *= 2;
	}
	if (cap == old_cap)
		return 0;
	s->table = calloc(cap, sizeof(*s->table));
	if (!s->table) {
		s->table = old;
		return -ENOMEM;
	}
	s->table_cap = cap;
	s->stats.table_entries = 0;
	for (i = 0; i < old_cap; i++)
		if (old[i].snap)
			table_put(s, old[i].key, old[i].snap, old[i].chunk);
	free(old);
	return 0;
}

/* Puts every non-zero chunk hash of sn in the table, once. */
static int table_add_snapshot(struct psd_store *s,
			      struct psd_store_snapshot *sn)
{
	const struct psd_geometry *g = &sn->m->geo;
	uint8_t *buf;
	uint64_t chunk = 0;
	uint32_t k, j, n;
	int r;

	if (sn->tabled)
		return 0;
	r = table_reserve(s, g->chunk_count);
	if (r < 0)
		return r;
	for (k = 0; k < g->index_count; k++) {
		n = (uint32_t)(psd_geometry_index_len(g, k) / PSD_HASH_LEN);
		if (psd_hash_is_zero(sn->m->index_hashes[k])) {
			chunk += n;
			continue;
		}
		/* Uncached: building must not evict what fetches use. */
		r = index_load(s, sn->m, k, &buf);
		if (r < 0)
			return r;
		for (j = 0; j < n; j++, chunk++)
			if (!psd_hash_is_zero(buf + j * PSD_HASH_LEN))
				table_put(s, hash_key(buf + j * PSD_HASH_LEN),
					  sn->pos + 1, (uint32_t)chunk);
		free(buf);
	}
	sn->tabled = true;
	return 0;
}

/* ---- snapshots --------------------------------------------------------- */

static struct psd_store_snapshot *find_snap(const struct psd_store *s,
					    const uint8_t id[PSD_HASH_LEN])
{
	size_t i;

	for (i = 0; i < s->n_snaps; i++)
		if (!memcmp(s->snaps[i]->m->id, id, PSD_HASH_LEN))
			return s->snaps[i];
	return NULL;
}

const struct psd_store_snapshot *psd_store_get(const struct psd_store *s,
					       const uint8_t id[PSD_HASH_LEN])
{
	return find_snap(s, id);
}

static bool id_has_prefix(const uint8_t id[PSD_HASH_LEN], const char *hex,
			  size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		int nib = i % 2 ? id[i / 2] & 0xf : id[i / 2] >> 4;

		if (nib != psd_hex_nibble(hex[i]))
			return false;
	}
	return true;
}

int psd_store_lookup(const struct psd_store *s, const char *hex, size_t len,
		     const struct psd_store_snapshot **ret)
{
	const struct psd_store_snapshot *found = NULL;
	size_t i;

	if (len < PSD_STORE_PREFIX_MIN || len > PSD_SNAPSHOT_HEX_LEN)
		return -EINVAL;
	if (psd_hex_span(hex, len) != len)
		return -EINVAL;
	for (i = 0; i < s->n_snaps; i++) {
		if (!id_has_prefix(s->snaps[i]->m->id, hex, len))
			continue;
		if (found)
			return -ENOTUNIQ;
		found = s->snaps[i];
	}
	if (!found)
		return -ENOENT;
	*ret = found;
	return 0;
}

size_t psd_store_count(const struct psd_store *s)
{
	return s->n_snaps;
}

const struct psd_store_snapshot *psd_store_nth(const struct psd_store *s,
					       size_t i)
{
	return i < s->n_snaps ? s->snaps[i] : NULL;
}

const struct psd_manifest *psd_store_manifest(
	const struct psd_store_snapshot *sn)
{
	return sn->m;
}

const char *psd_store_origin(const struct psd_store_snapshot *sn)
{
	return sn->origin;
}

const struct psd_store_stats *psd_store_get_stats(const struct psd_store *s)
{
	return &s->stats;
}

uint64_t psd_store_generation(const struct psd_store *s)
{
	return s->generation;
}

/* Takes m; on failure m is freed. */
static int snap_append(struct psd_store *s, struct psd_manifest *m,
		       struct psd_store_snapshot **ret)
{
	struct psd_store_snapshot *sn, **v;

	if (s->n_snaps == s->cap_snaps) {
		size_t cap = s->cap_snaps ? 2 * s->cap_snaps : 16;

		v = realloc(s->snaps, cap * sizeof(*v));
		if (!v)
			goto nomem;
		s->snaps = v;
		s->cap_snaps = cap;
	}
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		goto nomem;
	sn->m = m;
	sn->pos = (uint32_t)s->n_snaps;
	s->snaps[s->n_snaps++] = sn;
	s->stats.snapshots++;
	if (ret)
		*ret = sn;
	return 0;
nomem:
	psd_manifest_free(m);
	return -ENOMEM;
}

static void snap_free(struct psd_store_snapshot *sn)
{
	uint32_t k;

	for (k = 0; sn->index && k < sn->m->geo.index_count; k++)
		free(sn->index[k]);
	free(sn->index);
	free(sn->origin);
	psd_manifest_free(sn->m);
	free(sn);
}

/* ---- adding ------------------------------------------------------------ */

/* An index chunk already stored counts only if it still verifies. */
static bool index_stored_ok(struct psd_store *s, const struct psd_manifest *m,
			    uint32_t k)
{
	uint8_t *buf;

	if (!index_file_ok(s, m->index_hashes[k],
			   psd_geometry_index_len(&m->geo, k)))
		return false;
	if (index_load(s, m, k, &buf) < 0)
		return false;
	free(buf);
	return true;
}

int psd_store_add_begin(struct psd_store *s, const void *manifest,
			size_t len, struct psd_store_add **ret,
			struct psd_mf_err *err)
{
	struct psd_store_add *a;
	struct psd_manifest *m;
	uint32_t k;
	int r;

	r = psd_manifest_accept(manifest, len, &s->trust, &m, err);
	if (r < 0)
		return r;
	a = calloc(1, sizeof(*a));
	if (a)
		a->have = calloc(m->geo.index_count, 1);
	if (!a || !a->have) {
		free(a);
		psd_manifest_free(m);
		return -ENOMEM;
	}
	a->s = s;
	a->m = m;
	a->existed = find_snap(s, m->id) != NULL;
	for (k = 0; k < m->geo.index_count; k++)
		a->have[k] = a->existed ||
			     psd_hash_is_zero(m->index_hashes[k]) ||
			     index_stored_ok(s, m, k);
	*ret = a;
	return 0;
}

const struct psd_manifest *psd_store_add_manifest(
	const struct psd_store_add *a)
{
	return a->m;
}

/* A file of the add could not be written: why, in err (may be NULL). */
static int add_write_error(struct psd_mf_err *err, int r, const char *fmt,
			   ...) __attribute__((format(printf, 3, 4)));

static int add_write_error(struct psd_mf_err *err, int r, const char *fmt,
			   ...)
{
	char what[96];
	va_list ap;

	if (!err)
		return r;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err->msg, sizeof(err->msg), "%s: %s", what, strerror(-r));
	return r;
}

bool psd_store_add_needs(const struct psd_store_add *a, uint32_t k)
{
	return k < a->m->geo.index_count && !a->have[k];
}

int psd_store_add_index(struct psd_store_add *a, uint32_t k,
			const void *buf, size_t len, struct psd_mf_err *err)
{
	char name[PSD_SNAPSHOT_HEX_LEN + 1];
	uint32_t j;
	int r;

	r = psd_manifest_index_verify(a->m, k, buf, len, err);
	if (r < 0 || a->have[k])
		return r;
	hex_name(a->m->index_hashes[k], name);
	/* The directory is fsync'ed once, before the manifest is written. */
	r = psd_file_write_atomic(a->s->dfd[DIR_INDEX], name, buf, len, false);
	if (r < 0)
		return add_write_error(err, r, "index chunk %u: cannot store it",
				       k);
	a->s->stats.index_chunks_stored++;
	/* Identical index chunks elsewhere in the list are stored too. */
	for (j = 0; j < a->m->geo.index_count; j++)
		if (!memcmp(a->m->index_hashes[j], a->m->index_hashes[k],
			    PSD_HASH_LEN))
			a->have[j] = 1;
	return 0;
}

void psd_store_add_abort(struct psd_store_add *a)
{
	if (!a)
		return;
	psd_manifest_free(a->m);
	free(a->have);
	free(a);
}

static int add_finish(struct psd_store_add *a,
		      struct psd_store_snapshot **ret, struct psd_mf_err *err)
{
	struct psd_store *s = a->s;
	char name[PSD_SNAPSHOT_HEX_LEN + 1];
	uint32_t k;
	int r;

	for (k = 0; k < a->m->geo.index_count; k++) {
		if (a->have[k])
			continue;
		if (err) {
			err->code = PSD_MF_MISSING_FIELD;
			snprintf(err->msg, sizeof(err->msg),
				 "index chunk %u of %u was not sent", k,
				 a->m->geo.index_count);
		}
		return -ENODATA;
	}
	/* Every index chunk is durable before the manifest names them. */
	if (fsync(s->dfd[DIR_INDEX]) < 0)
		return -errno;
	hex_name(a->m->id, name);
	r = psd_file_write_atomic(s->dfd[DIR_MANIFESTS], name, a->m->raw,
				  a->m->raw_len, true);
	if (r < 0)
		return add_write_error(err, r, "cannot store manifest %s", name);
	r = snap_append(s, a->m, ret);
	a->m = NULL;
	return r;
}

int psd_store_add_commit(struct psd_store_add *a,
			 const struct psd_store_snapshot **ret,
			 bool *ret_existed, struct psd_mf_err *err)
{
	struct psd_store_snapshot *sn;
	int r = 0;

	/* Decided now, not at begin: another add of the same snapshot (a
	 * second control client) may have committed in between. */
	sn = find_snap(a->s, a->m->id);
	a->existed = sn != NULL;
	if (!a->existed)
		r = add_finish(a, &sn, err);
	if (r == 0 && ret)
		*ret = sn;
	if (r == 0 && ret_existed)
		*ret_existed = a->existed;
	psd_store_add_abort(a);
	return r;
}

int psd_store_add(struct psd_store *s, const void *manifest, size_t len,
		  const struct psd_store_blob *index, size_t n_index,
		  const struct psd_store_snapshot **ret, bool *ret_existed,
		  struct psd_mf_err *err)
{
	struct psd_store_add *a;
	uint32_t k;
	int r;

	r = psd_store_add_begin(s, manifest, len, &a, err);
	if (r < 0)
		return r;
	for (k = 0; k < a->m->geo.index_count; k++) {
		if (!psd_store_add_needs(a, k))
			continue;
		r = k < n_index ? psd_store_add_index(a, k, index[k].buf,
						      index[k].len, err)
				: 0;
		if (r < 0) {
			psd_store_add_abort(a);
			return r;
		}
	}
	return psd_store_add_commit(a, ret, ret_existed, err);
}

/* ---- origins ----------------------------------------------------------- */

static int set_origin_mem(struct psd_store *s, struct psd_store_snapshot *sn,
			  const char *path)
{
	char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	if (!sn->origin)
		s->stats.origins++;
	free(sn->origin);
	sn->origin = p;
	s->generation++;
	return table_add_snapshot(s, sn);
}

static int check_origin_file(const struct psd_manifest *m, const char *path,
			     char *err, size_t errlen)
{
	struct stat st;

	if (path[0] != '/' || strlen(path) >= PATH_MAX) {
		snprintf(err, errlen, "origin '%s': must be an absolute path",
			 path);
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "origin '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->geo.size) {
		snprintf(err, errlen,
			 "origin '%s': not a regular file of %llu bytes (the snapshot's size)",
			 path, (unsigned long long)m->geo.size);
		return -EMEDIUMTYPE;
	}
	return 0;
}

int psd_store_set_origin(struct psd_store *s, const uint8_t id[PSD_HASH_LEN],
			 const char *path, char *err, size_t errlen)
{
	struct psd_store_snapshot *sn = find_snap(s, id);
	char name[PSD_SNAPSHOT_HEX_LEN + 1];
	uint8_t *payload;
	size_t plen;
	int r;

	hex_name(id, name);
	if (!sn) {
		snprintf(err, errlen, "no snapshot %s in the store", name);
		return -ENOENT;
	}
	r = check_origin_file(sn->m, path, err, errlen);
	if (r < 0)
		return r;
	plen = PSD_HASH_LEN + strlen(path);
	payload = malloc(plen);
	if (!payload)
		return -ENOMEM;
	memcpy(payload, id, PSD_HASH_LEN);
	memcpy(payload + PSD_HASH_LEN, path, plen - PSD_HASH_LEN);
	r = psd_record_write(s->dfd[DIR_ORIGINS], name, payload, plen);
	free(payload);
	if (r == 0)
		r = set_origin_mem(s, sn, path);
	if (r < 0)
		snprintf(err, errlen, "origin record for %s: %s", name,
			 strerror(-r));
	return r;
}

/* ---- cache devices ----------------------------------------------------- */

static void cache_rec_free(struct cache_rec *c)
{
	free(c->path);
	free(c->present);
	free(c);
}

/* caches/<snapshot id>-<16 hex digits of the path's hash> */
static void cache_rec_name(const struct cache_rec *c, char *out, size_t len)
{
	char id[PSD_SNAPSHOT_HEX_LEN + 1];
	uint8_t h[PSD_HASH_LEN];

	hex_name(c->sn->m->id, id);
	psd_chunkhash(c->path, strlen(c->path), h);
	snprintf(out, len, "%s-%02x%02x%02x%02x%02x%02x%02x%02x", id, h[0],
		 h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
}

static void put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;
	unsigned int i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * Payload: snapshot id, seq u64, dev u32, path_len u16, name_len u8,
 * present_len u32, then the path, the dm name and the bitmap.
 */
static int cache_rec_save(struct psd_store *s, const struct cache_rec *c)
{
	size_t plen = strlen(c->path), nlen = strlen(c->dm_name);
	size_t len = CACHE_REC_FIXED + plen + nlen + c->present_len;
	uint8_t *p = malloc(len), *q;
	char name[NAME_MAX + 1];
	int r;

	if (!p)
		return -ENOMEM;
	memcpy(p, c->sn->m->id, PSD_HASH_LEN);
	q = p + PSD_HASH_LEN;
	put_le(q, c->seq, 8);
	put_le(q + 8, c->dev, 4);
	put_le(q + 12, plen, 2);
	put_le(q + 14, nlen, 1);
	put_le(q + 15, c->present_len, 4);
	q += 19;
	memcpy(q, c->path, plen);
	memcpy(q + plen, c->dm_name, nlen);
	if (c->present_len)
		memcpy(q + plen + nlen, c->present, c->present_len);
	cache_rec_name(c, name, sizeof(name));
	r = psd_record_write(s->dfd[DIR_CACHES], name, p, len);
	free(p);
	return r;
}

static void cache_rec_unlink(struct psd_store *s, struct cache_rec *c)
{
	struct cache_rec **pp = &s->caches;
	char name[NAME_MAX + 1];

	cache_rec_name(c, name, sizeof(name));
	if (unlinkat(s->dfd[DIR_CACHES], name, 0) == 0)
		fsync(s->dfd[DIR_CACHES]);
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	s->stats.cache_records--;
	s->generation++;
	cache_rec_free(c);
}

/* Keeps at most PSD_STORE_MAX_CACHE_PER_DEV records for c's path. */
static void cache_evict(struct psd_store *s, const char *path)
{
	struct cache_rec *c, *oldest;
	unsigned int n;

	for (;;) {
		oldest = NULL;
		n = 0;
		for (c = s->caches; c; c = c->next) {
			if (strcmp(c->path, path))
				continue;
			n++;
			if (!oldest || c->seq < oldest->seq)
				oldest = c;
		}
		if (n <= PSD_STORE_MAX_CACHE_PER_DEV)
			return;
		cache_rec_unlink(s, oldest);
	}
}

/* A dm name is one device at a time: other records lose it. */
static int cache_take_name(struct psd_store *s, const struct cache_rec *keep,
			   const char *dm_name)
{
	struct cache_rec *c;
	int r, ret = -ENOENT;

	for (c = s->caches; c; c = c->next) {
		if (c == keep || strcmp(c->dm_name, dm_name))
			continue;
		c->dm_name[0] = '\0';
		r = cache_rec_save(s, c);
		ret = ret == -ENOENT || ret == 0 ? r : ret;
	}
	return ret;
}

static struct cache_rec *cache_find(struct psd_store *s,
				    const struct psd_store_snapshot *sn,
				    const char *path)
{
	struct cache_rec *c;

	for (c = s->caches; c; c = c->next)
		if (c->sn == sn && !strcmp(c->path, path))
			return c;
	return NULL;
}

static int check_cache_args(const struct psd_manifest *m, const char *path,
			    const char *dm_name, const uint8_t *present,
			    size_t present_len, char *err, size_t errlen)
{
	size_t want = (size_t)((m->geo.chunk_count + 7) / 8);

	if (path[0] != '/' || strlen(path) >= PATH_MAX) {
		snprintf(err, errlen, "cache device '%s': must be an absolute path",
			 path);
		return -EINVAL;
	}
	if (dm_name && (!dm_name[0] || strlen(dm_name) > PSD_STORE_DM_NAME_MAX ||
			strchr(dm_name, '/'))) {
		snprintf(err, errlen, "dm name '%s': 1..%d characters, no '/'",
			 dm_name, PSD_STORE_DM_NAME_MAX);
		return -EINVAL;
	}
	if (present && present_len != want) {
		snprintf(err, errlen,
			 "present bitmap of %zu bytes: the snapshot's %llu chunks need %zu",
			 present_len, (unsigned long long)m->geo.chunk_count,
			 want);
		return -EINVAL;
	}
	return 0;
}

static int cache_rec_new(struct psd_store *s, struct psd_store_snapshot *sn,
			 const char *path, struct cache_rec **ret)
{
	struct cache_rec *c = calloc(1, sizeof(*c));

	if (c)
		c->path = strdup(path);
	if (!c || !c->path) {
		free(c);
		return -ENOMEM;
	}
	c->sn = sn;
	c->next = s->caches;
	s->caches = c;
	s->stats.cache_records++;
	*ret = c;
	return 0;
}

static int cache_rec_fill(struct cache_rec *c, uint32_t dev,
			  const char *dm_name, const uint8_t *present,
			  size_t present_len, uint64_t seq)
{
	uint8_t *bits = NULL;

	if (present_len) {
		bits = malloc(present_len);
		if (!bits)
			return -ENOMEM;
		memcpy(bits, present, present_len);
	}
	free(c->present);
	c->present = bits;
	c->present_len = present_len;
	c->dev = dev;
	snprintf(c->dm_name, sizeof(c->dm_name), "%s", dm_name ? dm_name : "");
	c->seq = seq;
	return 0;
}

int psd_store_set_cache(struct psd_store *s, const uint8_t id[PSD_HASH_LEN],
			const char *dev_path, const char *dm_name,
			const uint8_t *present, size_t present_len,
			char *err, size_t errlen)
{
	struct psd_store_snapshot *sn = find_snap(s, id);
	char name[PSD_SNAPSHOT_HEX_LEN + 1];
	struct cache_rec *c;
	struct stat st;
	int r;

	hex_name(id, name);
	if (!sn) {
		snprintf(err, errlen, "no snapshot %s in the store", name);
		return -ENOENT;
	}
	r = check_cache_args(sn->m, dev_path, dm_name, present, present_len,
			     err, errlen);
	if (r < 0)
		return r;
	if (stat(dev_path, &st) < 0) {
		snprintf(err, errlen, "cache device '%s': %s", dev_path,
			 strerror(errno));
		return -errno;
	}
	if (!S_ISBLK(st.st_mode)) {
		snprintf(err, errlen, "cache device '%s': not a block device",
			 dev_path);
		return -ENOTBLK;
	}
	c = cache_find(s, sn, dev_path);
	r = c ? 0 : cache_rec_new(s, sn, dev_path, &c);
	if (r == 0)
		r = cache_rec_fill(c, dev_encode(st.st_rdev), dm_name,
				   present, present ? present_len : 0,
				   ++s->seq);
	s->generation++;
	if (r == 0)
		r = cache_rec_save(s, c);
	if (r == 0 && dm_name) {
		r = cache_take_name(s, c, dm_name);
		r = r == -ENOENT ? 0 : r;
	}
	if (r == 0)
		cache_evict(s, dev_path);
	if (r == 0)
		r = table_add_snapshot(s, sn);
	if (r < 0)
		snprintf(err, errlen, "cache record for %s on '%s': %s", name,
			 dev_path, strerror(-r));
	return r;
}

int psd_store_cache_detached(struct psd_store *s, const char *dm_name)
{
	if (!dm_name[0])
		return -ENOENT;
	return cache_take_name(s, NULL, dm_name);
}

bool psd_store_cache_attached(const struct psd_store *s, const char *dm_name)
{
	const struct cache_rec *c;

	for (c = s->caches; dm_name[0] && c; c = c->next)
		if (!strcmp(c->dm_name, dm_name))
			return true;
	return false;
}

static bool bit_set(const uint8_t *bits, uint64_t i)
{
	return bits[i / 8] & (1u << (i % 8));
}

/* Whether c's snapshot has `hash` at chunk (same chunk size). */
static bool rec_has(struct psd_store *s, const struct cache_rec *c,
		    uint64_t chunk, uint32_t chunk_size,
		    const uint8_t hash[PSD_HASH_LEN])
{
	const struct psd_geometry *g = &c->sn->m->geo;
	uint8_t h[PSD_HASH_LEN];

	if (g->chunk_size != chunk_size || chunk >= g->chunk_count)
		return false;
	if (c->present && !bit_set(c->present, chunk))
		return false;
	return psd_store_chunk_hash(s, c->sn, chunk, h) == 0 &&
	       !memcmp(h, hash, PSD_HASH_LEN);
}

bool psd_store_in_place(struct psd_store *s, uint32_t dev,
			const struct psd_store_snapshot *target,
			uint64_t chunk, const uint8_t hash[PSD_HASH_LEN])
{
	const struct cache_rec *c;

	if (psd_hash_is_zero(hash))
		return false;
	for (c = s->caches; c; c = c->next) {
		if (c->dev != dev || (c->sn == target && !c->present))
			continue;
		if (rec_has(s, c, chunk, target->m->geo.chunk_size, hash))
			return true;
	}
	return false;
}

/* Appends the places of (sn, chunk) of one kind; returns the new count. */
static size_t copies_of(struct psd_store *s, struct psd_store_snapshot *sn,
			uint32_t chunk, enum psd_copy_kind kind,
			struct psd_store_copy *ret, size_t n, size_t max)
{
	uint64_t off = (uint64_t)chunk * sn->m->geo.chunk_size;
	const struct cache_rec *c;

	if (kind == PSD_COPY_ORIGIN) {
		if (sn->origin && n < max)
			ret[n++] = (struct psd_store_copy){
				PSD_COPY_ORIGIN, sn->origin, 0, off };
		return n;
	}
	for (c = s->caches; c && n < max; c = c->next)
		if (c->sn == sn && (!c->present || bit_set(c->present, chunk)))
			ret[n++] = (struct psd_store_copy){
				PSD_COPY_CACHE, c->path, c->dev, off };
	return n;
}

size_t psd_store_find_copies(struct psd_store *s,
			     const uint8_t hash[PSD_HASH_LEN],
			     uint32_t chunk_size,
			     struct psd_store_copy *ret, size_t max)
{
	uint64_t key = hash_key(hash);
	uint8_t h[PSD_HASH_LEN];
	size_t n = 0, i, start;
	int kind;

	if (!s->table_cap || psd_hash_is_zero(hash))
		return 0;
	start = table_slot(s, key);
	for (kind = PSD_COPY_ORIGIN; kind <= PSD_COPY_CACHE; kind++) {
		for (i = start; s->table[i].snap;
		     i = (i + 1) & (s->table_cap - 1)) {
			struct table_entry e = s->table[i];
			struct psd_store_snapshot *sn = s->snaps[e.snap - 1];

			if (e.key != key || sn->m->geo.chunk_size != chunk_size)
				continue;
			if (psd_store_chunk_hash(s, sn, e.chunk, h) < 0 ||
			    memcmp(h, hash, PSD_HASH_LEN))
				continue;
			n = copies_of(s, sn, e.chunk, kind, ret, n, max);
		}
	}
	return n;
}

/* ---- opening ----------------------------------------------------------- */

static void skip(struct psd_store *s, enum subdir d, const char *name,
		 const char *why)
{
	s->stats.skipped++;
	psd_warn("store: skipping %s/%s: %s", subdir_name[d], name, why);
}

static bool is_hex_id_name(const char *name, uint8_t id[PSD_HASH_LEN])
{
	return strlen(name) == PSD_SNAPSHOT_HEX_LEN &&
	       psd_hex_id_parse(name, PSD_SNAPSHOT_HEX_LEN, id) == 0;
}

static const char *manifest_incomplete(struct psd_store *s,
				       const struct psd_manifest *m)
{
	uint32_t k;

	for (k = 0; k < m->geo.index_count; k++)
		if (!psd_hash_is_zero(m->index_hashes[k]) &&
		    !index_file_ok(s, m->index_hashes[k],
				   psd_geometry_index_len(&m->geo, k)))
			return "an index chunk is missing or has the wrong size";
	return NULL;
}

/*
 * The loaders below return NULL, or why the file is skipped (in buf when
 * it is built).
 */
typedef const char *(*load_fn)(struct psd_store *s, const char *name,
			       char *buf, size_t len);

static const char *load_manifest(struct psd_store *s, const char *name,
				 char *buf, size_t buflen)
{
	uint8_t id[PSD_HASH_LEN], *raw;
	struct psd_manifest *m;
	struct psd_mf_err e = { 0 };
	const char *why;
	size_t len;
	int r;

	if (!is_hex_id_name(name, id))
		return "not a snapshot id";
	r = psd_file_read(s->dfd[DIR_MANIFESTS], name, PSD_MANIFEST_MAX_LEN,
		       &raw, &len);
	if (r < 0)
		return r == -EFBIG ? "too large or not a file" : strerror(-r);
	r = psd_manifest_accept(raw, len, &s->trust, &m, &e);
	free(raw);
	if (r < 0) {
		snprintf(buf, buflen, "%s", e.msg);
		return buf;
	}
	if (memcmp(m->id, id, PSD_HASH_LEN))
		why = "its id is not its name";
	else
		why = find_snap(s, id) ? "duplicate" : manifest_incomplete(s, m);
	if (why) {
		psd_manifest_free(m);
		return why;
	}
	return snap_append(s, m, NULL) < 0 ? "out of memory" : NULL;
}

/* An origin payload: the snapshot id (its file's name), then a path. */
static const char *origin_payload_error(const uint8_t *p, size_t len,
					const uint8_t id[PSD_HASH_LEN])
{
	if (len <= PSD_HASH_LEN || len - PSD_HASH_LEN >= PATH_MAX ||
	    memcmp(p, id, PSD_HASH_LEN) || p[PSD_HASH_LEN] != '/' ||
	    memchr(p + PSD_HASH_LEN, 0, len - PSD_HASH_LEN))
		return "malformed";
	return NULL;
}

static const char *load_origin(struct psd_store *s, const char *name,
			       char *buf, size_t buflen)
{
	struct psd_store_snapshot *sn;
	uint8_t id[PSD_HASH_LEN], *p;
	const char *why;
	char *path;
	size_t len;
	int r;

	(void)buf;
	(void)buflen;
	if (!is_hex_id_name(name, id))
		return "not a snapshot id";
	if (psd_record_read(s->dfd[DIR_ORIGINS], name, REC_MAX_PAYLOAD, &p, &len,
			    &why) < 0)
		return why;
	why = origin_payload_error(p, len, id);
	sn = find_snap(s, id);
	if (!why && !sn)
		why = "no such snapshot";
	path = why ? NULL : strndup((char *)p + PSD_HASH_LEN,
				    len - PSD_HASH_LEN);
	free(p);
	if (why)
		return why;
	r = path ? set_origin_mem(s, sn, path) : -ENOMEM;
	free(path);
	return r < 0 ? strerror(-r) : NULL;
}

/* Parses a cache record's payload into c (path, name, bitmap). */
static const char *cache_rec_parse(struct psd_store *s, const uint8_t *p,
				   size_t len, struct cache_rec *c)
{
	size_t plen, nlen, blen;
	const uint8_t *q = p + PSD_HASH_LEN;

	if (len < CACHE_REC_FIXED)
		return "truncated";
	c->sn = find_snap(s, p);
	if (!c->sn)
		return "no such snapshot";
	c->seq = get_le(q, 8);
	c->dev = (uint32_t)get_le(q + 8, 4);
	plen = get_le(q + 12, 2);
	nlen = get_le(q + 14, 1);
	blen = get_le(q + 15, 4);
	q += 19;
	if (len != CACHE_REC_FIXED + plen + nlen + blen || !plen ||
	    q[0] != '/' || nlen > PSD_STORE_DM_NAME_MAX ||
	    memchr(q, 0, plen + nlen) ||
	    (blen && blen != (c->sn->m->geo.chunk_count + 7) / 8))
		return "malformed";
	c->path = strndup((const char *)q, plen);
	memcpy(c->dm_name, q + plen, nlen);
	c->dm_name[nlen] = '\0';
	if (blen) {
		c->present = malloc(blen);
		if (c->present)
			memcpy(c->present, q + plen + nlen, blen);
		c->present_len = blen;
	}
	if (!c->path || (blen && !c->present))
		return "out of memory";
	return NULL;
}

static const char *load_cache(struct psd_store *s, const char *name,
			      char *buf, size_t buflen)
{
	struct cache_rec *c = calloc(1, sizeof(*c));
	char want[NAME_MAX + 1];
	const char *why;
	uint8_t *p;
	size_t len;

	(void)buf;
	(void)buflen;
	if (!c)
		return "out of memory";
	if (psd_record_read(s->dfd[DIR_CACHES], name, REC_MAX_PAYLOAD, &p, &len,
			    &why) == 0) {
		why = cache_rec_parse(s, p, len, c);
		free(p);
	}
	if (!why) {
		cache_rec_name(c, want, sizeof(want));
		why = strcmp(want, name) ? "its name does not match" : NULL;
	}
	if (!why && cache_find(s, c->sn, c->path))
		why = "duplicate";
	if (!why && table_add_snapshot(s, c->sn) < 0)
		why = "cannot index its snapshot";
	if (why) {
		cache_rec_free(c);
		return why;
	}
	c->next = s->caches;
	s->caches = c;
	s->stats.cache_records++;
	if (c->seq > s->seq)
		s->seq = c->seq;
	return NULL;
}

/* Calls fn for every entry of a subdirectory but temporary files. */
static void scan(struct psd_store *s, enum subdir d, load_fn fn)
{
	DIR *dir = psd_dir_open(s->dfd[d]);
	struct dirent *e;
	const char *why;
	char buf[256];

	if (!dir) {
		psd_warn("store: cannot list %s: %s", subdir_name[d],
			 strerror(errno));
		return;
	}
	while ((e = readdir(dir))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    psd_file_is_temp(e->d_name))
			continue;
		why = fn(s, e->d_name, buf, sizeof(buf));
		if (why)
			skip(s, d, e->d_name, why);
	}
	closedir(dir);
}

static int by_created(const void *a, const void *b)
{
	const struct psd_manifest *x = (*(struct psd_store_snapshot *const *)a)->m;
	const struct psd_manifest *y = (*(struct psd_store_snapshot *const *)b)->m;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return memcmp(x->id, y->id, PSD_HASH_LEN);
}

static int open_dirs(struct psd_store *s, const char *dir, char *err,
		     size_t errlen)
{
	int top, d;

	top = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0) {
		snprintf(err, errlen, "store %s: %s", dir, strerror(errno));
		return -errno;
	}
	for (d = 0; d < NR_DIRS; d++) {
		if (mkdirat(top, subdir_name[d], 0700) < 0 && errno != EEXIST)
			break;
		s->dfd[d] = openat(top, subdir_name[d],
				   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dfd[d] < 0)
			break;
	}
	if (d < NR_DIRS) {
		snprintf(err, errlen, "store %s/%s: %s", dir, subdir_name[d],
			 strerror(errno));
		d = -errno;
	} else {
		fsync(top);
		d = 0;
	}
	close(top);
	return d;
}

static int copy_trust(struct psd_store *s, const struct psd_trust *t)
{
	if (t && t->n) {
		s->keys = malloc(t->n * sizeof(*s->keys));
		if (!s->keys)
			return -ENOMEM;
		memcpy(s->keys, t->keys, t->n * sizeof(*s->keys));
		s->trust.n = t->n;
	}
	s->trust.keys = (const uint8_t (*)[PSD_PUBKEY_LEN])s->keys;
	return 0;
}

int psd_store_open(struct psd_store **ret, const char *dir,
		   const struct psd_trust *trust, char *err, size_t errlen)
{
	struct psd_store *s = calloc(1, sizeof(*s));
	size_t i;
	int d, r;

	if (!s)
		return -ENOMEM;
	for (d = 0; d < NR_DIRS; d++)
		s->dfd[d] = -1;
	r = copy_trust(s, trust);
	if (r == 0)
		r = open_dirs(s, dir, err, errlen);
	if (r < 0) {
		psd_store_close(s);
		return r;
	}
	for (d = 0; d < NR_DIRS; d++)
		s->stats.temp_removed += psd_dir_remove_temps(s->dfd[d]);
	scan(s, DIR_MANIFESTS, load_manifest);
	if (s->n_snaps > 1)
		qsort(s->snaps, s->n_snaps, sizeof(*s->snaps), by_created);
	for (i = 0; i < s->n_snaps; i++)
		s->snaps[i]->pos = (uint32_t)i;
	scan(s, DIR_ORIGINS, load_origin);
	scan(s, DIR_CACHES, load_cache);
	*ret = s;
	return 0;
}

void psd_store_close(struct psd_store *s)
{
	size_t i;
	int d;

	if (!s)
		return;
	while (s->caches) {
		struct cache_rec *c = s->caches;

		s->caches = c->next;
		cache_rec_free(c);
	}
	for (i = 0; i < s->n_snaps; i++)
		snap_free(s->snaps[i]);
	free(s->snaps);
	free(s->table);
	free(s->keys);
	for (d = 0; d < NR_DIRS; d++)
		if (s->dfd[d] >= 0)
			close(s->dfd[d]);
	free(s);
}
