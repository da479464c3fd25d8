// SPDX-License-Identifier: GPL-2.0
/* Whole reads and writes: see fdio.h. */
#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdio.h"

enum fdio_call { FDIO_PLAIN, FDIO_SEND, FDIO_AT };

static ssize_t write_once(int fd, const void *p, size_t len,
			  enum fdio_call how, uint64_t off)
{
	switch (how) {
	case FDIO_SEND:
		return send(fd, p, len, MSG_NOSIGNAL);
	case FDIO_AT:
		return pwrite(fd, p, len, (off_t)off);
	default:
		return write(fd, p, len);
	}
}

static int write_loop(int fd, const void *buf, size_t len,
		      enum fdio_call how, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write_once(fd, p, len, how, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* at: pread(2) from off, else read(2) from the file offset. */
static int read_loop(int fd, void *buf, size_t len, bool at, uint64_t off,
		     size_t *ret)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = at ? pread(fd, p + got, len - got,
				       (off_t)(off + got))
			       : read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*ret = got;
	return 0;
}

int psd_write_full(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, FDIO_PLAIN, 0);
}

int psd_send_full(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, FDIO_SEND, 0);
}

int psd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return write_loop(fd, buf, len, FDIO_AT, off);
}

int psd_read_full(int fd, void *buf, size_t len, size_t *ret)
{
	return read_loop(fd, buf, len, false, 0, ret);
}

int psd_pread_full(int fd, void *buf, size_t len, uint64_t off,
		   size_t *ret)
{
	return read_loop(fd, buf, len, true, off, ret);
}
