// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket's request handlers (docs/control.md), one per
 * message type, over the store and the fetch engine: HELLO, STATUS,
 * LIST, GET_MANIFEST, GET_INDEX, ATTACHED / DETACHED, READ, PEERS; the
 * ADD_* session is control_add.c. A handler checks what the request
 * names against the store before using it and says why it refuses; the
 * framing, the limits and the sending are control.c's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control_internal.h"
#include "origin.h"

static int find_snapshot(struct psd_control *c, const struct psd_ctl_msg *m,
			 const struct psd_store_snapshot **ret,
			 struct reply_err *e)
{
	const uint8_t *id = psd_ctl_bytes(&m->at, PSD_CTL_A_ID, NULL);
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];

	*ret = psd_store_get(c->store, id);
	if (*ret)
		return 0;
	psd_hex_id_format(id, hex);
	return say(e, -ENOENT, "no snapshot %s in the store", hex);
}

static int h_hello(struct psd_control *c, struct client *cl,
		   const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t v = psd_ctl_u32(&m->at, PSD_CTL_A_VERSION);

	if (v != PSD_CTL_VERSION) {
		cl->close_after = true;
		return say(e, -EPROTONOSUPPORT,
			   "protocol version %u not supported (daemon speaks %u)",
			   v, PSD_CTL_VERSION);
	}
	cl->hello = true;
	begin_reply(cl, m);
	psd_ctl_put_u32(&cl->tx, PSD_CTL_A_VERSION, PSD_CTL_VERSION);
	psd_ctl_put_str(&cl->tx, PSD_CTL_A_DAEMON_VERSION, c->version);
	return 0;
}

static void put_counter(struct psd_ctl_buf *b, const char *name, uint64_t v)
{
	psd_ctl_nest_begin(b, PSD_CTL_A_COUNTER);
	psd_ctl_put_str(b, PSD_CTL_A_NAME, name);
	psd_ctl_put_u64(b, PSD_CTL_A_VALUE, v);
	psd_ctl_nest_end(b);
}

/* A u64 field of a stats struct, by name (docs/control.md, STATUS). */
struct counter_field {
	const char *name;
	size_t off;
};

#define FIELD(prefix, type, f) { prefix #f, offsetof(struct type, f) }
static const struct counter_field fetch_fields[] = {
	FIELD("fetch.", psd_fetch_stats, received),
	FIELD("fetch.", psd_fetch_stats, duplicates),
	FIELD("fetch.", psd_fetch_stats, dropped),
	FIELD("fetch.", psd_fetch_stats, ignored),
	FIELD("fetch.", psd_fetch_stats, succeeded),
	FIELD("fetch.", psd_fetch_stats, failed),
	FIELD("fetch.", psd_fetch_stats, legacy),
	FIELD("fetch.", psd_fetch_stats, chunks_zero),
	FIELD("fetch.", psd_fetch_stats, chunks_in_place),
	FIELD("fetch.", psd_fetch_stats, chunks_origin),
	FIELD("fetch.", psd_fetch_stats, chunks_cache),
	FIELD("fetch.", psd_fetch_stats, hash_mismatch),
	FIELD("fetch.", psd_fetch_stats, in_place_stale),
	FIELD("fetch.", psd_fetch_stats, source_errors),
	FIELD("fetch.", psd_fetch_stats, no_source),
	FIELD("fetch.", psd_fetch_stats, chunks_peer),
	FIELD("fetch.", psd_fetch_stats, peer_errors),
	FIELD("fetch.", psd_fetch_stats, reads),
	FIELD("fetch.", psd_fetch_stats, reads_failed),
};

static const struct counter_field store_fields[] = {
	FIELD("store.", psd_store_stats, snapshots),
	FIELD("store.", psd_store_stats, origins),
	FIELD("store.", psd_store_stats, cache_records),
	FIELD("store.", psd_store_stats, index_chunks_stored),
	FIELD("store.", psd_store_stats, index_reads),
	FIELD("store.", psd_store_stats, index_bad),
	FIELD("store.", psd_store_stats, skipped),
	FIELD("store.", psd_store_stats, temp_removed),
	FIELD("store.", psd_store_stats, table_entries),
};

