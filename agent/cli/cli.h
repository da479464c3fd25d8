/* SPDX-License-Identifier: GPL-2.0 */
/*
 * peersnap, the command-line tool: what the verbs share.
 *
 * Each verb lives in its own file (or a small group) and exports one
 * struct cli_verb; main.c holds the table. A verb's run() gets argv with
 * argv[0] = "peersnap VERB" and returns the exit status: CLI_OK,
 * CLI_FAIL (the work failed; a message was printed) or CLI_USAGE (bad
 * arguments; the message quotes them). Inside, functions return -errno
 * and only the verb's top level prints (wireguard-tools' habit).
 */
#ifndef PSC_CLI_H
#define PSC_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define CLI_VERSION	"0.1.0"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

struct cli_ctx {
	const char *config_path;	/* --config; NULL: the default file */
	const char *socket_path;	/* --socket; NULL: the config's */
	bool json;			/* --json */
	bool config_loaded;
	struct psd_config cfg;
};

struct cli_verb {
	const char *name;
	const char *args;		/* synopsis after the verb */
	const char *summary;		/* one line */
	const char *help;		/* options and details, may be "" */
	int (*run)(struct cli_ctx *ctx, const struct cli_verb *v,
		   int argc, char **argv);
};

extern const struct cli_verb cli_verb_keygen, cli_verb_publish,
	cli_verb_ls, cli_verb_show, cli_verb_attach, cli_verb_table,
	cli_verb_detach, cli_verb_hydrate, cli_verb_pull, cli_verb_commit,
	cli_verb_status, cli_verb_peers;

/* Messages: "peersnap: ..." on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "peersnap VERB: ..." and a hint at --help on stderr; returns CLI_USAGE. */
int cli_usage_error(const struct cli_verb *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void cli_print_help(const struct cli_verb *v, FILE *out);

/*
 * The options every verb takes (--help, --json): getopt_long entries and
 * their handling. cli_common_option() returns -1 when the caller goes on
 * parsing, else the exit status (help printed, or a usage error).
 */
#define CLI_COMMON_OPTIONS \
	{ "help", no_argument, NULL, 'h' }, \
	{ "json", no_argument, NULL, 'j' }
#define CLI_COMMON_SHORT "hj"
int cli_common_option(struct cli_ctx *ctx, const struct cli_verb *v, int c);

/*
 * getopt_long() over a verb's options (opts with CLI_COMMON_OPTIONS,
 * shortopts starting with CLI_COMMON_SHORT), the common ones handled
 * here. Returns the next option of the verb's own, or -1 when there is
 * none: *status is then -1 at the end of the options (go on) or the exit
 * status (help printed, or a usage error).
 */
int cli_next_option(struct cli_ctx *ctx, const struct cli_verb *v,
		    int argc, char **argv, const char *shortopts,
		    const struct option *opts, int *status);

/*
 * Checks the positional arguments left after getopt: exactly n, named by
 * names[] in the messages ("missing NAME", "unexpected argument 'x'").
 */
int cli_positionals(const struct cli_verb *v, int argc, char **argv,
		    int n, const char *const names[]);

/*
 * The whole parse of a verb without options of its own: the common ones,
 * then exactly n positionals (left at argv[optind]). -1 to go on, else
 * the exit status.
 */
int cli_parse_plain(struct cli_ctx *ctx, const struct cli_verb *v,
		    int argc, char **argv, int n, const char *const names[]);

/*
 * Checks of the arguments several verbs take; a usage error that quotes
 * the argument, or -1 to go on. A snapshot ID: 8 to 64 hex digits. The
 * --name of a new snapshot: given, 1 to PSD_MANIFEST_NAME_MAX bytes.
 */
int cli_check_snapshot_id(const struct cli_verb *v, const char *id);
int cli_check_snapshot_name(const struct cli_verb *v, const char *name);

/* Loads the configuration once (--config, or the default file if it
 * exists, else defaults). Prints the reason on failure: -EINVAL for a bad
 * file (exit CLI_USAGE), another -errno otherwise. */
int cli_config(struct cli_ctx *ctx, const struct psd_config **ret);

/* The exit status for a cli_config() failure. */
int cli_config_status(int err);

#endif /* PSC_CLI_H */
