// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap commit NAME --name N: publishes what a writable peersnap
 * device holds now as a new snapshot whose parent is the device's
 * snapshot, hashing only the chunks written since it was attached:
 *
 *   1. the kernel's GET_DEVICE dump names the device's snapshot and cache
 *      device; the device is flushed (fsync), then its dirty and present
 *      bitmaps are dumped (GET_BITMAP);
 *   2. every hash comes from the parent's index chunks (GET_INDEX, each
 *      verified against the parent manifest), except the dirty chunks':
 *      those are read from /dev/mapper/NAME and hashed;
 *   3. the new manifest is signed and added with the cache device and its
 *      present bitmap as the source of the chunks.
 *
 * Writes racing the commit are not part of it: stop writing first (a
 * file system: sync and freeze, or unmount).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bitmap.h"
#include "build.h"
#include "cache.h"
#include "cli.h"
#include "dm.h"
#include "json.h"
#include "origin.h"
#include "progress.h"
#include "remote.h"

struct commit_args {
	const char *dev;
	const char *name;
};

struct commit {
	struct cli_kdev kdev;
	struct psd_manifest *parent;
	uint8_t *dirty, *present;
	struct cli_build b;
	uint64_t n_dirty, hashed;
	char cache_path[PATH_MAX];
};

static int parse_args(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv, struct commit_args *a)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{}
	};
	static const char *const names[] = { "NAME" };
	int r;

	/* --name is its only option. */
	while (cli_next_option(ctx, v, argc, argv, CLI_COMMON_SHORT "n:",
			       opts, &r) != -1)
		a->name = optarg;
	if (r >= 0)
		return r;
	r = cli_positionals(v, argc - optind, argv + optind, 1, names);
	if (r)
		return r;
	a->dev = argv[optind];
	return cli_check_snapshot_name(v, a->name);
}

static int find_device(const char *name, struct cli_kdev *ret)
{
	char kname[32];
	int r;

	r = cli_dm_kernel_name(name, kname, sizeof(kname));
	if (r == -ENXIO)
		cli_error("no device-mapper device '%s'", name);
	else if (r)
		cli_error("%s: device-mapper: %s", name, strerror(-r));
	if (r)
		return r;
	r = cli_kdev_find(kname, ret);
	if (r == -ENOENT)
		cli_error("generic netlink family not found (is dm-peersnap loaded?)");
	else if (r == -ENODEV)
		cli_error("'%s' is not a peersnap device", name);
	else if (r)
		cli_error("%s: GET_DEVICE: %s", name, strerror(-r));
	return r;
}

/* /dev/<DEVNAME> of the cache device's dev_t, checked to be it. */
static int cache_path(uint32_t dev, char *ret, size_t cap)
{
	char sys[64], buf[4096], devname[256];
	unsigned int maj, min;
	struct stat st;
	ssize_t n;
	int fd;

	psd_dev_decode(dev, &maj, &min);
	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/uevent", maj, min);
	fd = open(sys, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || psd_uevent_devname(buf, (size_t)n, devname,
					sizeof(devname)))
		return -ENODEV;
	if ((size_t)snprintf(ret, cap, "/dev/%s", devname) >= cap)
		return -ENAMETOOLONG;
	if (stat(ret, &st) < 0)
		return -errno;
	return S_ISBLK(st.st_mode) && st.st_rdev == makedev(maj, min)
		       ? 0 : -ENODEV;
}

/* The parent's geometry must be the device's. */
static int load_parent(struct cli_client *c, struct commit *cm)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];
	const struct psd_geometry *g;
	int r;

	psd_hex_id_format(cm->kdev.snapshot, hex);
	r = cli_remote_manifest(c, NULL, cm->kdev.snapshot, &cm->parent);
	if (r) {
		cli_error("the device's snapshot %s: %s", hex, c->err);
		return r;
	}
	g = &cm->parent->geo;
	if (g->chunk_count != cm->kdev.chunks_total ||
	    g->chunk_size != cm->kdev.chunk_sectors * 512u) {
		cli_error("the device has %llu chunks of %u sectors; its snapshot %s has %llu of %u bytes",
			  (unsigned long long)cm->kdev.chunks_total,
			  cm->kdev.chunk_sectors, hex,
			  (unsigned long long)g->chunk_count, g->chunk_size);
		return -EINVAL;
	}
	return 0;
}

