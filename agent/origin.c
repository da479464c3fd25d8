// SPDX-License-Identifier: GPL-2.0
/* Origin backend: see origin.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "origin.h"

struct psd_origin {
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
	char *path;
	int fd;			/* -1 until first use */
	uint64_t size;
};

struct psd_origins {
	struct psd_origin *v;
	size_t n;
};

int psd_hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int psd_hex_id_parse(const char *s, size_t len,
		     uint8_t ret_id[PEERSNAP_SNAPSHOT_ID_LEN])
{
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
	size_t i;

	if (len != PSD_SNAPSHOT_HEX_LEN)
		return -EINVAL;
	for (i = 0; i < PEERSNAP_SNAPSHOT_ID_LEN; i++) {
		int hi = psd_hex_nibble(s[2 * i]);
		int lo = psd_hex_nibble(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret_id, id, sizeof(id));
	return 0;
}

void psd_hex_id_format(const uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN],
		       char out[PSD_SNAPSHOT_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < PEERSNAP_SNAPSHOT_ID_LEN; i++) {
		out[2 * i] = digits[id[i] >> 4];
		out[2 * i + 1] = digits[id[i] & 0xf];
	}
	out[PSD_SNAPSHOT_HEX_LEN] = '\0';
}

size_t psd_hex_span(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (psd_hex_nibble(s[i]) < 0)
			break;
	return i;
}

int psd_origin_arg_parse(const char *arg,
			 uint8_t ret_id[PEERSNAP_SNAPSHOT_ID_LEN],
			 const char **ret_path, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	size_t idlen, bad;

	if (!eq) {
		snprintf(err, errlen,
			 "--origin '%s': expected <64-hex snapshot id>=<image file> (no '=')",
			 arg);
		return -EINVAL;
	}
	idlen = (size_t)(eq - arg);
	bad = psd_hex_span(arg, idlen);
	if (bad < idlen) {
		snprintf(err, errlen,
			 "--origin '%s': snapshot id has a non-hex character '%c' at position %zu",
			 arg, arg[bad], bad + 1);
		return -EINVAL;
	}
	if (idlen != PSD_SNAPSHOT_HEX_LEN) {
		snprintf(err, errlen,
			 "--origin '%s': snapshot id must be %d hex characters, got %zu",
			 arg, PSD_SNAPSHOT_HEX_LEN, idlen);
		return -EINVAL;
	}
	if (eq[1] == '\0') {
		snprintf(err, errlen, "--origin '%s': empty image file name",
			 arg);
		return -EINVAL;
	}
	psd_hex_id_parse(arg, idlen, ret_id);
	*ret_path = eq + 1;
	return 0;
}

int psd_origins_init(struct psd_origins **ret,
		     const struct psd_origin_entry *entries, size_t n)
{
	struct psd_origins *o;
	size_t i;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->v = calloc(n ? n : 1, sizeof(*o->v));
	if (!o->v)
		goto err_free_origins;
	for (i = 0; i < n; i++, o->n++) {
		memcpy(o->v[i].id, entries[i].id, PEERSNAP_SNAPSHOT_ID_LEN);
		o->v[i].fd = -1;
		o->v[i].path = strdup(entries[i].path);
		if (!o->v[i].path)
			goto err_free_origins;
	}
	*ret = o;
	return 0;

err_free_origins:
	psd_origins_uninit(o);
	return -ENOMEM;
}

void psd_origins_uninit(struct psd_origins *o)
{
	size_t i;

	if (!o)
		return;
	for (i = 0; i < o->n; i++) {
		if (o->v[i].fd >= 0)
			close(o->v[i].fd);
		free(o->v[i].path);
	}
	free(o->v);
	free(o);
}

/* An image is a regular file or a block device (an LV, a loop device). */
static int image_size(int fd, uint64_t *ret_size)
{
	struct stat st;
	uint64_t size;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*ret_size = (uint64_t)st.st_size;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return -EINVAL;
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return -errno;
	*ret_size = size;
	return 0;
}

/*
 * Opening is synchronous: it happens once per image and a local open() is
 * far cheaper than the fetch it serves.
 */
static int origin_open(struct psd_origin *org)
{
	int fd, r;

	fd = open(org->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = image_size(fd, &org->size);
	if (r < 0) {
		close(fd);
		return r;
	}
	org->fd = fd;
	return 0;
}

int psd_origins_open(struct psd_origins *o,
		     const uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN],
		     int *ret_fd, uint64_t *ret_size)
{
	size_t i;
	int r;

	/* Linear: at most PSD_CONFIG_MAX_ORIGINS, once per fetch. */
	for (i = 0; i < o->n; i++) {
		struct psd_origin *org = &o->v[i];

		if (memcmp(org->id, id, PEERSNAP_SNAPSHOT_ID_LEN))
			continue;
		if (org->fd < 0) {
			r = origin_open(org);
			if (r < 0)
				return r;
		}
		*ret_fd = org->fd;
		*ret_size = org->size;
		return 0;
	}
	return -ENOENT;
}
