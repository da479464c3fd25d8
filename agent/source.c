// SPDX-License-Identifier: GPL-2.0
/* Candidate sources of a chunk: see source.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "source.h"

unsigned int psd_src_list(struct psd_store *store,
			  struct psd_origins *origins,
			  const struct psd_src_want *w,
			  struct psd_src ret[PSD_SRC_MAX])
{
	const struct psd_manifest *m = psd_store_manifest(w->sn);
	uint64_t off = w->chunk * m->geo.chunk_size, size;
	struct psd_store_copy copies[PSD_SRC_MAX - 3];
	unsigned int n = 0;
	size_t i, nc;
	int fd;

	if (w->target_dev &&
	    psd_store_in_place(store, w->target_dev, w->sn, w->chunk, w->hash))
		ret[n++] = (struct psd_src){ PSD_SRC_IN_PLACE, NULL, 0, off };
	nc = psd_store_find_copies(store, w->hash, m->geo.chunk_size, copies,
				   PSD_SRC_MAX - 3);
	for (i = 0; i < nc; i++) {
		struct psd_store_copy *c = &copies[i];

		if (c->kind == PSD_COPY_CACHE && w->target_dev &&
		    c->dev == w->target_dev && c->offset == off)
			continue;
		ret[n++] = (struct psd_src){
			c->kind == PSD_COPY_ORIGIN ? PSD_SRC_ORIGIN
						   : PSD_SRC_CACHE,
			c->path, c->dev, c->offset };
	}
	if (psd_origins_open(origins, m->id, &fd, &size) == 0)
		ret[n++] = (struct psd_src){ PSD_SRC_CONFIGURED, NULL, 0, off };
	if (w->peers)
		ret[n++] = (struct psd_src){ PSD_SRC_PEER, NULL, 0, 0 };
	return n;
}

bool psd_src_follows(const struct psd_src *a, const struct psd_src *b,
		     uint64_t step)
{
	if (a->kind != b->kind || a->kind == PSD_SRC_PEER || a->dev != b->dev ||
	    b->offset != a->offset + step)
		return false;
	return a->path == b->path ||
	       (a->path && b->path && !strcmp(a->path, b->path));
}

static uint32_t dev_encode(dev_t d)
{
	unsigned int ma = major(d), mi = minor(d);

	return (mi & 0xff) | (ma << 8) | ((mi & ~0xffu) << 12);
}

static int open_file(const char *path, int flags, int *ret_fd,
		     struct stat *st)
{
	int fd = open(path, flags | O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int psd_src_open(const struct psd_src *s, struct psd_origins *origins,
		 const uint8_t id[PSD_HASH_LEN], int target_fd, int *ret_fd,
		 bool *ret_owned, uint64_t *ret_size)
{
	struct stat st;
	int r;

	*ret_owned = false;
	*ret_size = UINT64_MAX;
	switch (s->kind) {
	case PSD_SRC_IN_PLACE:
		*ret_fd = target_fd;
		return 0;
	case PSD_SRC_CONFIGURED:
		return psd_origins_open(origins, id, ret_fd, ret_size);
	case PSD_SRC_PEER:
		return -EINVAL;
	case PSD_SRC_ORIGIN:
		r = open_file(s->path, 0, ret_fd, &st);
		if (r == 0 && !S_ISREG(st.st_mode)) {
			close(*ret_fd);
			r = -ESTALE;
		}
		if (r == 0)
			*ret_size = (uint64_t)st.st_size;
		break;
	default:
		r = open_file(s->path, O_DIRECT, ret_fd, &st);
		if (r == 0 && (!S_ISBLK(st.st_mode) ||
			       dev_encode(st.st_rdev) != s->dev)) {
			close(*ret_fd);
			r = -ESTALE;
		}
		break;
	}
	*ret_owned = r == 0;
	return r;
}
