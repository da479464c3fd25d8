// SPDX-License-Identifier: GPL-2.0
/*
 * The peersnap device of a snapshot: table (the dmsetup line), attach
 * (create it through libdevmapper and tell peersnapd), detach (remove it
 * and tell peersnapd) and hydrate (fetch every chunk, with progress).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "dm.h"
#include "json.h"
#include "origin.h"
#include "parse.h"
#include "progress.h"
#include "remote.h"

#define TARGET		"peersnap"
#define TABLE_MAX	(2 * PATH_MAX + 128)
#define STATUS_MAX	1024
#define POLL_NS		(200 * 1000 * 1000)
/* Polls (2 s) idle with nothing in flight, or without an agent, before
 * hydrate gives up. */
#define STALLED_POLLS	10

struct device_args {
	const char *id;
	const char *metadata;
	const char *cache;
	const char *name;
	bool read_only;
};

/* ID --metadata DEV --cache DEV, then NAME for attach. */
static int parse_device_args(struct cli_ctx *ctx, const struct cli_verb *v,
			     int argc, char **argv, struct device_args *a,
			     bool attach)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "metadata", required_argument, NULL, 'm' },
		{ "cache", required_argument, NULL, 'C' },
		{ "read-only", no_argument, NULL, 'r' },
		{}
	};
	static const char *const names[] = { "ID", "NAME" };
	int c, r;

	while ((c = cli_next_option(ctx, v, argc, argv,
				    CLI_COMMON_SHORT "m:C:r", opts,
				    &r)) != -1) {
		switch (c) {
		case 'm':
			a->metadata = optarg;
			break;
		case 'C':
			a->cache = optarg;
			break;
		case 'r':
			if (!attach)
				return cli_usage_error(v,
					"--read-only: only attach takes it");
			a->read_only = true;
			break;
		}
	}
	if (r >= 0)
		return r;
	r = cli_positionals(v, argc - optind, argv + optind, attach ? 2 : 1,
			    names);
	if (r)
		return r;
	a->id = argv[optind];
	a->name = attach ? argv[optind + 1] : NULL;
	r = cli_check_snapshot_id(v, a->id);
	if (r >= 0)
		return r;
	if (!a->metadata)
		return cli_usage_error(v, "missing --metadata DEV");
	if (!a->cache)
		return cli_usage_error(v, "missing --cache DEV");
	if (attach && (!*a->name || strlen(a->name) >= 128 ||
		       strchr(a->name, '/')))
		return cli_usage_error(v,
			"bad device name '%s': 1 to 127 bytes, no '/'",
			a->name);
	return -1;
}

/* What table and attach start from: the snapshot and its table line. */
struct device_table {
	struct device_args a;
	struct cli_client c;
	struct psd_manifest *m;
	char line[TABLE_MAX];
};

static int table_line(struct device_table *t)
{
	int r;

	r = cli_remote_manifest(&t->c, t->a.id, NULL, &t->m);
	if (r) {
		cli_error("%s", t->c.err);
		return r;
	}
	r = cli_format_table(t->line, sizeof(t->line), t->m, t->a.metadata,
			     t->a.cache);
	if (r) {
		cli_error("device paths too long");
		psd_manifest_free(t->m);
	}
	return r;
}

/*
 * Parses the arguments and asks peersnapd for the snapshot's manifest
 * and table line. -1 to go on, with t->c open and t->m to free; else the
 * exit status.
 */
static int device_table_open(struct cli_ctx *ctx, const struct cli_verb *v,
			     int argc, char **argv, bool attach,
			     struct device_table *t)
{
	int r;

	r = parse_device_args(ctx, v, argc, argv, &t->a, attach);
	if (r >= 0)
		return r;
	r = cli_client_open(ctx, &t->c);
	if (r)
		return r;
	r = table_line(t);
	if (r) {
		cli_client_close(&t->c);
		return CLI_FAIL;
	}
	return -1;
}

/* ---- table ------------------------------------------------------------- */

