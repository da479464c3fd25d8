// SPDX-License-Identifier: GPL-2.0
/* Cache devices by dev_t: see cache.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cache.h"
#include "log.h"

#define CACHE_OPEN_FLAGS	(O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC)
#define DEVNAME_MAX		128

struct cache_dev {
	uint32_t dev;
	int fd;
	unsigned int refs;
};

struct psd_cache {
	char *state_dir;
	struct cache_dev *v;	/* open devices; at most one per fetch */
	size_t n, cap;
};

void psd_dev_decode(uint32_t dev, unsigned int *ret_major,
		    unsigned int *ret_minor)
{
	*ret_major = (dev & 0xfff00) >> 8;
	*ret_minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
}

static bool devname_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '/')
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.' || c == '/' || c == ':' || c == '!'))
			return false;
		if (c == '.' && i + 1 < len && s[i + 1] == '.')
			return false;
	}
	return true;
}

int psd_uevent_devname(const char *buf, size_t len, char *ret, size_t cap)
{
	static const char key[] = "DEVNAME=";
	const size_t klen = sizeof(key) - 1;
	size_t pos = 0;

	while (pos < len) {
		const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;

		pos += n + 1;
		if (n < klen || memcmp(s, key, klen))
			continue;
		s += klen;
		n -= klen;
		if (!devname_ok(s, n) || n >= cap)
			return -EINVAL;
		memcpy(ret, s, n);
		ret[n] = '\0';
		return 0;
	}
	return -ENOENT;
}

int psd_cache_init(struct psd_cache **ret, const char *state_dir)
{
	struct psd_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->state_dir = strdup(state_dir);
	if (!c->state_dir) {
		free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void psd_cache_uninit(struct psd_cache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		close(c->v[i].fd);
	free(c->v);
	free(c->state_dir);
	free(c);
}

size_t psd_cache_open_count(const struct psd_cache *c)
{
	return c->n;
}

/* Only the node we asked for: a renamed or replaced node is refused. */
static int open_checked(const char *path, dev_t want, int *ret_fd)
{
	struct stat st;
	int fd;

	fd = open(path, CACHE_OPEN_FLAGS);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != want) {
		close(fd);
		return -ENODEV;
	}
	*ret_fd = fd;
	return 0;
}

/*
 * -ENODEV: sysfs has no such device. -ENOENT: sysfs is not mounted, or
 * /dev lacks the node (no devtmpfs): the caller may make its own node.
 */
static int open_via_sysfs(unsigned int maj, unsigned int min, int *ret_fd)
{
	char path[64], buf[1024], name[DEVNAME_MAX], dev[DEVNAME_MAX + 8];
	ssize_t n;
	int fd, r;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/uevent", maj, min);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return access("/sys/dev/block", F_OK) == 0 ? -ENODEV : -ENOENT;
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	r = psd_uevent_devname(buf, (size_t)n, name, sizeof(name));
	if (r < 0)
		return r == -ENOENT ? -ENODEV : r;
	snprintf(dev, sizeof(dev), "/dev/%s", name);
	return open_checked(dev, makedev(maj, min), ret_fd);
}

/* A node of our own: works where /dev lacks it (no udev, no devtmpfs). */
static int open_via_mknod(const char *state_dir, unsigned int maj,
			  unsigned int min, int *ret_fd)
{
	char dir[4096], path[4160];
	int r;

	snprintf(dir, sizeof(dir), "%s/dev", state_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/blk-%u-%u.%ld", dir, maj, min,
		 (long)getpid());
	unlink(path);
	if (mknod(path, S_IFBLK | 0600, makedev(maj, min)) < 0)
		return -errno;
	r = open_checked(path, makedev(maj, min), ret_fd);
	unlink(path);
	return r;
}

static int cache_open(struct psd_cache *c, uint32_t dev, int *ret_fd)
{
	unsigned int maj, min;
	int r;

	psd_dev_decode(dev, &maj, &min);
	if (maj == 0)
		return -ENODEV;
	/*
	 * Only where sysfs or /dev cannot say: a node of our own for a dev_t
	 * that does not exist could make a driver create it (loop does).
	 */
	r = open_via_sysfs(maj, min, ret_fd);
	if (r != -ENOENT)
		return r;
	psd_dbg("cache %u:%u: no sysfs entry or /dev node, trying mknod",
		maj, min);
	return open_via_mknod(c->state_dir, maj, min, ret_fd);
}

static struct cache_dev *cache_find(struct psd_cache *c, uint32_t dev)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (c->v[i].dev == dev)
			return &c->v[i];
	return NULL;
}

static int cache_reserve(struct psd_cache *c)
{
	struct cache_dev *v;
	size_t cap;

	if (c->n < c->cap)
		return 0;
	cap = c->cap ? 2 * c->cap : 8;
	v = realloc(c->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->v = v;
	c->cap = cap;
	return 0;
}

int psd_cache_get(struct psd_cache *c, uint32_t dev, int *ret_fd)
{
	struct cache_dev *e = cache_find(c, dev);
	int fd, r;

	if (e) {
		e->refs++;
		*ret_fd = e->fd;
		return 0;
	}
	r = cache_reserve(c);
	if (r < 0)
		return r;
	r = cache_open(c, dev, &fd);
	if (r < 0)
		return r;
	c->v[c->n++] = (struct cache_dev){ .dev = dev, .fd = fd, .refs = 1 };
	*ret_fd = fd;
	return 0;
}

void psd_cache_put(struct psd_cache *c, uint32_t dev)
{
	struct cache_dev *e = cache_find(c, dev);

	if (!e || --e->refs)
		return;
	close(e->fd);
	*e = c->v[--c->n];
}
