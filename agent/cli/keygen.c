// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap keygen: makes this host's Ed25519 identity at the configured
 * path (identity.h: mode 0600, never overwrites). No daemon needed.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "identity.h"
#include "json.h"

/* The state directory may not exist on a fresh host: make the key's
 * directory (one level, private) so keygen is the first step. */
static int make_parent_dir(const char *path)
{
	char *copy = strdup(path);
	int r = 0;

	if (!copy)
		return -ENOMEM;
	if (mkdir(dirname(copy), 0700) < 0 && errno != EEXIST)
		r = -errno;
	free(copy);
	return r;
}

static void print_key(const struct cli_ctx *ctx, const char *path,
		      const struct psd_identity *id)
{
	char hex[PSD_PUBKEY_HEX_LEN + 1];
	struct cli_json j;

	psd_pubkey_format(id->pk, hex);
	if (!ctx->json) {
		printf("%s\n", hex);
		fprintf(stderr, "peersnap: identity written to %s\n", path);
		return;
	}
	cli_json_start_object(&j, stdout);
	cli_json_key_string(&j, "path", path);
	cli_json_key_string(&j, "public_key", hex);
	cli_json_finish_object(&j);
}

static int keygen_run(struct cli_ctx *ctx, const struct cli_verb *v,
		      int argc, char **argv)
{
	const struct psd_config *cfg;
	struct psd_identity id;
	char err[512], *path;
	int r;

	r = cli_parse_plain(ctx, v, argc, argv, 0, NULL);
	if (r >= 0)
		return r;
	r = cli_config(ctx, &cfg);
	if (r < 0)
		return cli_config_status(r);
	path = psd_config_identity_path(cfg);
	if (!path) {
		cli_error("out of memory");
		return CLI_FAIL;
	}
	r = make_parent_dir(path);
	if (r < 0) {
		cli_error("%s: cannot create its directory: %s", path,
			  strerror(-r));
	} else {
		r = psd_identity_keygen(path, &id, err, sizeof(err));
		if (r == -EEXIST)
			cli_error("%s (an identity exists; remove it first to "
				  "replace it, which orphans what it signed)",
				  err);
		else if (r < 0)
			cli_error("%s", err);
	}
	if (r == 0)
		print_key(ctx, path, &id);
	psd_identity_wipe(&id);
	free(path);
	return r ? CLI_FAIL : CLI_OK;
}

const struct cli_verb cli_verb_keygen = {
	.name = "keygen",
	.args = "",
	.summary = "Make this host's Ed25519 identity (refuses to overwrite one).",
	.help = "Writes the identity key file named by the configuration's\n"
		"'identity' (default <state_dir>/" PSD_IDENTITY_FILE
		"), mode 0600, and prints\n"
		"the public key: give it to peers as a trusted publisher.\n",
	.run = keygen_run,
};