static const struct counter_field control_fields[] = {
	FIELD("control.", psd_control_stats, clients),
	FIELD("control.", psd_control_stats, accepted),
	FIELD("control.", psd_control_stats, requests),
	FIELD("control.", psd_control_stats, errors),
	FIELD("control.", psd_control_stats, malformed),
	FIELD("control.", psd_control_stats, refused),
	FIELD("control.", psd_control_stats, busy),
	FIELD("control.", psd_control_stats, dropped),
};
#undef FIELD

static void put_counters(struct psd_ctl_buf *b, const void *stats,
			 const struct counter_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v;

		memcpy(&v, (const uint8_t *)stats + f[i].off, sizeof(v));
		put_counter(b, f[i].name, v);
	}
}

#define PUT_COUNTERS(b, stats, fields) \
	put_counters(b, stats, fields, sizeof(fields) / sizeof(fields[0]))

static int h_status(struct psd_control *c, struct client *cl,
		    const struct psd_ctl_msg *m, struct reply_err *e)
{
	struct timespec now;

	(void)e;
	clock_gettime(CLOCK_MONOTONIC, &now);
	begin_reply(cl, m);
	psd_ctl_put_u64(&cl->tx, PSD_CTL_A_UPTIME,
			(uint64_t)(now.tv_sec - c->started.tv_sec));
	if (c->fetch) {
		PUT_COUNTERS(&cl->tx, psd_fetch_get_stats(c->fetch),
			     fetch_fields);
		put_counter(&cl->tx, "fetch.inflight",
			    psd_fetch_inflight(c->fetch));
		put_counter(&cl->tx, "fetch.queued", psd_fetch_queued(c->fetch));
	}
	PUT_COUNTERS(&cl->tx, psd_store_get_stats(c->store), store_fields);
	PUT_COUNTERS(&cl->tx, &c->stats, control_fields);
	return 0;
}

static int by_id(const void *a, const void *b)
{
	const struct psd_store_snapshot *const *x = a, *const *y = b;

	return memcmp(psd_store_manifest(*x)->id, psd_store_manifest(*y)->id,
		      PSD_HASH_LEN);
}

static void put_snapshot(struct psd_ctl_buf *b,
			 const struct psd_store_snapshot *sn)
{
	const struct psd_manifest *mf = psd_store_manifest(sn);

	psd_ctl_nest_begin(b, PSD_CTL_A_SNAPSHOT);
	psd_ctl_put_bytes(b, PSD_CTL_A_ID, mf->id, PSD_HASH_LEN);
	psd_ctl_put_str(b, PSD_CTL_A_NAME, mf->name);
	psd_ctl_put_u64(b, PSD_CTL_A_SIZE, mf->geo.size);
	psd_ctl_put_u32(b, PSD_CTL_A_CHUNK_SIZE, mf->geo.chunk_size);
	psd_ctl_put_u64(b, PSD_CTL_A_CHUNK_COUNT, mf->geo.chunk_count);
	psd_ctl_put_u64(b, PSD_CTL_A_CREATED, mf->created);
	if (mf->has_parent)
		psd_ctl_put_bytes(b, PSD_CTL_A_PARENT, mf->parent,
				  PSD_HASH_LEN);
	psd_ctl_put_bytes(b, PSD_CTL_A_PUBLISHER, mf->publisher,
			  PSD_PUBKEY_LEN);
	psd_ctl_put_u8(b, PSD_CTL_A_HAS_ORIGIN, psd_store_origin(sn) != NULL);
	psd_ctl_nest_end(b);
}

/* Sorted by id, resuming after AFTER, PSD_CTL_LIST_MAX at a time. */
static int h_list(struct psd_control *c, struct client *cl,
		  const struct psd_ctl_msg *m, struct reply_err *e)
{
	const uint8_t *after = psd_ctl_bytes(&m->at, PSD_CTL_A_AFTER, NULL);
	size_t n = psd_store_count(c->store), i, sent = 0;
	const struct psd_store_snapshot **v;

	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return say(e, -ENOMEM, "out of memory listing %zu snapshots", n);
	for (i = 0; i < n; i++)
		v[i] = psd_store_nth(c->store, i);
	qsort(v, n, sizeof(*v), by_id);
	begin_reply(cl, m);
	for (i = 0; i < n; i++) {
		if (after && memcmp(psd_store_manifest(v[i])->id, after,
				    PSD_HASH_LEN) <= 0)
			continue;
		if (sent == PSD_CTL_LIST_MAX) {
			psd_ctl_put_u8(&cl->tx, PSD_CTL_A_MORE, 1);
			break;
		}
		put_snapshot(&cl->tx, v[i]);
		sent++;
	}
	free(v);
	return 0;
}

