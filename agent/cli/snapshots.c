// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap ls and peersnap show ID: the snapshots in peersnapd's store,
 * as a table (ls) or one manifest in full (show), or as JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "client.h"
#include "identity.h"
#include "json.h"
#include "origin.h"
#include "parse.h"
#include "progress.h"
#include "remote.h"

/* How many hex digits of an id the table shows: still unique in practice,
 * and more than the 8 that show accepts. */
#define SHORT_ID	16

static void format_time(char *buf, size_t cap, uint64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t > INT64_MAX || !gmtime_r(&tt, &tm) ||
	    !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, cap, "@%" PRIu64, t);
}

/* ---- ls ---------------------------------------------------------------- */

struct ls_out {
	const struct cli_ctx *ctx;
	struct cli_json j;
	unsigned long n;
};

static void ls_entry_json(struct ls_out *o, const struct psd_ctl_attrs *e)
{
	struct cli_json *j = &o->j;
	uint32_t len;

	cli_json_begin_object(j);
	cli_json_key_id(j, "id", psd_ctl_bytes(e, PSD_CTL_A_ID, &len));
	cli_json_key_string(j, "name", psd_ctl_str(e, PSD_CTL_A_NAME));
	cli_json_key_u64(j, "size", psd_ctl_u64(e, PSD_CTL_A_SIZE));
	cli_json_key_u64(j, "chunk_size", psd_ctl_u32(e, PSD_CTL_A_CHUNK_SIZE));
	cli_json_key_u64(j, "chunk_count",
			 psd_ctl_u64(e, PSD_CTL_A_CHUNK_COUNT));
	cli_json_key_u64(j, "created", psd_ctl_u64(e, PSD_CTL_A_CREATED));
	cli_json_key_id(j, "parent", psd_ctl_bytes(e, PSD_CTL_A_PARENT, &len));
	cli_json_key_id(j, "publisher",
			psd_ctl_bytes(e, PSD_CTL_A_PUBLISHER, &len));
	cli_json_key(j, "has_origin");
	cli_json_bool(j, psd_ctl_u8(e, PSD_CTL_A_HAS_ORIGIN));
	cli_json_end_object(j);
}

static void ls_entry_text(struct ls_out *o, const struct psd_ctl_attrs *e)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1], size[16], when[32], chunk[16];
	uint32_t len;

	if (!o->n)
		printf("%-*s  %-10s  %-8s  %-20s  %-6s  %s\n", SHORT_ID, "ID",
		       "SIZE", "CHUNK", "CREATED", "ORIGIN", "NAME");
	psd_hex_id_format(psd_ctl_bytes(e, PSD_CTL_A_ID, &len), hex);
	cli_format_bytes(size, sizeof(size),
			 (double)psd_ctl_u64(e, PSD_CTL_A_SIZE));
	cli_format_bytes(chunk, sizeof(chunk),
			 psd_ctl_u32(e, PSD_CTL_A_CHUNK_SIZE));
	format_time(when, sizeof(when), psd_ctl_u64(e, PSD_CTL_A_CREATED));
	printf("%.*s  %-10s  %-8s  %-20s  %-6s  %s\n", SHORT_ID, hex, size,
	       chunk, when, psd_ctl_u8(e, PSD_CTL_A_HAS_ORIGIN) ? "yes" : "no",
	       psd_ctl_str(e, PSD_CTL_A_NAME));
}

/* One LIST reply's entries; *ret_after the last id, *ret_more. */
static int ls_page(struct cli_client *c, struct ls_out *o, uint8_t *after,
		   bool *more)
{
	struct psd_ctl_attrs e;
	struct psd_ctl_msg m;
	uint32_t pos = 0, len;
	int r;

	cli_client_begin(c, PSD_CTL_LIST);
	if (o->n)
		psd_ctl_put_bytes(&c->req, PSD_CTL_A_AFTER, after,
				  PSD_HASH_LEN);
	r = cli_client_call(c, &m);
	if (r)
		return r;
	*more = psd_ctl_u8(&m.at, PSD_CTL_A_MORE);
	while (psd_ctl_nest_next(&m, PSD_CTL_A_SNAPSHOT, &pos, &e) == 1) {
		if (o->ctx->json)
			ls_entry_json(o, &e);
		else
			ls_entry_text(o, &e);
		memcpy(after, psd_ctl_bytes(&e, PSD_CTL_A_ID, &len),
		       PSD_HASH_LEN);
		o->n++;
	}
	/* MORE without entries would loop for ever. */
	if (*more && !pos) {
		snprintf(c->err, sizeof(c->err),
			 "bad LIST reply: more entries announced, none sent");
		return -EPROTO;
	}
	return 0;
}

