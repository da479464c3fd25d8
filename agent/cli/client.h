/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The CLI's end of the control socket (docs/control.md): connect and
 * HELLO, then one request and its reply at a time, blocking.
 *
 * Every failure returns -errno and leaves a one-line reason in c->err,
 * which the verb prints as it is: the daemon's MESSAGE for an ERROR reply,
 * else what went wrong locally (connect, a short read, a malformed reply).
 */
#ifndef PSC_CLIENT_H
#define PSC_CLIENT_H

#include <stdint.h>

#include "cli.h"
#include "ctl.h"

struct cli_client {
	int fd;
	uint32_t seq;
	uint16_t req_type;
	struct psd_ctl_buf req;		/* the request being built */
	uint8_t *in;			/* the last reply frame */
	size_t in_cap;
	char daemon_version[64];
	char err[PSD_CTL_STRING_MAX + 128];
};

/*
 * Connects to the socket of --socket or the configuration and says HELLO.
 * On failure prints the reason (the missing daemon's message included)
 * and returns the exit status; CLI_OK on success.
 */
int cli_client_open(struct cli_ctx *ctx, struct cli_client *c);
void cli_client_close(struct cli_client *c);

/*
 * The start of a verb without options or arguments of its own that asks
 * the daemon: cli_parse_plain(), then cli_client_open(). -1 with c open
 * to go on, else the exit status.
 */
int cli_client_open_plain(struct cli_ctx *ctx, const struct cli_verb *v,
			  int argc, char **argv, struct cli_client *c);

/* Starts a request of this type in c->req; add attributes with
 * psd_ctl_put_*(&c->req, ...), then cli_client_call(). */
void cli_client_begin(struct cli_client *c, uint16_t type);

/*
 * Sends c->req and reads its reply: 0 with *ret pointing into c->in
 * (valid until the next call), or -errno (the daemon's ERRNO for an
 * ERROR reply) with c->err set.
 */
int cli_client_call(struct cli_client *c, struct psd_ctl_msg *ret);

#endif /* PSC_CLIENT_H */