static int h_get_manifest(struct psd_control *c, struct client *cl,
			  const struct psd_ctl_msg *m, struct reply_err *e)
{
	const char *prefix = psd_ctl_str(&m->at, PSD_CTL_A_ID_PREFIX);
	const struct psd_store_snapshot *sn;
	const struct psd_manifest *mf;
	int r;

	if (psd_ctl_has(&m->at, PSD_CTL_A_ID) == !!prefix)
		return say(e, -EINVAL, "GET_MANIFEST needs exactly one of ID and ID_PREFIX");
	if (prefix) {
		r = psd_store_lookup(c->store, prefix, strlen(prefix), &sn);
		if (r == -ENOENT)
			return say(e, r, "no snapshot matches '%s'", prefix);
		if (r == -ENOTUNIQ)
			return say(e, r, "'%s' matches more than one snapshot",
				   prefix);
		if (r < 0)
			return say(e, r, "'%s' is not a snapshot id or prefix (%u..64 hex digits)",
				   prefix, PSD_CTL_ID_PREFIX_MIN);
	} else {
		r = find_snapshot(c, m, &sn, e);
		if (r < 0)
			return r;
	}
	mf = psd_store_manifest(sn);
	begin_reply(cl, m);
	psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_ID, mf->id, PSD_HASH_LEN);
	psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_MANIFEST, mf->raw, mf->raw_len);
	return 0;
}

static int h_get_index(struct psd_control *c, struct client *cl,
		       const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t k = psd_ctl_u32(&m->at, PSD_CTL_A_INDEX);
	const struct psd_store_snapshot *sn;
	size_t len, got;
	void *buf;
	int r;

	r = find_snapshot(c, m, &sn, e);
	if (r < 0)
		return r;
	len = psd_geometry_index_len(&psd_store_manifest(sn)->geo, k);
	if (!len)
		return say(e, -ERANGE, "index chunk %u: the snapshot has %u",
			   k, psd_store_manifest(sn)->geo.index_count);
	begin_reply(cl, m);
	buf = psd_ctl_put_reserve(&cl->tx, PSD_CTL_A_INDEX_DATA, len);
	if (!buf)
		return say(e, -ENOMEM, "out of memory for index chunk %u", k);
	r = psd_store_index_read(c->store, sn, k, buf, len, &got);
	if (r < 0)
		return say(e, r, "index chunk %u: %s", k, strerror(-r));
	if (got != len)
		return say(e, -EIO, "index chunk %u: %zu bytes, expected %zu",
			   k, got, len);
	return 0;
}

/* ---- attachments, reads, peers ----------------------------------------- */

static int h_attached(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e)
{
	const char *path = psd_ctl_str(&m->at, PSD_CTL_A_PATH);
	const char *dm = psd_ctl_str(&m->at, PSD_CTL_A_DM_NAME);
	const struct psd_store_snapshot *sn;
	char err[256] = "";
	int r;

	r = find_snapshot(c, m, &sn, e);
	if (r < 0)
		return r;
	r = psd_store_set_cache(c->store, psd_store_manifest(sn)->id, path, dm,
				NULL, 0, err, sizeof(err));
	if (r < 0)
		return say(e, r, "%s", err[0] ? err : strerror(-r));
	begin_reply(cl, m);
	return 0;
}

static int h_detached(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e)
{
	const char *dm = psd_ctl_str(&m->at, PSD_CTL_A_DM_NAME);
	int r = psd_store_cache_detached(c->store, dm);

	if (r == -ENOENT)
		return say(e, r, "no attached device named '%s'", dm);
	if (r < 0)
		return say(e, r, "detaching '%s': %s", dm, strerror(-r));
	begin_reply(cl, m);
	return 0;
}

/* A READ that failed, in the fetch engine or before it began: which
 * chunks, and why. */
static int read_failed(struct reply_err *e, int err, uint64_t first,
		       uint32_t count)
{
	const char *why = err == -EIO ?
		"no source whose data matches the manifest's hash" :
		strerror(-err);

	return say(e, err, "chunks %llu..%llu: %s", (unsigned long long)first,
		   (unsigned long long)(first + count - 1), why);
}

