// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap pull ID FILE: writes a snapshot's image to FILE, reading its
 * verified chunks from peersnapd (READ) in batches of at most
 * PSD_CTL_READ_MAX bytes. All-zero chunks are not written: the file is
 * sized first, so they stay holes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "fdio.h"
#include "json.h"
#include "origin.h"
#include "parse.h"
#include "progress.h"
#include "remote.h"

struct pull_args {
	const char *id;
	const char *file;
	bool force;
};

static int parse_args(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv, struct pull_args *a)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "force", no_argument, NULL, 'f' },
		{}
	};
	static const char *const names[] = { "ID", "FILE" };
	int r;

	/* --force is its only option. */
	while (cli_next_option(ctx, v, argc, argv, CLI_COMMON_SHORT "f", opts,
			       &r) != -1)
		a->force = true;
	if (r >= 0)
		return r;
	r = cli_positionals(v, argc - optind, argv + optind, 2, names);
	if (r)
		return r;
	a->id = argv[optind];
	a->file = argv[optind + 1];
	return cli_check_snapshot_id(v, a->id);
}

/* Writes one READ reply's data, skipping all-zero chunks. */
static int write_batch(int fd, const struct psd_manifest *m, uint64_t first,
		       const uint8_t *data, size_t len)
{
	uint32_t cs = m->geo.chunk_size;
	size_t off, n;
	int r;

	for (off = 0; off < len; off += n) {
		n = len - off < cs ? len - off : cs;
		if (psd_chunk_is_zero(data + off, n))
			continue;
		r = psd_pwrite_full(fd, data + off, n, first * cs + off);
		if (r)
			return r;
	}
	return 0;
}

/* Bytes of chunks [first, first + count), the image's end clipping. */
static uint64_t batch_bytes(const struct psd_manifest *m, uint64_t first,
			    uint32_t count)
{
	uint64_t start = first * m->geo.chunk_size;
	uint64_t end = start + (uint64_t)count * m->geo.chunk_size;

	return (end < m->geo.size ? end : m->geo.size) - start;
}

static int read_batch(struct cli_client *c, const struct psd_manifest *m,
		      uint64_t first, uint32_t count, int fd)
{
	uint64_t want = batch_bytes(m, first, count);
	struct psd_ctl_msg r_msg;
	const uint8_t *data;
	uint32_t len;
	int r;

	cli_client_begin(c, PSD_CTL_READ);
	psd_ctl_put_bytes(&c->req, PSD_CTL_A_ID, m->id, PSD_HASH_LEN);
	psd_ctl_put_u64(&c->req, PSD_CTL_A_FIRST_CHUNK, first);
	psd_ctl_put_u32(&c->req, PSD_CTL_A_COUNT, count);
	r = cli_client_call(c, &r_msg);
	if (r)
		return r;
	data = psd_ctl_bytes(&r_msg.at, PSD_CTL_A_DATA, &len);
	if (psd_ctl_u64(&r_msg.at, PSD_CTL_A_FIRST_CHUNK) != first ||
	    psd_ctl_u32(&r_msg.at, PSD_CTL_A_COUNT) != count || len != want) {
		snprintf(c->err, sizeof(c->err),
			 "bad READ reply: %u bytes for chunks %llu+%u, expected %llu",
			 len, (unsigned long long)first, count,
			 (unsigned long long)want);
		return -EPROTO;
	}
	r = write_batch(fd, m, first, data, len);
	if (r)
		snprintf(c->err, sizeof(c->err), "writing: %s", strerror(-r));
	return r;
}

static int pull_chunks(struct cli_client *c, const struct psd_manifest *m,
		       int fd)
{
	uint32_t per = PSD_CTL_READ_MAX / m->geo.chunk_size, count;
	struct cli_progress bar;
	uint64_t first = 0;
	int r = 0;

	cli_progress_start(&bar, "pulling", m->geo.size);
	while (first < m->geo.chunk_count && !r) {
		count = m->geo.chunk_count - first < per
				? (uint32_t)(m->geo.chunk_count - first) : per;
		r = read_batch(c, m, first, count, fd);
		first += count;
		cli_progress_update(&bar, first < m->geo.chunk_count
						  ? first * m->geo.chunk_size
						  : m->geo.size);
	}
	cli_progress_end(&bar);
	if (!r && fsync(fd) < 0) {
		r = -errno;
		snprintf(c->err, sizeof(c->err), "fsync: %s", strerror(errno));
	}
	return r;
}

/* FILE is created (or, with --force, truncated) as a regular file: never
 * a device or anything that removing on failure would harm (O_NONBLOCK:
 * opening a FIFO must not hang). */
static int open_output(const struct pull_args *a, const struct psd_manifest *m)
{
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
	struct stat st;
	int fd;

	flags |= a->force ? 0 : O_EXCL;
	fd = open(a->file, flags, 0644);
	if (fd < 0 && errno == EEXIST) {
		cli_error("%s: file exists (--force overwrites it)", a->file);
		return -1;
	}
	if (fd < 0) {
		cli_error("%s: %s", a->file, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cli_error("%s: not a regular file", a->file);
		close(fd);
		return -1;
	}
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)m->geo.size) < 0) {
		cli_error("%s: %s", a->file, strerror(errno));
		close(fd);
		unlink(a->file);
		return -1;
	}
	return fd;
}

static void print_result(const struct cli_ctx *ctx, const struct pull_args *a,
			 const struct psd_manifest *m)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];
	struct cli_json j;

	psd_hex_id_format(m->id, hex);
	if (!ctx->json) {
		fprintf(stderr, "peersnap: wrote %s (%llu bytes) to %s\n", hex,
			(unsigned long long)m->geo.size, a->file);
		return;
	}
	cli_json_start_object(&j, stdout);
	cli_json_key_string(&j, "id", hex);
	cli_json_key_string(&j, "file", a->file);
	cli_json_key_u64(&j, "size", m->geo.size);
	cli_json_finish_object(&j);
}

static int pull_run(struct cli_ctx *ctx, const struct cli_verb *v, int argc,
		    char **argv)
{
	struct pull_args a = {};
	struct psd_manifest *m;
	struct cli_client c;
	int fd, r;

	r = parse_args(ctx, v, argc, argv, &a);
	if (r >= 0)
		return r;
	r = cli_client_open(ctx, &c);
	if (r)
		return r;
	r = cli_remote_manifest(&c, a.id, NULL, &m);
	if (r) {
		cli_error("%s", c.err);
		cli_client_close(&c);
		return CLI_FAIL;
	}
	fd = open_output(&a, m);
	r = fd < 0 ? -EIO : pull_chunks(&c, m, fd);
	if (fd >= 0) {
		close(fd);
		if (r) {
			cli_error("%s", c.err);
			unlink(a.file);	/* a partial image is no image */
		}
	}
	if (!r)
		print_result(ctx, &a, m);
	psd_manifest_free(m);
	cli_client_close(&c);
	return r ? CLI_FAIL : CLI_OK;
}

const struct cli_verb cli_verb_pull = {
	.name = "pull",
	.args = "ID FILE [--force]",
	.summary = "Write a snapshot's image to a file, every chunk verified.",
	.help =
"  ID                  a snapshot id, or a unique prefix of 8+ hex digits\n"
"  FILE                the image file to create (all-zero chunks become holes)\n"
"  -f, --force         overwrite FILE if it exists\n"
"\nOn failure FILE is removed.\n",
	.run = pull_run,
};