/* Flush first: the bitmaps then describe data that is on the device. */
static int dump_bitmaps(const char *name, int fd, struct commit *cm)
{
	size_t bytes = (cm->kdev.chunks_total + 7) / 8, i;
	int r;

	if (fsync(fd) < 0) {
		cli_error("%s: fsync: %s", name, strerror(errno));
		return -errno;
	}
	cm->dirty = malloc(bytes);
	cm->present = malloc(bytes);
	if (!cm->dirty || !cm->present) {
		cli_error("out of memory");
		return -ENOMEM;
	}
	r = cli_kdev_bitmap(&cm->kdev, PEERSNAP_BITMAP_DIRTY, cm->dirty);
	if (!r)
		r = cli_kdev_bitmap(&cm->kdev, PEERSNAP_BITMAP_PRESENT,
				    cm->present);
	if (r) {
		cli_error("%s: GET_BITMAP: %s", name, strerror(-r));
		return r;
	}
	/* A written chunk is on the cache device, whatever else says. */
	for (i = 0; i < bytes; i++) {
		cm->present[i] |= cm->dirty[i];
		cm->n_dirty += (uint64_t)__builtin_popcount(cm->dirty[i]);
	}
	return 0;
}

static int copy_parent_hashes(struct cli_client *c, struct commit *cm)
{
	const struct psd_geometry *g = &cm->b.geo;
	size_t len;
	uint32_t k;
	int r;

	for (k = 0; k < g->index_count; k++) {
		r = cli_remote_index(c, cm->parent, k,
				     cm->b.hashes[(uint64_t)k * g->index_entries],
				     &len);
		if (r) {
			cli_error("index chunk %u of the parent: %s", k, c->err);
			return r;
		}
	}
	return 0;
}

static bool is_dirty(const struct commit *cm, uint64_t chunk)
{
	return cm->dirty[chunk / 8] & (1u << (chunk % 8));
}

/* Reads and hashes every dirty chunk (O_DIRECT: the device, not a page
 * cache that may predate the writes). */
static int hash_dirty(const char *name, int fd, struct commit *cm)
{
	uint32_t cs = cm->b.geo.chunk_size;
	struct cli_progress bar;
	uint64_t i, done = 0;
	ssize_t n = 0;
	void *buf;

	if (posix_memalign(&buf, 4096, cs)) {
		cli_error("out of memory");
		return -ENOMEM;
	}
	cli_progress_start(&bar, "hashing", cm->n_dirty * cs);
	for (i = 0; i < cm->b.geo.chunk_count; i++) {
		if (!is_dirty(cm, i))
			continue;
		n = pread(fd, buf, cs, (off_t)(i * cs));
		if (n != (ssize_t)cs)
			break;
		psd_chunkhash(buf, cs, cm->b.hashes[i]);
		cm->hashed++;
		cli_progress_update(&bar, ++done * cs);
	}
	cli_progress_end(&bar);
	free(buf);
	if (i == cm->b.geo.chunk_count)
		return 0;
	cli_error("%s: reading chunk %llu: %s", name, (unsigned long long)i,
		  n < 0 ? strerror(errno) : "short read");
	return -EIO;
}