/* The store's read finished: the reply waits in cl->tx, DATA last. */
static void on_read_done(void *ctx, int status)
{
	struct client *cl = ctx;
	struct psd_control *c = cl->owner;
	struct reply_err e = { 0 };

	cl->reading = false;
	if (status == 0) {
		psd_ctl_shrink_last(&cl->tx, cl->read_len);
		status = psd_ctl_finish(&cl->tx);
		if (status == 0) {
			control_send_reply(c, cl);
			return;
		}
	}
	read_failed(&e, status, cl->read_first, cl->read_count);
	control_send_error(c, cl, cl->read_seq, &e);
}

/*
 * Verified chunk data, straight into the reply frame: the store's read
 * fills count whole chunks; DATA is then cut at the image's end.
 * Returns 1: answered later, by on_read_done().
 */
static int h_read(struct psd_control *c, struct client *cl,
		  const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint64_t first = psd_ctl_u64(&m->at, PSD_CTL_A_FIRST_CHUNK);
	uint32_t count = psd_ctl_u32(&m->at, PSD_CTL_A_COUNT);
	const struct psd_store_snapshot *sn;
	const struct psd_geometry *g;
	uint64_t bytes, end;
	void *buf;
	int r;

	r = find_snapshot(c, m, &sn, e);
	if (r < 0)
		return r;
	g = &psd_store_manifest(sn)->geo;
	bytes = (uint64_t)count * g->chunk_size;
	if (!count || bytes > PSD_CTL_READ_MAX)
		return say(e, -EINVAL, "READ of %u chunks of %u bytes: 1..%u bytes at a time",
			   count, g->chunk_size, PSD_CTL_READ_MAX);
	if (first >= g->chunk_count || count > g->chunk_count - first)
		return say(e, -ERANGE, "chunks %llu..%llu: the snapshot has %llu",
			   (unsigned long long)first,
			   (unsigned long long)(first + count - 1),
			   (unsigned long long)g->chunk_count);
	if (!c->fetch)
		return say(e, -EOPNOTSUPP, "no fetch engine to read with");
	begin_reply(cl, m);
	psd_ctl_put_u64(&cl->tx, PSD_CTL_A_FIRST_CHUNK, first);
	psd_ctl_put_u32(&cl->tx, PSD_CTL_A_COUNT, count);
	buf = psd_ctl_put_reserve(&cl->tx, PSD_CTL_A_DATA, bytes);
	if (!buf)
		return say(e, -ENOMEM, "out of memory for %llu bytes",
			   (unsigned long long)bytes);
	end = first * g->chunk_size + bytes;
	cl->read_len = (size_t)(end > g->size ? bytes - (end - g->size) : bytes);
	cl->read_first = first;
	cl->read_count = count;
	cl->read_seq = m->seq;
	r = psd_fetch_read(c->fetch, psd_store_manifest(sn)->id, first, count,
			   buf, bytes, on_read_done, cl, &cl->read_id);
	if (r < 0)
		return read_failed(e, r, first, count);
	cl->reading = true;
	return 1;
}

static int h_peers(struct psd_control *c, struct client *cl,
		   const struct psd_ctl_msg *m, struct reply_err *e)
{
	(void)c;
	(void)e;
	begin_reply(cl, m);	/* no peers until issue 6 */
	return 0;
}

static const control_handler_fn handlers[__PSD_CTL_TYPE_MAX] = {
	[PSD_CTL_HELLO] = h_hello,
	[PSD_CTL_STATUS] = h_status,
	[PSD_CTL_LIST] = h_list,
	[PSD_CTL_GET_MANIFEST] = h_get_manifest,
	[PSD_CTL_GET_INDEX] = h_get_index,
	[PSD_CTL_ADD_BEGIN] = control_add_begin,
	[PSD_CTL_ADD_INDEX] = control_add_index,
	[PSD_CTL_ADD_PRESENT] = control_add_present,
	[PSD_CTL_ADD_COMMIT] = control_add_commit,
	[PSD_CTL_ADD_ABORT] = control_add_abort,
	[PSD_CTL_ATTACHED] = h_attached,
	[PSD_CTL_DETACHED] = h_detached,
	[PSD_CTL_READ] = h_read,
	[PSD_CTL_PEERS] = h_peers,
};

int control_request(struct psd_control *c, struct client *cl,
		    const struct psd_ctl_msg *m, struct reply_err *e)
{
	control_handler_fn h = handlers[m->type];

	/* A type the codec knows and this server does not (yet). */
	if (!h)
		return say(e, -EOPNOTSUPP, "%s is not served",
			   psd_ctl_type_name(m->type));
	return h(c, cl, m, e);
}
