/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Crash-safe files for the store (docs/store.md): atomic replacement
 * through a temporary file, whole-file reads with a size limit, and
 * checksummed records. All names are relative to a directory fd.
 *
 *   record = "PSDREC01" | payload length (u32 LE) | payload |
 *            BLAKE2b-256 of everything before it
 *
 * psd_chunkhash_init() must have run (records are hashed).
 */
#ifndef PSD_STOREFILE_H
#define PSD_STOREFILE_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Temporary files are "<prefix><name>": ignored and removed at open. */
#define PSD_FILE_TEMP_PREFIX	".tmp."

bool psd_file_is_temp(const char *name);

/*
 * Replaces name with buf: writes a temporary file, fsyncs it, renames it
 * over name; with sync_dir also fsyncs the directory, after which the new
 * content survives a crash. Without sync_dir the caller fsyncs the
 * directory before writing anything that depends on the file. After a
 * crash name holds its old or its new content, never a mix. -errno; no
 * temporary file is left on failure.
 */
int psd_file_write_atomic(int dirfd, const char *name, const void *buf,
			  size_t len, bool sync_dir);

/*
 * Reads a regular file (not through a symlink) of at most max bytes into
 * *ret_buf (malloc'ed, free()). -EFBIG if larger or not a regular file,
 * -ENOMEM, or the -errno of open or read.
 */
int psd_file_read(int dirfd, const char *name, size_t max,
		  uint8_t **ret_buf, size_t *ret_len);

/* Writes a record atomically, the directory synced. -errno. */
int psd_record_write(int dirfd, const char *name, const uint8_t *payload,
		     size_t len);

/*
 * Reads a record's payload (at most max_payload bytes) into *ret (free()).
 * -EBADMSG for a bad one (truncated, bad magic, wrong length, checksum
 * mismatch), or psd_file_read()'s errors; *why names the reason.
 */
int psd_record_read(int dirfd, const char *name, size_t max_payload,
		    uint8_t **ret, size_t *ret_len, const char **why);

/* A DIR listing dirfd from its start (closedir() it); NULL and errno. */
DIR *psd_dir_open(int dirfd);

/* Removes the temporary files of interrupted updates; returns how many. */
unsigned int psd_dir_remove_temps(int dirfd);

#endif /* PSD_STOREFILE_H */
