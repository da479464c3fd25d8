// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket's ADD_* session (docs/control.md): ADD_BEGIN opens
 * an add of a signed manifest with its source (an origin file or a cache
 * device), ADD_INDEX and ADD_PRESENT fill it, ADD_COMMIT stores the
 * snapshot and records its source, ADD_ABORT (or the client leaving)
 * drops it. At most PSD_CTL_MAX_ADDS adds are open daemon-wide, one per
 * client.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "control_internal.h"
#include "log.h"
#include "origin.h"

/* An ADD_BEGIN .. ADD_COMMIT in progress. */
struct add_state {
	struct psd_store_add *add;
	uint8_t id[PSD_HASH_LEN];
	uint8_t kind;			/* enum psd_ctl_source */
	char *path;
	uint64_t chunk_count;
	uint8_t *present;		/* NULL until the first ADD_PRESENT */
	size_t present_len;		/* ceil(chunk_count / 8) */
};

static void add_state_free(struct add_state *a)
{
	psd_store_add_abort(a->add);
	free(a->path);
	free(a->present);
	free(a);
}

void control_add_end(struct psd_control *c, struct client *cl)
{
	if (!cl->add)
		return;
	add_state_free(cl->add);
	cl->add = NULL;
	c->adds--;
}

static int check_source(uint8_t kind, const char *path,
			const struct psd_manifest *mf, struct reply_err *e)
{
	struct stat st;

	if (kind != PSD_CTL_SOURCE_ORIGIN && kind != PSD_CTL_SOURCE_CACHE)
		return say(e, -EINVAL, "unknown source kind %u", kind);
	if (path[0] != '/')
		return say(e, -EINVAL, "source '%s': not an absolute path", path);
	if (stat(path, &st) < 0)
		return say(e, -errno, "source '%s': %s", path, strerror(errno));
	if (kind == PSD_CTL_SOURCE_CACHE && !S_ISBLK(st.st_mode))
		return say(e, -ENOTBLK, "source '%s': not a block device", path);
	if (kind == PSD_CTL_SOURCE_ORIGIN && !S_ISREG(st.st_mode))
		return say(e, -EMEDIUMTYPE, "origin '%s': not a regular file",
			   path);
	if (kind == PSD_CTL_SOURCE_ORIGIN &&
	    (uint64_t)st.st_size != mf->geo.size)
		return say(e, -EMEDIUMTYPE,
			   "origin '%s': %lld bytes, the manifest says %llu",
			   path, (long long)st.st_size,
			   (unsigned long long)mf->geo.size);
	return 0;
}

static int mf_error(struct reply_err *e, int r, const struct psd_mf_err *mfe,
		    const char *what)
{
	if (mfe->msg[0])
		return say(e, r, "%s: %s", what, mfe->msg);
	return say(e, r, "%s: %s", what, strerror(-r));
}

int control_add_begin(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t len;
	const uint8_t *raw = psd_ctl_bytes(&m->at, PSD_CTL_A_MANIFEST, &len);
	const char *path = psd_ctl_str(&m->at, PSD_CTL_A_PATH);
	uint8_t kind = psd_ctl_u8(&m->at, PSD_CTL_A_SOURCE_KIND);
	struct psd_mf_err mfe = { 0 };
	const struct psd_manifest *mf;
	struct add_state *a;
	int r;

	if (cl->add)
		return say(e, -EBUSY, "an add is already open on this connection");
	if (c->adds >= PSD_CTL_MAX_ADDS)
		return say(e, -EBUSY, "%u adds in progress: try again later",
			   c->adds);
	a = calloc(1, sizeof(*a));
	if (!a)
		return say(e, -ENOMEM, "out of memory");
	r = psd_store_add_begin(c->store, raw, len, &a->add, &mfe);
	if (r < 0) {
		free(a);
		return mf_error(e, r, &mfe, "manifest refused");
	}
	mf = psd_store_add_manifest(a->add);
	r = check_source(kind, path, mf, e);
	if (r == 0 && kind == PSD_CTL_SOURCE_CACHE &&
	    (mf->geo.chunk_count + 7) / 8 > PSD_CTL_PRESENT_MAX)
		r = say(e, -EFBIG, "%llu chunks: a present bitmap of more than %u bytes",
			(unsigned long long)mf->geo.chunk_count,
			PSD_CTL_PRESENT_MAX);
	a->path = strdup(path);
	if (r == 0 && !a->path)
		r = say(e, -ENOMEM, "out of memory");
	if (r < 0) {
		add_state_free(a);
		return r;
	}
	memcpy(a->id, mf->id, PSD_HASH_LEN);
	a->kind = kind;
	a->chunk_count = mf->geo.chunk_count;
	a->present_len = (size_t)((a->chunk_count + 7) / 8);
	cl->add = a;
	c->adds++;
	begin_reply(cl, m);
	psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_ID, a->id, PSD_HASH_LEN);
	psd_ctl_put_u32(&cl->tx, PSD_CTL_A_INDEX_COUNT, mf->geo.index_count);
	return 0;
}

