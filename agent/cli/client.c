// SPDX-License-Identifier: GPL-2.0
/* The control-socket client: see client.h and docs/control.md. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "fdio.h"

static int fail(struct cli_client *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct cli_client *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return err;
}

/* -EPIPE at the end of the stream: the daemon closed the connection. */
static int read_all(int fd, uint8_t *p, size_t len)
{
	size_t got;
	int r = psd_read_full(fd, p, len, &got);

	return r ? r : got < len ? -EPIPE : 0;
}

static int ensure_in(struct cli_client *c, size_t len)
{
	uint8_t *p;

	if (len <= c->in_cap)
		return 0;
	p = realloc(c->in, len);
	if (!p)
		return -ENOMEM;
	c->in = p;
	c->in_cap = len;
	return 0;
}

static int read_frame(struct cli_client *c, uint32_t *ret_len)
{
	struct psd_ctl_err perr;
	uint32_t len = 0;
	int r;

	r = ensure_in(c, PSD_CTL_HDR_LEN);
	if (!r)
		r = read_all(c->fd, c->in, PSD_CTL_HDR_LEN);
	if (r == -EPIPE)
		return fail(c, r, "peersnapd closed the connection");
	if (r)
		return fail(c, r, "reading from peersnapd: %s", strerror(-r));
	r = psd_ctl_frame_len(c->in, PSD_CTL_HDR_LEN, &len, &perr);
	if (r)
		return fail(c, -EPROTO, "bad reply from peersnapd: %s",
			    perr.msg);
	r = ensure_in(c, len);
	if (!r)
		r = read_all(c->fd, c->in + PSD_CTL_HDR_LEN,
			     len - PSD_CTL_HDR_LEN);
	if (r)
		return fail(c, r, "reading from peersnapd: %s", strerror(-r));
	*ret_len = len;
	return 0;
}

/* An ERROR frame: its errno (kept in range) and its message. */
static int error_reply(struct cli_client *c, const struct psd_ctl_msg *m)
{
	int32_t e = psd_ctl_s32(&m->at, PSD_CTL_A_ERRNO);
	const char *msg = psd_ctl_str(&m->at, PSD_CTL_A_MESSAGE);

	if (e >= 0 || e < -4095)
		e = -EPROTO;
	return fail(c, e, "%s", msg ? msg : strerror(-e));
}

void cli_client_begin(struct cli_client *c, uint16_t type)
{
	c->req_type = type;
	psd_ctl_begin(&c->req, type, ++c->seq);
}

int cli_client_call(struct cli_client *c, struct psd_ctl_msg *ret)
{
	uint16_t type = c->req_type;
	struct psd_ctl_err perr;
	uint32_t len = 0;
	int r;

	r = psd_ctl_finish(&c->req);
	if (r)
		return fail(c, r, "cannot build the %s request: %s",
			    psd_ctl_type_name(type), strerror(-r));
	r = psd_send_full(c->fd, c->req.p, c->req.len);
	if (r)
		return fail(c, r, "writing to peersnapd: %s", strerror(-r));
	r = read_frame(c, &len);
	if (r)
		return r;
	r = psd_ctl_parse(c->in, len, ret, &perr);
	if (r)
		return fail(c, -EPROTO, "bad reply from peersnapd: %s",
			    perr.msg);
	if (ret->type == PSD_CTL_ERROR)
		return error_reply(c, ret);
	if (ret->seq != c->seq || ret->type != (type | PSD_CTL_REPLY))
		return fail(c, -EPROTO,
			    "bad reply from peersnapd: %s (seq %u) to %s (seq %u)",
			    psd_ctl_type_name(ret->type), ret->seq,
			    psd_ctl_type_name(type), c->seq);
	return 0;
}

static int connect_socket(struct cli_client *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return fail(c, -ENAMETOOLONG,
			    "control socket path too long: '%s'", path);
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail(c, -errno, "socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail(c, -errno,
			    "cannot reach peersnapd at %s: %s (is peersnapd running?)",
			    path, strerror(errno));
	return 0;
}

static int hello(struct cli_client *c)
{
	struct psd_ctl_msg m;
	const char *v;
	int r;

	cli_client_begin(c, PSD_CTL_HELLO);
	psd_ctl_put_u32(&c->req, PSD_CTL_A_VERSION, PSD_CTL_VERSION);
	r = cli_client_call(c, &m);
	if (r)
		return r;
	if (psd_ctl_u32(&m.at, PSD_CTL_A_VERSION) != PSD_CTL_VERSION)
		return fail(c, -EPROTONOSUPPORT,
			    "peersnapd speaks control protocol %u, not %u",
			    psd_ctl_u32(&m.at, PSD_CTL_A_VERSION),
			    PSD_CTL_VERSION);
	v = psd_ctl_str(&m.at, PSD_CTL_A_DAEMON_VERSION);
	snprintf(c->daemon_version, sizeof(c->daemon_version), "%s",
		 v ? v : "?");
	return 0;
}

int cli_client_open(struct cli_ctx *ctx, struct cli_client *c)
{
	const struct psd_config *cfg;
	const char *path = ctx->socket_path;
	int r;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (!path) {
		r = cli_config(ctx, &cfg);
		if (r < 0)
			return cli_config_status(r);
		path = cfg->control_socket;
	}
	r = connect_socket(c, path);
	if (!r)
		r = hello(c);
	if (r) {
		cli_error("%s", c->err);
		cli_client_close(c);
		return CLI_FAIL;
	}
	return CLI_OK;
}

int cli_client_open_plain(struct cli_ctx *ctx, const struct cli_verb *v,
			  int argc, char **argv, struct cli_client *c)
{
	int r = cli_parse_plain(ctx, v, argc, argv, 0, NULL);

	if (r >= 0)
		return r;
	r = cli_client_open(ctx, c);
	return r ? r : -1;
}

void cli_client_close(struct cli_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	psd_ctl_buf_free(&c->req);
	free(c->in);
	c->in = NULL;
	c->in_cap = 0;
}
