// SPDX-License-Identifier: GPL-2.0
/* Crash-safe files for the store: see storefile.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkhash.h"
#include "fdio.h"
#include "storefile.h"

#define REC_MAGIC	"PSDREC01"
#define REC_MAGIC_LEN	8
#define REC_HDR_LEN	(REC_MAGIC_LEN + 4)

bool psd_file_is_temp(const char *name)
{
	return !strncmp(name, PSD_FILE_TEMP_PREFIX,
			strlen(PSD_FILE_TEMP_PREFIX));
}

int psd_file_write_atomic(int dirfd, const char *name, const void *buf,
			  size_t len, bool sync_dir)
{
	char tmp[NAME_MAX + 1];
	int fd, r;

	if (strlen(name) + strlen(PSD_FILE_TEMP_PREFIX) > NAME_MAX)
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), PSD_FILE_TEMP_PREFIX "%s", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	r = psd_write_full(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	if (sync_dir && fsync(dirfd) < 0)
		return -errno;
	return 0;
}

int psd_file_read(int dirfd, const char *name, size_t max,
		  uint8_t **ret_buf, size_t *ret_len)
{
	struct stat st;
	uint8_t *buf;
	size_t len = 0;
	int fd, r = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (buf)
		r = psd_read_full(fd, buf, (size_t)st.st_size, &len);
	/* The file shrank under us. */
	if (!r && len < (size_t)st.st_size)
		r = -EIO;
	close(fd);
	if (!buf)
		return -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/*
 * Rename makes a torn record impossible; the checksum makes an altered or
 * truncated one (a disk error, a hand edit) harmless: it is skipped.
 */
int psd_record_write(int dirfd, const char *name, const uint8_t *payload,
		     size_t len)
{
	uint8_t *buf = malloc(REC_HDR_LEN + len + PSD_HASH_LEN);
	uint32_t n = (uint32_t)len;
	int r;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, REC_MAGIC, REC_MAGIC_LEN);
	buf[8] = n & 0xff;
	buf[9] = (n >> 8) & 0xff;
	buf[10] = (n >> 16) & 0xff;
	buf[11] = n >> 24;
	memcpy(buf + REC_HDR_LEN, payload, len);
	psd_chunkhash(buf, REC_HDR_LEN + len, buf + REC_HDR_LEN + len);
	if (len > UINT32_MAX) {
		free(buf);
		return -EFBIG;
	}
	r = psd_file_write_atomic(dirfd, name, buf,
				  REC_HDR_LEN + len + PSD_HASH_LEN, true);
	free(buf);
	return r;
}

int psd_record_read(int dirfd, const char *name, size_t max_payload,
		    uint8_t **ret, size_t *ret_len, const char **why)
{
	uint8_t *buf, sum[PSD_HASH_LEN];
	size_t len, plen;
	int r;

	r = psd_file_read(dirfd, name, REC_HDR_LEN + max_payload + PSD_HASH_LEN,
			  &buf, &len);
	if (r < 0) {
		*why = r == -EFBIG ? "too large or not a file" : strerror(-r);
		return r;
	}
	*why = "truncated";
	if (len < REC_HDR_LEN + PSD_HASH_LEN)
		goto bad;
	*why = "bad magic";
	if (memcmp(buf, REC_MAGIC, REC_MAGIC_LEN))
		goto bad;
	plen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
	       (size_t)buf[11] << 24;
	*why = "length does not match the file";
	if (plen != len - REC_HDR_LEN - PSD_HASH_LEN)
		goto bad;
	*why = "checksum mismatch";
	psd_chunkhash(buf, REC_HDR_LEN + plen, sum);
	if (memcmp(sum, buf + REC_HDR_LEN + plen, PSD_HASH_LEN))
		goto bad;
	memmove(buf, buf + REC_HDR_LEN, plen);
	*ret = buf;
	*ret_len = plen;
	return 0;
bad:
	free(buf);
	return -EBADMSG;
}

/* A dup of dirfd shares its position: rewind. */
DIR *psd_dir_open(int dirfd)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d && fd >= 0)
		close(fd);
	if (d)
		rewinddir(d);
	return d;
}

unsigned int psd_dir_remove_temps(int dirfd)
{
	DIR *d = psd_dir_open(dirfd);
	unsigned int n = 0;
	struct dirent *e;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (psd_file_is_temp(e->d_name) &&
		    unlinkat(dirfd, e->d_name, 0) == 0)
			n++;
	closedir(d);
	if (n)
		fsync(dirfd);
	return n;
}