static int need_add(struct client *cl, const struct psd_ctl_msg *m,
		    struct reply_err *e)
{
	if (cl->add)
		return 0;
	return say(e, -ENOENT, "%s without ADD_BEGIN",
		   psd_ctl_type_name(m->type));
}

int control_add_index(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t k = psd_ctl_u32(&m->at, PSD_CTL_A_INDEX), len;
	const uint8_t *data = psd_ctl_bytes(&m->at, PSD_CTL_A_INDEX_DATA, &len);
	struct psd_mf_err mfe = { 0 };
	char what[48];
	int r;

	(void)c;
	r = need_add(cl, m, e);
	if (r < 0)
		return r;
	r = psd_store_add_index(cl->add->add, k, data, len, &mfe);
	if (r < 0) {
		snprintf(what, sizeof(what), "index chunk %u", k);
		return mf_error(e, r, &mfe, what);
	}
	begin_reply(cl, m);
	return 0;
}

int control_add_present(struct psd_control *c, struct client *cl,
			const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint64_t first = psd_ctl_u64(&m->at, PSD_CTL_A_FIRST_CHUNK);
	uint32_t len;
	const uint8_t *bits = psd_ctl_bytes(&m->at, PSD_CTL_A_BITMAP, &len);
	struct add_state *a;
	uint64_t at;
	int r;

	(void)c;
	r = need_add(cl, m, e);
	if (r < 0)
		return r;
	a = cl->add;
	if (a->kind != PSD_CTL_SOURCE_CACHE)
		return say(e, -EINVAL, "ADD_PRESENT for an origin source");
	if (first % 8)
		return say(e, -EINVAL, "first chunk %llu is not a multiple of 8",
			   (unsigned long long)first);
	at = first / 8;
	if (at > a->present_len || len > a->present_len - at)
		return say(e, -ERANGE, "chunks %llu..%llu past the snapshot's %llu",
			   (unsigned long long)first,
			   (unsigned long long)(first + 8ull * len),
			   (unsigned long long)a->chunk_count);
	if (len && at + len == a->present_len && a->chunk_count % 8 &&
	    (bits[len - 1] >> (a->chunk_count % 8)))
		return say(e, -EINVAL, "bits set past the last chunk %llu",
			   (unsigned long long)(a->chunk_count - 1));
	if (!a->present) {
		a->present = calloc(1, a->present_len ? a->present_len : 1);
		if (!a->present)
			return say(e, -ENOMEM, "out of memory for %zu bytes of bitmap",
				   a->present_len);
	}
	for (uint32_t i = 0; i < len; i++)
		a->present[at + i] |= bits[i];
	begin_reply(cl, m);
	return 0;
}

/* The snapshot is stored: record where its chunks are. */
static int record_source(struct psd_control *c, struct add_state *a,
			 struct reply_err *e)
{
	char err[256] = "";
	int r;

	if (a->kind == PSD_CTL_SOURCE_ORIGIN) {
		r = psd_store_set_origin(c->store, a->id, a->path, err,
					 sizeof(err));
	} else {
		/* No ADD_PRESENT at all: no chunk is recorded present. */
		if (!a->present)
			a->present = calloc(1, a->present_len);
		if (!a->present)
			return say(e, -ENOMEM, "out of memory");
		r = psd_store_set_cache(c->store, a->id, a->path, NULL,
					a->present, a->present_len, err,
					sizeof(err));
	}
	if (r < 0)
		return say(e, r, "snapshot stored, but its source was not recorded: %s",
			   err[0] ? err : strerror(-r));
	return 0;
}

int control_add_commit(struct psd_control *c, struct client *cl,
		       const struct psd_ctl_msg *m, struct reply_err *e)
{
	struct psd_mf_err mfe = { 0 };
	struct add_state *a;
	bool existed = false;
	int r;

	r = need_add(cl, m, e);
	if (r < 0)
		return r;
	a = cl->add;
	/* Commit frees the store's add whatever happens. */
	r = psd_store_add_commit(a->add, NULL, &existed, &mfe);
	a->add = NULL;
	if (r < 0) {
		mf_error(e, r, &mfe, "add not committed");
	} else {
		r = record_source(c, a, e);
		if (r == 0) {
			char hex[PSD_SNAPSHOT_HEX_LEN + 1];

			psd_hex_id_format(a->id, hex);
			psd_info("control: snapshot %s %s, %s %s", hex,
				 existed ? "already stored" : "stored",
				 a->kind == PSD_CTL_SOURCE_ORIGIN ?
				 "origin" : "cache device", a->path);
		}
	}
	if (r == 0) {
		begin_reply(cl, m);
		psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_ID, a->id, PSD_HASH_LEN);
	}
	control_add_end(c, cl);
	return r;
}

int control_add_abort(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e)
{
	int r = need_add(cl, m, e);

	if (r < 0)
		return r;
	control_add_end(c, cl);
	begin_reply(cl, m);
	return 0;
}