static int ls_run(struct cli_ctx *ctx, const struct cli_verb *v, int argc,
		  char **argv)
{
	struct ls_out o = { .ctx = ctx };
	uint8_t after[PSD_HASH_LEN];
	struct cli_client c;
	bool more;
	int r;

	r = cli_client_open_plain(ctx, v, argc, argv, &c);
	if (r >= 0)
		return r;
	cli_json_init(&o.j, stdout);
	if (ctx->json)
		cli_json_begin_array(&o.j);
	do
		r = ls_page(&c, &o, after, &more);
	while (!r && more);
	if (ctx->json) {
		cli_json_end_array(&o.j);
		cli_json_finish(&o.j);
	} else if (!r && !o.n) {
		fprintf(stderr, "peersnap: no snapshots\n");
	}
	if (r)
		cli_error("%s", c.err);
	cli_client_close(&c);
	return r ? CLI_FAIL : CLI_OK;
}

const struct cli_verb cli_verb_ls = {
	.name = "ls",
	.args = "",
	.summary = "List the snapshots in peersnapd's store.",
	.help = "Columns: the id's first 16 hex digits, size, chunk size, creation\n"
		"time (UTC), whether an origin image serves it, and the name.\n",
	.run = ls_run,
};

/* ---- show -------------------------------------------------------------- */

static void show_text(const struct psd_manifest *m)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1], when[32], size[16];

	psd_hex_id_format(m->id, hex);
	printf("id:               %s\n", hex);
	printf("name:             %s\n", m->name);
	cli_format_bytes(size, sizeof(size), (double)m->geo.size);
	printf("size:             %" PRIu64 " (%s)\n", m->geo.size, size);
	printf("chunk size:       %u\n", m->geo.chunk_size);
	printf("chunks:           %" PRIu64 "\n", m->geo.chunk_count);
	printf("index chunk size: %u\n", m->geo.index_chunk_size);
	printf("index chunks:     %u\n", m->geo.index_count);
	format_time(when, sizeof(when), m->created);
	printf("created:          %s\n", when);
	if (m->has_parent)
		psd_hex_id_format(m->parent, hex);
	printf("parent:           %s\n", m->has_parent ? hex : "-");
	psd_pubkey_format(m->publisher, hex);
	printf("publisher:        %s\n", hex);
	printf("manifest bytes:   %zu\n", m->raw_len);
}

static void show_json(const struct psd_manifest *m)
{
	struct cli_json j;

	cli_json_start_object(&j, stdout);
	cli_json_key_id(&j, "id", m->id);
	cli_json_key_string(&j, "name", m->name);
	cli_json_key_u64(&j, "size", m->geo.size);
	cli_json_key_u64(&j, "chunk_size", m->geo.chunk_size);
	cli_json_key_u64(&j, "chunk_count", m->geo.chunk_count);
	cli_json_key_u64(&j, "index_chunk_size", m->geo.index_chunk_size);
	cli_json_key_u64(&j, "index_count", m->geo.index_count);
	cli_json_key_u64(&j, "created", m->created);
	cli_json_key_id(&j, "parent", m->has_parent ? m->parent : NULL);
	cli_json_key_id(&j, "publisher", m->publisher);
	cli_json_key_u64(&j, "manifest_bytes", m->raw_len);
	cli_json_finish_object(&j);
}

static int show_run(struct cli_ctx *ctx, const struct cli_verb *v,
		    int argc, char **argv)
{
	static const char *const names[] = { "ID" };
	struct psd_manifest *m;
	struct cli_client c;
	const char *id;
	int r;

	r = cli_parse_plain(ctx, v, argc, argv, 1, names);
	if (r >= 0)
		return r;
	id = argv[optind];
	r = cli_check_snapshot_id(v, id);
	if (r >= 0)
		return r;
	r = cli_client_open(ctx, &c);
	if (r)
		return r;
	r = cli_remote_manifest(&c, id, NULL, &m);
	if (r) {
		cli_error("%s", c.err);
	} else {
		if (ctx->json)
			show_json(m);
		else
			show_text(m);
		psd_manifest_free(m);
	}
	cli_client_close(&c);
	return r ? CLI_FAIL : CLI_OK;
}

const struct cli_verb cli_verb_show = {
	.name = "show",
	.args = "ID",
	.summary = "Show a snapshot's manifest.",
	.help = "  ID                  a snapshot id, or a unique prefix of 8+ hex digits\n",
	.run = show_run,
};