static int table_run(struct cli_ctx *ctx, const struct cli_verb *v,
		     int argc, char **argv)
{
	struct device_table t = {};
	const struct psd_geometry *g;
	struct cli_json j;
	int r;

	r = device_table_open(ctx, v, argc, argv, false, &t);
	if (r >= 0)
		return r;
	cli_client_close(&t.c);
	g = &t.m->geo;
	if (ctx->json) {
		cli_json_start_object(&j, stdout);
		cli_json_key_string(&j, "table", t.line);
		cli_json_key_u64(&j, "sectors",
				 g->chunk_count * (g->chunk_size / 512));
		cli_json_finish_object(&j);
	} else {
		printf("%s\n", t.line);
	}
	psd_manifest_free(t.m);
	return CLI_OK;
}

const struct cli_verb cli_verb_table = {
	.name = "table",
	.args = "ID --metadata DEV --cache DEV",
	.summary = "Print a snapshot's device-mapper table line (for dmsetup).",
	.help =
"  ID                  a snapshot id, or a unique prefix of 8+ hex digits\n"
"  -m, --metadata DEV  the metadata device (all zeros the first time)\n"
"  -C, --cache DEV     the cache device, at least as large as the image\n"
"                      rounded up to whole chunks\n"
"\nPrints \"0 <sectors> peersnap <metadata> <cache> <chunk_sectors> <id>\":\n"
"  dmsetup create NAME --table \"$(peersnap table ID -m META -C CACHE)\"\n",
	.run = table_run,
};

/* ---- attach ------------------------------------------------------------ */

/* The cache device must be a block device holding every chunk. */
static int check_cache(const char *path, const struct psd_manifest *m)
{
	uint64_t need = m->geo.chunk_count * m->geo.chunk_size, have = 0;
	struct stat st;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_error("cache device %s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode)) {
		cli_error("cache device %s: not a block device", path);
		r = -ENOTBLK;
	} else if (ioctl(fd, BLKGETSIZE64, &have) < 0) {
		cli_error("cache device %s: %s", path, strerror(errno));
		r = -errno;
	} else if (have < need) {
		cli_error("cache device %s holds %llu bytes; the snapshot needs %llu (%llu chunks of %u)",
			  path, (unsigned long long)have,
			  (unsigned long long)need,
			  (unsigned long long)m->geo.chunk_count,
			  m->geo.chunk_size);
		r = -ENOSPC;
	}
	close(fd);
	return r;
}

static int tell_attached(struct cli_client *c, const struct psd_manifest *m,
			 const char *cache, const char *name)
{
	struct psd_ctl_msg reply;
	char *abs = realpath(cache, NULL);
	int r;

	if (!abs) {
		snprintf(c->err, sizeof(c->err), "%s: %s", cache,
			 strerror(errno));
		return -errno;
	}
	cli_client_begin(c, PSD_CTL_ATTACHED);
	psd_ctl_put_bytes(&c->req, PSD_CTL_A_ID, m->id, PSD_HASH_LEN);
	psd_ctl_put_str(&c->req, PSD_CTL_A_PATH, abs);
	psd_ctl_put_str(&c->req, PSD_CTL_A_DM_NAME, name);
	r = cli_client_call(c, &reply);
	free(abs);
	return r;
}

static int attach_device(struct cli_client *c, const struct device_args *a,
			 const struct psd_manifest *m, const char *line)
{
	uint64_t sectors = m->geo.chunk_count * (m->geo.chunk_size / 512);
	int r;

	r = cli_dm_create(a->name, sectors, TARGET, cli_table_params(line),
			  a->read_only);
	if (r) {
		cli_error("cannot create %s: %s (the kernel log says why)",
			  a->name, strerror(-r));
		return r;
	}
	r = tell_attached(c, m, a->cache, a->name);
	if (r) {
		int rm;

		cli_error("%s", c->err);
		rm = cli_dm_remove(a->name);	/* nothing left behind */
		if (rm)
			cli_error("%s is left behind: cannot remove it: %s (peersnap detach %s)",
				  a->name, strerror(-rm), a->name);
	}
	return r;
}

