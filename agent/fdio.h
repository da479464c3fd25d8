/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whole reads and writes on a file descriptor: every call retries on
 * EINTR and goes on after a short transfer, so callers see all or an
 * error. Shared by the agent's store and key files and by the CLI.
 */
#ifndef PSD_FDIO_H
#define PSD_FDIO_H

#include <stddef.h>
#include <stdint.h>

/* Writes all of buf with write(2). -errno; -EIO if nothing is written. */
int psd_write_full(int fd, const void *buf, size_t len);

/* The same with send(MSG_NOSIGNAL): a closed socket is -EPIPE, never a
 * SIGPIPE. */
int psd_send_full(int fd, const void *buf, size_t len);

/* The same with pwrite(2) at offset off. */
int psd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Reads up to len bytes with read(2), fewer only at the end of the file;
 * *ret is how many. -errno. */
int psd_read_full(int fd, void *buf, size_t len, size_t *ret);

/* The same with pread(2) at offset off. */
int psd_pread_full(int fd, void *buf, size_t len, uint64_t off,
		   size_t *ret);

#endif /* PSD_FDIO_H */