static void print_result(const struct cli_ctx *ctx, const struct commit *cm,
			 const uint8_t *id)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1], parent[PSD_SNAPSHOT_HEX_LEN + 1];
	struct cli_json j;

	psd_hex_id_format(id, hex);
	psd_hex_id_format(cm->kdev.snapshot, parent);
	if (!ctx->json) {
		printf("%s\n", hex);
		fprintf(stderr, "peersnap: committed: hashed %llu of %llu chunks\n",
			(unsigned long long)cm->hashed,
			(unsigned long long)cm->b.geo.chunk_count);
		return;
	}
	cli_json_start_object(&j, stdout);
	cli_json_key_string(&j, "id", hex);
	cli_json_key_string(&j, "parent", parent);
	cli_json_key_u64(&j, "chunk_count", cm->b.geo.chunk_count);
	cli_json_key_u64(&j, "hashed", cm->hashed);
	cli_json_finish_object(&j);
}

static int build(struct cli_ctx *ctx, struct cli_client *c,
		 const struct commit_args *a, int fd, struct commit *cm)
{
	const struct psd_geometry *g = &cm->parent->geo;
	struct cli_source src = { .kind = PSD_CTL_SOURCE_CACHE,
				  .path = cm->cache_path };
	uint8_t id[PSD_HASH_LEN], *mf = NULL;
	struct psd_identity key;
	struct psd_mf_err err;
	size_t mf_len;
	int r;

	if (cli_load_identity(ctx, &key))
		return -ENOKEY;
	/* The parent's index chunk size: unchanged index chunks keep their
	 * hashes and are not stored or sent again. */
	r = cli_build_init(&cm->b, g->size, g->chunk_size,
			   g->index_chunk_size, &err);
	if (r)
		cli_error("%s", r == -EINVAL ? err.msg : "out of memory");
	if (!r)
		r = dump_bitmaps(a->dev, fd, cm);
	if (!r)
		r = copy_parent_hashes(c, cm);
	if (!r)
		r = hash_dirty(a->dev, fd, cm);
	if (!r)
		r = cli_build_sign(&cm->b, &key, a->name, cm->kdev.snapshot,
				   &mf, &mf_len);
	psd_identity_wipe(&key);
	if (!r) {
		src.present = cm->present;
		r = cli_build_add(c, &cm->b, mf, mf_len, &src, id);
		if (r)
			cli_error("%s", c->err);
	}
	if (!r)
		print_result(ctx, cm, id);
	free(mf);
	return r;
}

static int commit_device(struct cli_ctx *ctx, struct cli_client *c,
			 const struct commit_args *a, struct commit *cm)
{
	char path[PATH_MAX];
	int fd, r;

	r = find_device(a->dev, &cm->kdev);
	if (r)
		return r;
	r = cache_path(cm->kdev.cache_dev, cm->cache_path,
		       sizeof(cm->cache_path));
	if (r) {
		cli_error("%s: no /dev node for its cache device: %s", a->dev,
			  strerror(-r));
		return r;
	}
	r = load_parent(c, cm);
	if (r)
		return r;
	snprintf(path, sizeof(path), CLI_DM_DIR "/%s", a->dev);
	fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		cli_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	r = build(ctx, c, a, fd, cm);
	close(fd);
	return r;
}

static int commit_run(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv)
{
	struct commit_args a = {};
	struct commit cm = {};
	struct cli_client c;
	int r;

	r = parse_args(ctx, v, argc, argv, &a);
	if (r >= 0)
		return r;
	r = cli_client_open(ctx, &c);
	if (r)
		return r;
	r = commit_device(ctx, &c, &a, &cm);
	cli_client_close(&c);
	psd_manifest_free(cm.parent);
	cli_build_free(&cm.b);
	free(cm.dirty);
	free(cm.present);
	return r ? CLI_FAIL : CLI_OK;
}

const struct cli_verb cli_verb_commit = {
	.name = "commit",
	.args = "NAME --name N",
	.summary = "Publish a written peersnap device as a new snapshot (delta).",
	.help =
"  NAME                the device-mapper name of a writable peersnap device\n"
"  -n, --name N        the new snapshot's name\n"
"\nHashes only the chunks written since the device was attached; every\n"
"other hash comes from the device's snapshot, which becomes the parent.\n"
"The cache device serves the new snapshot's chunks. Stop writing first.\n"
"Prints the new snapshot's id.\n",
	.run = commit_run,
};