static void print_attached(const struct cli_ctx *ctx,
			   const struct device_args *a,
			   const struct psd_manifest *m)
{
	char path[PATH_MAX];
	struct cli_json j;

	snprintf(path, sizeof(path), CLI_DM_DIR "/%s", a->name);
	if (!ctx->json) {
		printf("%s\n", path);
		return;
	}
	cli_json_start_object(&j, stdout);
	cli_json_key_string(&j, "name", a->name);
	cli_json_key_string(&j, "path", path);
	cli_json_key_id(&j, "id", m->id);
	cli_json_finish_object(&j);
}

static int attach_run(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv)
{
	struct device_table t = {};
	int r;

	r = device_table_open(ctx, v, argc, argv, true, &t);
	if (r >= 0)
		return r;
	r = check_cache(t.a.cache, t.m);
	if (!r)
		r = attach_device(&t.c, &t.a, t.m, t.line);
	if (!r)
		print_attached(ctx, &t.a, t.m);
	psd_manifest_free(t.m);
	cli_client_close(&t.c);
	return r ? CLI_FAIL : CLI_OK;
}

const struct cli_verb cli_verb_attach = {
	.name = "attach",
	.args = "ID --metadata DEV --cache DEV NAME [--read-only]",
	.summary = "Create the peersnap device of a snapshot, usable at once.",
	.help =
"  ID                  a snapshot id, or a unique prefix of 8+ hex digits\n"
"  -m, --metadata DEV  the metadata device (all zeros the first time)\n"
"  -C, --cache DEV     the cache device, at least as large as the image\n"
"                      rounded up to whole chunks\n"
"  NAME                the device-mapper name: /dev/mapper/NAME\n"
"  -r, --read-only     a read-only device\n"
"\nCreates the device exactly as 'peersnap table' prints it, then tells\n"
"peersnapd which cache device holds the snapshot. On failure nothing is\n"
"left behind. Prints /dev/mapper/NAME.\n",
	.run = attach_run,
};

/* ---- detach, hydrate: an existing device by name ----------------------- */

static int parse_name(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv, const char **ret)
{
	static const char *const names[] = { "NAME" };
	int r = cli_parse_plain(ctx, v, argc, argv, 1, names);

	if (r < 0)
		*ret = argv[optind];
	return r;
}

/* NAME must be a peersnap device: never act on someone else's. Its
 * status line (status) or table parameters go to line. */
static int query_peersnap(const char *name, bool status,
			  char line[STATUS_MAX])
{
	char type[32];
	int r;

	r = cli_dm_query(name, !status, type, sizeof(type), line, STATUS_MAX);
	if (r == -ENXIO)
		cli_error("no device-mapper device '%s'", name);
	else if (r)
		cli_error("%s: %s", name, strerror(-r));
	else if (strcmp(type, TARGET)) {
		cli_error("'%s' is a %s device, not a peersnap one", name, type);
		r = -EINVAL;
	}
	return r;
}

static int detach_run(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv)
{
	struct psd_ctl_msg reply;
	char line[STATUS_MAX];
	struct cli_client c;
	const char *name;
	int r;

	r = parse_name(ctx, v, argc, argv, &name);
	if (r >= 0)
		return r;
	r = cli_client_open(ctx, &c);
	if (r)
		return r;
	r = query_peersnap(name, false, line);
	if (!r) {
		r = cli_dm_remove(name);
		if (r)
			cli_error("cannot remove %s: %s", name, strerror(-r));
	}
	if (!r) {
		cli_client_begin(&c, PSD_CTL_DETACHED);
		psd_ctl_put_str(&c.req, PSD_CTL_A_DM_NAME, name);
		r = cli_client_call(&c, &reply);
		/* Not attached with peersnap: nothing to forget. */
		if (r == -ENOENT)
			r = 0;
		if (r)
			cli_error("%s", c.err);
	}
	cli_client_close(&c);
	return r ? CLI_FAIL : CLI_OK;
}

const struct cli_verb cli_verb_detach = {
	.name = "detach",
	.args = "NAME",
	.summary = "Remove a peersnap device and tell peersnapd.",
	.help = "  NAME                the device-mapper name of a peersnap device\n"
		"\nThe chunks fetched so far stay on the cache device (recorded in\n"
		"the metadata device): attaching again reuses them.\n",
	.run = detach_run,
};

