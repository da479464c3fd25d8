// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap status and peersnap peers: peersnapd's counters and its peers,
 * printed as the daemon names them (the set of counters may grow).
 */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "client.h"
#include "json.h"

static void status_text(const struct cli_client *c, const struct psd_ctl_msg *m)
{
	uint64_t up = psd_ctl_u64(&m->at, PSD_CTL_A_UPTIME);
	struct psd_ctl_attrs e;
	uint32_t pos = 0;

	printf("peersnapd %s, up %" PRIu64 "d %02" PRIu64 ":%02" PRIu64
	       ":%02" PRIu64 "\n", c->daemon_version, up / 86400,
	       up / 3600 % 24, up / 60 % 60, up % 60);
	while (psd_ctl_nest_next(m, PSD_CTL_A_COUNTER, &pos, &e) == 1)
		printf("  %-24s %" PRIu64 "\n", psd_ctl_str(&e, PSD_CTL_A_NAME),
		       psd_ctl_u64(&e, PSD_CTL_A_VALUE));
}

static void status_json(const struct cli_client *c, const struct psd_ctl_msg *m)
{
	struct psd_ctl_attrs e;
	struct cli_json j;
	uint32_t pos = 0;

	cli_json_start_object(&j, stdout);
	cli_json_key_string(&j, "daemon_version", c->daemon_version);
	cli_json_key_u64(&j, "uptime",
			 psd_ctl_u64(&m->at, PSD_CTL_A_UPTIME));
	cli_json_key(&j, "counters");
	cli_json_begin_object(&j);
	while (psd_ctl_nest_next(m, PSD_CTL_A_COUNTER, &pos, &e) == 1) {
		cli_json_key(&j, psd_ctl_str(&e, PSD_CTL_A_NAME));
		cli_json_u64(&j, psd_ctl_u64(&e, PSD_CTL_A_VALUE));
	}
	cli_json_end_object(&j);
	cli_json_finish_object(&j);
}

static void peers_text(const struct cli_client *c, const struct psd_ctl_msg *m)
{
	struct psd_ctl_attrs e;
	uint32_t pos = 0;
	const char *state;
	unsigned int n = 0;

	(void)c;
	while (psd_ctl_nest_next(m, PSD_CTL_A_PEER, &pos, &e) == 1) {
		if (!n++)
			printf("%-40s  %s\n", "ADDRESS", "STATE");
		state = psd_ctl_str(&e, PSD_CTL_A_STATE);
		printf("%-40s  %s\n", psd_ctl_str(&e, PSD_CTL_A_ADDRESS),
		       state ? state : "-");
	}
	if (!n)
		fprintf(stderr, "peersnap: no peers\n");
}

static void peers_json(const struct cli_client *c, const struct psd_ctl_msg *m)
{
	struct psd_ctl_attrs e;
	struct cli_json j;
	uint32_t pos = 0;
	const char *state;

	(void)c;
	cli_json_init(&j, stdout);
	cli_json_begin_array(&j);
	while (psd_ctl_nest_next(m, PSD_CTL_A_PEER, &pos, &e) == 1) {
		cli_json_begin_object(&j);
		cli_json_key_string(&j, "address",
				    psd_ctl_str(&e, PSD_CTL_A_ADDRESS));
		cli_json_key(&j, "state");
		state = psd_ctl_str(&e, PSD_CTL_A_STATE);
		if (state)
			cli_json_string(&j, state);
		else
			cli_json_null(&j);
		cli_json_end_object(&j);
	}
	cli_json_end_array(&j);
	cli_json_finish(&j);
}

typedef void (*print_fn)(const struct cli_client *c,
			 const struct psd_ctl_msg *m);

/* One request without arguments, its reply printed as text or JSON. */
static int query(struct cli_ctx *ctx, const struct cli_verb *v, int argc,
		 char **argv, uint16_t type, print_fn text, print_fn json)
{
	struct cli_client c;
	struct psd_ctl_msg m;
	int r;

	r = cli_client_open_plain(ctx, v, argc, argv, &c);
	if (r >= 0)
		return r;
	cli_client_begin(&c, type);
	r = cli_client_call(&c, &m);
	if (r)
		cli_error("%s", c.err);
	else
		(ctx->json ? json : text)(&c, &m);
	cli_client_close(&c);
	return r ? CLI_FAIL : CLI_OK;
}

static int status_run(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv)
{
	return query(ctx, v, argc, argv, PSD_CTL_STATUS, status_text,
		     status_json);
}

static int peers_run(struct cli_ctx *ctx, const struct cli_verb *v,
		     int argc, char **argv)
{
	return query(ctx, v, argc, argv, PSD_CTL_PEERS, peers_text,
		     peers_json);
}

const struct cli_verb cli_verb_status = {
	.name = "status",
	.args = "",
	.summary = "Show peersnapd's version, uptime and counters.",
	.help = "",
	.run = status_run,
};

const struct cli_verb cli_verb_peers = {
	.name = "peers",
	.args = "",
	.summary = "List peersnapd's peers and their state.",
	.help = "",
	.run = peers_run,
};
