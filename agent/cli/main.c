// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap: the command-line tool. Global options, the table of verbs,
 * and the helpers every verb uses for its arguments and messages.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkhash.h"
#include "cli.h"
#include "manifest.h"
#include "parse.h"

static const struct cli_verb *const verbs[] = {
	&cli_verb_keygen,  &cli_verb_publish, &cli_verb_ls,
	&cli_verb_show,    &cli_verb_attach,  &cli_verb_table,
	&cli_verb_detach,  &cli_verb_hydrate, &cli_verb_pull,
	&cli_verb_commit,  &cli_verb_status,  &cli_verb_peers,
};

#define N_VERBS	(sizeof(verbs) / sizeof(verbs[0]))

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("peersnap: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const struct cli_verb *v, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "peersnap %s: ", v->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUsage: peersnap %s %s\nTry 'peersnap %s --help'.\n",
		v->name, v->args, v->name);
	return CLI_USAGE;
}

void cli_print_help(const struct cli_verb *v, FILE *out)
{
	fprintf(out, "Usage: peersnap %s %s\n%s\n", v->name, v->args,
		v->summary);
	if (*v->help)
		fprintf(out, "\n%s", v->help);
	fputs("\n  -j, --json          machine-readable output (JSON)\n"
	      "  -h, --help          show this help and exit\n", out);
}

int cli_common_option(struct cli_ctx *ctx, const struct cli_verb *v, int c)
{
	switch (c) {
	case 'h':
		cli_print_help(v, stdout);
		return CLI_OK;
	case 'j':
		ctx->json = true;
		return -1;
	default:
		/* getopt_long already said what was wrong. */
		fprintf(stderr, "Usage: peersnap %s %s\nTry 'peersnap %s --help'.\n",
			v->name, v->args, v->name);
		return CLI_USAGE;
	}
}

int cli_next_option(struct cli_ctx *ctx, const struct cli_verb *v,
		    int argc, char **argv, const char *shortopts,
		    const struct option *opts, int *status)
{
	int c;

	*status = -1;
	while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		/* '?': getopt_long found a bad option and said so. */
		if (c != '?' && !strchr(CLI_COMMON_SHORT, c))
			return c;
		*status = cli_common_option(ctx, v, c);
		if (*status >= 0)
			return -1;
	}
	return -1;
}

int cli_positionals(const struct cli_verb *v, int argc, char **argv,
		    int n, const char *const names[])
{
	if (argc < n)
		return cli_usage_error(v, "missing %s", names[argc]);
	if (argc > n)
		return cli_usage_error(v, "unexpected argument '%s'", argv[n]);
	return CLI_OK;
}

int cli_parse_plain(struct cli_ctx *ctx, const struct cli_verb *v,
		    int argc, char **argv, int n, const char *const names[])
{
	static const struct option opts[] = { CLI_COMMON_OPTIONS, {} };
	int r;

	/* No option of its own: the helper returns none. */
	cli_next_option(ctx, v, argc, argv, CLI_COMMON_SHORT, opts, &r);
	if (r >= 0)
		return r;
	r = cli_positionals(v, argc - optind, argv + optind, n, names);
	return r ? r : -1;
}

int cli_check_snapshot_id(const struct cli_verb *v, const char *id)
{
	if (cli_check_id_arg(id))
		return cli_usage_error(v,
			"bad snapshot id '%s': expected 8 to 64 hex digits",
			id);
	return -1;
}

int cli_check_snapshot_name(const struct cli_verb *v, const char *name)
{
	if (!name)
		return cli_usage_error(v, "missing --name");
	if (!*name || strlen(name) > PSD_MANIFEST_NAME_MAX)
		return cli_usage_error(v, "--name '%s': expected 1 to %d bytes",
				       name, PSD_MANIFEST_NAME_MAX);
	return -1;
}