/* ---- hydrate ----------------------------------------------------------- */

static int read_status(const char *name, struct cli_target_status *ret)
{
	char line[STATUS_MAX];
	int r;

	r = query_peersnap(name, true, line);
	if (r)
		return r;
	r = cli_parse_status(line, ret);
	if (r)
		cli_error("%s: unexpected status '%s'", name, line);
	return r;
}

/* Why hydration cannot finish, or NULL while it still may. */
static const char *stuck(const struct cli_target_status *s,
			 unsigned int *idle_polls, unsigned int *agentless)
{
	*idle_polls = !s->hydrating && !s->inflight ? *idle_polls + 1 : 0;
	*agentless = !s->agent_connected ? *agentless + 1 : 0;
	if (*idle_polls >= STALLED_POLLS)
		return "hydration stopped";
	if (*agentless >= STALLED_POLLS)
		return "no agent is connected (is peersnapd running?)";
	return NULL;
}

/*
 * Polls until every chunk is present. Errors: the failed counter grows
 * (a fetch failed: the agent's log says why), the device vanishes,
 * hydration stops short (stop_hydration), or no agent answers.
 */
static int wait_hydrated(const char *name, struct cli_target_status *s)
{
	const struct timespec poll = { .tv_nsec = POLL_NS };
	uint64_t bytes = (uint64_t)s->chunk_sectors * 512, failed = s->failed;
	unsigned int idle_polls = 0, agentless = 0;
	struct cli_progress bar;
	const char *why = NULL;
	int r = 0;

	cli_progress_start(&bar, "hydrating", s->total * bytes);
	while (s->present < s->total && !why) {
		cli_progress_update(&bar, s->present * bytes);
		nanosleep(&poll, NULL);
		r = read_status(name, s);
		if (r)
			break;
		if (s->failed > failed)
			why = "chunk fetches failed (peersnapd's log says why)";
		else
			why = stuck(s, &idle_polls, &agentless);
	}
	cli_progress_end(&bar);
	if (why) {
		cli_error("%s: %s; %llu of %llu chunks present, %llu failed",
			  name, why, (unsigned long long)s->present,
			  (unsigned long long)s->total,
			  (unsigned long long)(s->failed - failed));
		r = -EIO;
	}
	return r;
}

static int hydrate_run(struct cli_ctx *ctx, const struct cli_verb *v,
		       int argc, char **argv)
{
	struct cli_target_status s;
	struct cli_json j;
	const char *name;
	int r;

	r = parse_name(ctx, v, argc, argv, &name);
	if (r >= 0)
		return r;
	if (read_status(name, &s))
		return CLI_FAIL;
	/* -EBUSY: a background range already runs; wait for it. */
	r = s.present < s.total ? cli_dm_message(name, "hydrate") : 0;
	if (r && r != -EBUSY) {
		cli_error("%s: message 'hydrate' failed: %s", name,
			  strerror(-r));
		return CLI_FAIL;
	}
	if (wait_hydrated(name, &s))
		return CLI_FAIL;
	if (ctx->json) {
		cli_json_start_object(&j, stdout);
		cli_json_key_string(&j, "name", name);
		cli_json_key_u64(&j, "chunks", s.total);
		cli_json_key_u64(&j, "fetched", s.fetched);
		cli_json_finish_object(&j);
	} else {
		fprintf(stderr, "peersnap: %s: all %llu chunks present\n", name,
			(unsigned long long)s.total);
	}
	return CLI_OK;
}

const struct cli_verb cli_verb_hydrate = {
	.name = "hydrate",
	.args = "NAME",
	.summary = "Fetch every missing chunk of a peersnap device, and wait.",
	.help = "  NAME                the device-mapper name of a peersnap device\n"
		"\nSends the 'hydrate' message and follows the device's status until\n"
		"every chunk is present. Fails if a fetch fails or the device goes.\n",
	.run = hydrate_run,
};
