// SPDX-License-Identifier: GPL-2.0
/* Serving chunks to peers from verified local copies: see serve.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkhash.h"
#include "manifest.h"
#include "serve.h"

#define COPIES_TRIED	8

_Static_assert(PSD_OBJECT_ID_LEN == PSD_HASH_LEN, "chunks are named by hash");

struct served {
	uint8_t hash[PSD_HASH_LEN];
	int fd;			/* -1: free */
	uint64_t offset, len;
	uint64_t store_gen;	/* the records it was found under */
	uint64_t used;		/* lookup count at the last hit */
};

struct psd_serve {
	struct psd_store *store;
	uint64_t lookups;
	struct served tab[PSD_SERVE_CACHED];
};

int psd_serve_new(struct psd_serve **ret, struct psd_store *store)
{
	struct psd_serve *s = calloc(1, sizeof(*s));
	size_t i;

	if (!s)
		return -ENOMEM;
	s->store = store;
	for (i = 0; i < PSD_SERVE_CACHED; i++)
		s->tab[i].fd = -1;
	*ret = s;
	return 0;
}

static void forget(struct served *e)
{
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
}

void psd_serve_free(struct psd_serve *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < PSD_SERVE_CACHED; i++)
		forget(&s->tab[i]);
	free(s);
}

/* The whole chunk at off hashes to hash. Devices are read past their page
 * cache, which the dm target's writes to them bypass. */
static bool holds(int fd, bool dev, uint64_t off, uint32_t cs,
		  const uint8_t hash[PSD_HASH_LEN])
{
	uint8_t *buf = malloc(cs);
	size_t got = 0;
	ssize_t n;
	bool ok = false;

	if (!buf)
		return false;
	if (dev)
		posix_fadvise(fd, (off_t)off, cs, POSIX_FADV_DONTNEED);
	while (got < cs) {
		n = pread(fd, buf + got, cs - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == cs)
		ok = psd_chunkhash_verify(buf, cs, hash) == 0;
	free(buf);
	return ok;
}

/* An fd on copy c that holds the chunk, or -1. */
static int open_verified(const struct psd_store_copy *c, uint32_t cs,
			 const uint8_t hash[PSD_HASH_LEN])
{
	bool dev = c->kind == PSD_COPY_CACHE;
	int fd = open(c->path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (dev ? !S_ISBLK(st.st_mode)
				       : !S_ISREG(st.st_mode)) ||
	    !holds(fd, dev, c->offset, cs, hash)) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct served *cached(struct psd_serve *s, const uint8_t *hash,
			     uint64_t gen)
{
	size_t i;

	for (i = 0; i < PSD_SERVE_CACHED; i++) {
		struct served *e = &s->tab[i];

		if (e->fd >= 0 && e->store_gen == gen &&
		    !memcmp(e->hash, hash, PSD_HASH_LEN))
			return e;
	}
	return NULL;
}

/* A free entry, else the one of the oldest records, else the least used. */
static struct served *victim(struct psd_serve *s, uint64_t gen)
{
	struct served *v = &s->tab[0];
	size_t i;

	for (i = 0; i < PSD_SERVE_CACHED; i++) {
		struct served *e = &s->tab[i];

		if (e->fd < 0 || e->store_gen != gen)
			return e;
		if (e->used < v->used)
			v = e;
	}
	return v;
}

/* Finds and verifies a copy of hash at chunk size cs; fills e. */
static bool find(struct psd_serve *s, const uint8_t *hash, uint32_t cs,
		 struct served *e)
{
	struct psd_store_copy copies[COPIES_TRIED];
	size_t n = psd_store_find_copies(s->store, hash, cs, copies,
					 COPIES_TRIED), i;

	for (i = 0; i < n; i++) {
		int fd = open_verified(&copies[i], cs, hash);

		if (fd < 0)
			continue;
		forget(e);
		e->fd = fd;
		e->offset = copies[i].offset;
		e->len = cs;
		return true;
	}
	return false;
}

int psd_serve_lookup(void *ctx, const uint8_t hash[PSD_OBJECT_ID_LEN],
		     struct psd_swarm_extent *ret)
{
	struct psd_serve *s = ctx;
	uint64_t gen = psd_store_generation(s->store);
	struct served *e = cached(s, hash, gen);
	uint32_t cs;

	s->lookups++;
	if (!e) {
		e = victim(s, gen);
		for (cs = PSD_CHUNK_SIZE_MIN; cs <= PSD_CHUNK_SIZE_MAX; cs <<= 1)
			if (find(s, hash, cs, e))
				break;
		if (cs > PSD_CHUNK_SIZE_MAX)
			return -ENOENT;
		memcpy(e->hash, hash, PSD_HASH_LEN);
		e->store_gen = gen;
	}
	e->used = s->lookups;
	*ret = (struct psd_swarm_extent){ e->fd, e->offset, e->len };
	return 0;
}