int cli_config(struct cli_ctx *ctx, const struct psd_config **ret)
{
	const char *path = ctx->config_path ? ctx->config_path
					     : PSD_CONFIG_DEFAULT_PATH;
	char err[512];
	int r;

	if (!ctx->config_loaded) {
		/* As peersnapd: a missing default file means all defaults. */
		if (!ctx->config_path && access(path, F_OK) < 0)
			r = psd_config_init(&ctx->cfg);
		else
			r = psd_config_load(path, &ctx->cfg, err, sizeof(err));
		if (r == -ENOMEM)
			snprintf(err, sizeof(err), "out of memory");
		if (r < 0) {
			cli_error("%s", err);
			return r;
		}
		ctx->config_loaded = true;
	}
	*ret = &ctx->cfg;
	return 0;
}

int cli_config_status(int err)
{
	return err == -EINVAL ? CLI_USAGE : CLI_FAIL;
}

static void usage(FILE *out)
{
	size_t i;

	fputs("Usage: peersnap [OPTION]... COMMAND [ARG]...\n"
	      "Publish, share, attach and commit peersnap snapshots.\n"
	      "\n"
	      "  -s, --socket PATH   peersnapd's control socket (default: the\n"
	      "                      configuration's control_socket, "
	      PSD_DEFAULT_CONTROL_SOCKET ")\n"
	      "  -c, --config FILE   configuration file, as peersnapd's (default\n"
	      "                      " PSD_CONFIG_DEFAULT_PATH
	      "; a missing default\n"
	      "                      file means all defaults)\n"
	      "  -j, --json          machine-readable output (JSON)\n"
	      "  -h, --help          show this help and exit\n"
	      "  -V, --version       show the version and exit\n"
	      "\nCommands:\n", out);
	for (i = 0; i < N_VERBS; i++)
		fprintf(out, "  %-8s %s\n", verbs[i]->name, verbs[i]->summary);
	fputs("\n'peersnap COMMAND --help' describes a command.\n"
	      "Exit status: 0 on success, 1 on failure, 2 on bad usage.\n",
	      out);
}

/* Global options stop at the first non-option: the verb. */
static int parse_global(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "+s:c:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctx->socket_path = optarg;
			break;
		case 'c':
			ctx->config_path = optarg;
			break;
		case 'j':
			ctx->json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		case 'V':
			printf("peersnap %s\n", CLI_VERSION);
			return CLI_OK;
		default:
			fputs("Try 'peersnap --help'.\n", stderr);
			return CLI_USAGE;
		}
	}
	return -1;
}

static const struct cli_verb *find_verb(const char *name)
{
	size_t i;

	for (i = 0; i < N_VERBS; i++)
		if (!strcmp(verbs[i]->name, name))
			return verbs[i];
	return NULL;
}

static int run_verb(struct cli_ctx *ctx, int argc, char **argv)
{
	const struct cli_verb *v = find_verb(argv[0]);
	char *prog;
	int r;

	if (!v) {
		cli_error("unknown command '%s'", argv[0]);
		fputs("Try 'peersnap --help'.\n", stderr);
		return CLI_USAGE;
	}
	/* getopt_long's own messages then read "peersnap VERB: ...". */
	if (asprintf(&prog, "peersnap %s", v->name) < 0) {
		cli_error("out of memory");
		return CLI_FAIL;
	}
	argv[0] = prog;
	optind = 0;
	r = v->run(ctx, v, argc, argv);
	free(prog);
	return r;
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx = {};
	int r;

	r = parse_global(&ctx, argc, argv);
	if (r >= 0)
		return r;
	if (optind >= argc) {
		cli_error("missing command");
		fputs("Try 'peersnap --help'.\n", stderr);
		return CLI_USAGE;
	}
	if (psd_chunkhash_init() < 0) {
		cli_error("libsodium cannot initialise");
		return CLI_FAIL;
	}
	r = run_verb(&ctx, argc - optind, argv + optind);
	if (ctx.config_loaded)
		psd_config_free(&ctx.cfg);
	return r;
}
