// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap publish IMAGE --name N [--chunk-size S] [--parent ID]: hashes
 * the image chunk by chunk, lays the hashes out as index chunks, signs
 * the manifest with this host's identity and hands it to peersnapd with
 * the image's absolute path as the origin that serves its chunks.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "cli.h"
#include "fdio.h"
#include "json.h"
#include "origin.h"
#include "parse.h"
#include "progress.h"
#include "remote.h"

/* The benchmark's choice (docs/benchmarks.md): 512 sectors. */
#define DEFAULT_CHUNK_SIZE	(256u << 10)
/* Reads this large keep the syscalls cheap, and are small enough that
 * the data is still in the L2 cache when it is hashed: 4 MiB reads took
 * four times the system time, and 25% more in all. */
#define READ_BATCH		(1u << 20)

struct publish_args {
	const char *image;
	const char *name;
	const char *parent;	/* id or prefix, or NULL */
	uint32_t chunk_size;
};

struct hash_stats {
	uint64_t zero_chunks;
	double seconds;
};

static int parse_args(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv, struct publish_args *a)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "name", required_argument, NULL, 'n' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "parent", required_argument, NULL, 'p' },
		{}
	};
	static const char *const names[] = { "IMAGE" };
	int c, r;

	a->chunk_size = DEFAULT_CHUNK_SIZE;
	while ((c = cli_next_option(ctx, v, argc, argv,
				    CLI_COMMON_SHORT "n:c:p:", opts,
				    &r)) != -1) {
		switch (c) {
		case 'n':
			a->name = optarg;
			break;
		case 'c':
			if (cli_parse_chunk_size(optarg, &a->chunk_size))
				return cli_usage_error(v,
					"--chunk-size '%s': expected a power of two from 4K to 4M (e.g. 256K)",
					optarg);
			break;
		case 'p':
			if (cli_check_id_arg(optarg))
				return cli_usage_error(v,
					"--parent '%s': expected a snapshot id (8 to 64 hex digits)",
					optarg);
			a->parent = optarg;
			break;
		}
	}
	if (r >= 0)
		return r;
	r = cli_positionals(v, argc - optind, argv + optind, 1, names);
	if (r)
		return r;
	a->image = argv[optind];
	return cli_check_snapshot_name(v, a->name);
}

/*
 * An image is a regular file of at least one byte: peersnapd records it
 * as the snapshot's origin, which must be one (docs/store.md). Refused
 * here, a block device fails before hours of hashing, not after.
 */
static int image_size(int fd, const char *path, uint64_t *ret)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		cli_error("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		cli_error("%s: not a regular file (copy a device to an image file first)",
			  path);
		return -EINVAL;
	}
	*ret = (uint64_t)st.st_size;
	if (!*ret) {
		cli_error("%s: the image is empty", path);
		return -EINVAL;
	}
	return 0;
}

/* Hashes every chunk of the image into b->hashes; the last chunk is
 * zero-padded to the chunk size. */
static int hash_image(int fd, const char *path, struct cli_build *b,
		      struct hash_stats *st)
{
	uint32_t cs = b->geo.chunk_size;
	size_t batch = cs > READ_BATCH ? cs : READ_BATCH, got = 0, off;
	struct cli_progress bar;
	uint64_t pos = 0, chunk = 0;
	uint8_t *buf = malloc(batch);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	cli_progress_start(&bar, "hashing", b->geo.size);
	while (chunk < b->geo.chunk_count) {
		r = psd_pread_full(fd, buf, batch, pos, &got);
		if (r)
			break;
		if (got < batch && pos + got < b->geo.size) {
			r = -ENODATA;	/* the image shrank under us */
			break;
		}
		if (got > b->geo.size - pos)
			got = b->geo.size - pos;	/* or grew */
		/* Pad the last chunk; chunk_count covers pos + got. */
		memset(buf + got, 0, (cs - got % cs) % cs);
		for (off = 0; off < got; off += cs, chunk++) {
			psd_chunkhash(buf + off, cs, b->hashes[chunk]);
			st->zero_chunks += psd_hash_is_zero(b->hashes[chunk]);
		}
		pos += got;
		cli_progress_update(&bar, pos);
	}
	cli_progress_end(&bar);
	st->seconds = cli_now() - bar.start;
	free(buf);
	if (r == -ENODATA)
		cli_error("%s: the image changed size while it was hashed",
			  path);
	else if (r)
		cli_error("%s: %s", path, strerror(-r));
	return r;
}

static void print_result(const struct cli_ctx *ctx, const struct cli_build *b,
			 const struct publish_args *a, const uint8_t *id,
			 const struct hash_stats *st)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1], rate[32];
	double mbs = st->seconds > 0 ? (double)b->geo.size / st->seconds : 0;
	struct cli_json j;

	psd_hex_id_format(id, hex);
	if (!ctx->json) {
		cli_format_bytes(rate, sizeof(rate), mbs);
		printf("%s\n", hex);
		fprintf(stderr,
			"peersnap: published '%s': %llu chunks of %u bytes (%llu all-zero), hashed at %s/s\n",
			a->name, (unsigned long long)b->geo.chunk_count,
			b->geo.chunk_size,
			(unsigned long long)st->zero_chunks, rate);
		return;
	}
	cli_json_start_object(&j, stdout);
	cli_json_key_string(&j, "id", hex);
	cli_json_key_string(&j, "name", a->name);
	cli_json_key_u64(&j, "size", b->geo.size);
	cli_json_key_u64(&j, "chunk_size", b->geo.chunk_size);
	cli_json_key_u64(&j, "chunk_count", b->geo.chunk_count);
	cli_json_key_u64(&j, "zero_chunks", st->zero_chunks);
	cli_json_key_u64(&j, "hash_bytes_per_second", (uint64_t)mbs);
	cli_json_finish_object(&j);
}

/* The parent must be in the daemon's store; its full id. */
static int resolve_parent(struct cli_client *c, const char *arg,
			  uint8_t ret[PSD_HASH_LEN])
{
	struct psd_manifest *m;
	int r;

	r = cli_remote_manifest(c, arg, NULL, &m);
	if (r) {
		cli_error("--parent '%s': %s", arg, c->err);
		return r;
	}
	memcpy(ret, m->id, PSD_HASH_LEN);
	psd_manifest_free(m);
	return 0;
}

static int build_and_add(struct cli_ctx *ctx, struct cli_client *c,
			 const struct publish_args *a, int fd,
			 const char *abs, uint64_t size,
			 const struct psd_identity *key)
{
	struct cli_source src = { .kind = PSD_CTL_SOURCE_ORIGIN, .path = abs };
	uint8_t parent[PSD_HASH_LEN], id[PSD_HASH_LEN], *mf = NULL;
	struct hash_stats st = {};
	struct cli_build b = {};
	struct psd_mf_err err;
	size_t mf_len;
	int r;

	if (a->parent && resolve_parent(c, a->parent, parent))
		return CLI_FAIL;
	r = cli_build_init(&b, size, a->chunk_size, 0, &err);
	if (r == -EINVAL)
		cli_error("%s: %s", a->image, err.msg);
	else if (r)
		cli_error("out of memory");
	if (!r)
		r = hash_image(fd, a->image, &b, &st);
	if (!r)
		r = cli_build_sign(&b, key, a->name,
				   a->parent ? parent : NULL, &mf, &mf_len);
	if (!r) {
		r = cli_build_add(c, &b, mf, mf_len, &src, id);
		if (r)
			cli_error("%s", c->err);
	}
	if (!r)
		print_result(ctx, &b, a, id, &st);
	cli_build_free(&b);
	free(mf);
	return r ? CLI_FAIL : CLI_OK;
}

static int publish_run(struct cli_ctx *ctx, const struct cli_verb *v,
		       int argc, char **argv)
{
	struct publish_args a = {};
	struct psd_identity key;
	struct cli_client c;
	uint64_t size = 0;
	char *abs;
	int fd, r;

	r = parse_args(ctx, v, argc, argv, &a);
	if (r >= 0)
		return r;
	fd = open(a.image, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_error("%s: %s", a.image, strerror(errno));
		return CLI_FAIL;
	}
	abs = realpath(a.image, NULL);
	if (!abs || image_size(fd, a.image, &size)) {
		if (!abs)
			cli_error("%s: %s", a.image, strerror(errno));
		free(abs);
		close(fd);
		return CLI_FAIL;
	}
	/* Before the long part: no identity, no point in hashing. */
	r = cli_load_identity(ctx, &key) ? CLI_FAIL : CLI_OK;
	if (r == CLI_OK)
		r = cli_client_open(ctx, &c);
	if (r == CLI_OK) {
		r = build_and_add(ctx, &c, &a, fd, abs, size, &key);
		cli_client_close(&c);
	}
	psd_identity_wipe(&key);
	free(abs);
	close(fd);
	return r;
}

const struct cli_verb cli_verb_publish = {
	.name = "publish",
	.args = "IMAGE --name N [--chunk-size S] [--parent ID]",
	.summary = "Hash an image, sign its manifest and serve it as a snapshot.",
	.help =
"  IMAGE               the image file (a regular file); peersnapd serves\n"
"                      the snapshot's chunks from it\n"
"  -n, --name N        the snapshot's name (1 to 255 bytes of UTF-8)\n"
"  -c, --chunk-size S  a power of two from 4K to 4M (K and M suffixes;\n"
"                      default 256K)\n"
"  -p, --parent ID     the snapshot this one derives from (an id or a\n"
"                      unique prefix of 8+ hex digits, in the store)\n"
"\nPrints the new snapshot's id (64 hex digits). Needs an identity\n"
"('peersnap keygen').\n",
	.run = publish_run,
};
