// SPDX-License-Identifier: GPL-2.0
/*
 * The daemon's control socket: see control.h and docs/control.md. This
 * file is the socket, the clients and their frames; the requests are
 * answered by control_requests.c and control_add.c.
 *
 * A client's life, one operation in flight at a time:
 *
 *   accept -> (peer not root, or no free slot: ERROR, close)
 *   RECV  the header, then exactly the rest of the frame
 *   BUSY  the request is being answered (READ waits for the store here)
 *   SEND  the reply, resubmitting short sends; then RECV again, or close
 *         if the reply was the last word (a malformed frame, a failed
 *         handshake)
 *
 * A slot is freed only from a completion with nothing else in flight, so
 * a buffer is never freed under the kernel; a generation in user_data
 * tells a reused slot's completions apart.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control_internal.h"
#include "log.h"

/* Buffers larger than this are freed once their request is answered. */
#define KEEP_BUFFER		(64u << 10)
#define LISTEN_BACKLOG		16
#define ACCEPT_RETRY_MS		100

enum { UD_ACCEPT, UD_ACCEPT_RETRY };

static void arm_accept(struct psd_control *c);
static void arm_recv(struct psd_control *c, struct client *cl);

/* ---- the socket file --------------------------------------------------- */

static int make_parent_dir(const char *path, char *err, size_t errlen)
{
	char *dir = strdup(path), *slash;
	int r = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			snprintf(err, errlen, "control socket directory '%s': %s",
				 dir, strerror(errno));
		}
	}
	free(dir);
	return r;
}

static int fill_addr(struct sockaddr_un *sa, const char *path, char *err,
		     size_t errlen)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (path[0] != '/') {
		snprintf(err, errlen, "control socket '%s': not an absolute path",
			 path);
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(sa->sun_path)) {
		snprintf(err, errlen, "control socket '%s': longer than %zu bytes",
			 path, sizeof(sa->sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sa->sun_path, path, strlen(path));
	return 0;
}

/*
 * A socket file left by a daemon that died is removed; one that a live
 * daemon listens on, or anything that is not a socket, is left alone.
 */
static int clear_stale(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket '%s' exists and is not a socket",
			 sa->sun_path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0) {
		snprintf(err, errlen, "control socket '%s': another peersnapd listens there",
			 sa->sun_path);
		return -EADDRINUSE;
	}
	if (errno != ECONNREFUSED)
		return -errno;
	psd_info("removing stale control socket %s", sa->sun_path);
	if (unlink(sa->sun_path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int listen_on(const char *path, int *ret_fd, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd, r;

	r = fill_addr(&sa, path, err, errlen);
	if (r == 0)
		r = make_parent_dir(path, err, errlen);
	if (r == 0)
		r = clear_stale(&sa, err, errlen);
	if (r < 0) {
		if (!err[0])
			snprintf(err, errlen, "control socket '%s': %s", path,
				 strerror(-r));
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	/* The file is born 0600: no window in which others may connect. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		goto fail_unlink;
	*ret_fd = fd;
	return 0;

fail_unlink:
	r = -errno;
	unlink(path);
	close(fd);
	errno = -r;
fail:
	r = -errno;
	snprintf(err, errlen, "control socket '%s': %s", path, strerror(errno));
	return r;
}

/* ---- clients ----------------------------------------------------------- */

static struct psd_ud client_ud(struct psd_control *c, struct client *cl)
{
	return (struct psd_ud){
		.op = PSD_OP_CONTROL_IO,
		.gen = cl->gen,
		.idx = (uint32_t)(cl - c->clients),
	};
}

static void shrink_buffers(struct client *cl)
{
	if (cl->rx_cap > KEEP_BUFFER) {
		free(cl->rx);
		cl->rx = NULL;
		cl->rx_cap = 0;
	}
	if (cl->tx.cap > KEEP_BUFFER)
		psd_ctl_buf_free(&cl->tx);
	cl->rx_len = 0;
	cl->rx_need = 0;
}

/* dropped: the client went away with work unfinished. */
static void client_close(struct psd_control *c, struct client *cl,
			 bool dropped)
{
	if (dropped || cl->add || cl->reading)
		c->stats.dropped++;
	if (cl->reading)
		psd_fetch_read_cancel(c->fetch, cl->read_id);
	control_add_end(c, cl);
	close(cl->fd);
	free(cl->rx);
	psd_ctl_buf_free(&cl->tx);
	*cl = (struct client){ .fd = -1, .gen = (uint16_t)(cl->gen + 1) };
	c->stats.clients--;
}

void control_send_reply(struct psd_control *c, struct client *cl)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(c->loop);

	if (!sqe) {
		client_close(c, cl, true);
		return;
	}
	cl->state = CL_SEND;
	io_uring_prep_send(sqe, cl->fd, cl->tx.p + cl->tx_off,
			   cl->tx.len - cl->tx_off, MSG_NOSIGNAL);
	psd_loop_tag(sqe, client_ud(c, cl));
}

/* Replaces whatever reply was being built with an ERROR and sends it. */
void control_send_error(struct psd_control *c, struct client *cl,
			uint32_t seq, const struct reply_err *e)
{
	c->stats.errors++;
	if (psd_ctl_build_error(&cl->tx, seq, e->err, "%s", e->msg) < 0) {
		client_close(c, cl, true);
		return;
	}
	cl->tx_off = 0;
	control_send_reply(c, cl);
}

/* A connection we do not serve: one ERROR, written without waiting (it
 * fits the fresh socket's buffer), then closed. */
static void turn_away(int fd, int err, const char *msg)
{
	struct psd_ctl_buf b = { 0 };

	if (psd_ctl_build_error(&b, 0, err, "%s", msg) == 0 &&
	    send(fd, b.p, b.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		psd_dbg("control: refusal not sent: %s", strerror(errno));
	psd_ctl_buf_free(&b);
	close(fd);
}

static struct client *free_slot(struct psd_control *c)
{
	for (unsigned int i = 0; i < PSD_CTL_MAX_CLIENTS; i++)
		if (c->clients[i].state == CL_FREE)
			return &c->clients[i];
	return NULL;
}

static void take_client(struct psd_control *c, int fd)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1 };
	socklen_t len = sizeof(cred);
	struct client *cl;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.uid != 0) {
		c->stats.refused++;
		psd_warn("control: refused a client (pid %d, uid %d): not root",
			 (int)cred.pid, (int)cred.uid);
		turn_away(fd, -EACCES, "peersnapd serves only root");
		return;
	}
	cl = free_slot(c);
	if (!cl) {
		c->stats.busy++;
		turn_away(fd, -EBUSY, "too many control clients");
		return;
	}
	c->stats.accepted++;
	c->stats.clients++;
	cl->fd = fd;
	cl->owner = c;
	cl->state = CL_RECV;
	arm_recv(c, cl);
}

/* ---- accepting --------------------------------------------------------- */

static void arm_accept(struct psd_control *c)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(c->loop);

	if (!sqe)
		return;
	io_uring_prep_accept(sqe, c->lfd, NULL, NULL,
			     SOCK_CLOEXEC | SOCK_NONBLOCK);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_CONTROL_ACCEPT,
					   .idx = UD_ACCEPT });
}

/* Out of file descriptors or memory: try again a little later rather
 * than spin on a connection we cannot take. */
static void arm_accept_retry(struct psd_control *c)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(c->loop);

	if (!sqe)
		return;
	c->retry_ts.tv_sec = 0;
	c->retry_ts.tv_nsec = ACCEPT_RETRY_MS * 1000000LL;
	io_uring_prep_timeout(sqe, &c->retry_ts, 0, 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_CONTROL_ACCEPT,
					   .idx = UD_ACCEPT_RETRY });
}

static void on_accept(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_control *c = ctx;

	(void)flags;
	if (c->shut) {
		if (ud.idx == UD_ACCEPT && res >= 0)
			close(res);
		return;
	}
	if (ud.idx == UD_ACCEPT_RETRY) {
		arm_accept(c);
		return;
	}
	if (res >= 0) {
		take_client(c, res);
		arm_accept(c);
	} else if (res == -EINTR || res == -ECONNABORTED || res == -EAGAIN) {
		arm_accept(c);
	} else {
		psd_warn("control: accept: %s", strerror(-res));
		arm_accept_retry(c);
	}
}

/* ---- receiving --------------------------------------------------------- */

static int rx_reserve(struct client *cl, size_t need)
{
	uint8_t *p;

	if (need <= cl->rx_cap)
		return 0;
	p = realloc(cl->rx, need);
	if (!p)
		return -ENOMEM;
	cl->rx = p;
	cl->rx_cap = need;
	return 0;
}

static void arm_recv(struct psd_control *c, struct client *cl)
{
	size_t want = cl->rx_need ? cl->rx_need : PSD_CTL_HDR_LEN;
	struct io_uring_sqe *sqe;

	if (rx_reserve(cl, want) < 0) {
		client_close(c, cl, true);
		return;
	}
	sqe = psd_loop_sqe(c->loop);
	if (!sqe) {
		client_close(c, cl, true);
		return;
	}
	cl->state = CL_RECV;
	io_uring_prep_recv(sqe, cl->fd, cl->rx + cl->rx_len,
			   want - cl->rx_len, 0);
	psd_loop_tag(sqe, client_ud(c, cl));
}

static void handle_frame(struct psd_control *c, struct client *cl);

/* A frame the codec refuses: say why, then close. */
static void refuse_frame(struct psd_control *c, struct client *cl, int err,
			 const char *why)
{
	struct reply_err e;

	c->stats.malformed++;
	psd_warn("control: closing a client: malformed frame: %s", why);
	say(&e, err, "malformed frame: %s", why);
	cl->close_after = true;
	control_send_error(c, cl, 0, &e);
}

static void on_received(struct psd_control *c, struct client *cl, int res)
{
	struct psd_ctl_err err = { { 0 } };
	uint32_t len;
	int r;

	if (res <= 0) {
		/* EOF or error: a request half-sent or an add left open is a
		 * client gone mid-request. */
		client_close(c, cl, cl->rx_len > 0);
		return;
	}
	cl->rx_len += (size_t)res;
	if (!cl->rx_need && cl->rx_len == PSD_CTL_HDR_LEN) {
		r = psd_ctl_frame_len(cl->rx, cl->rx_len, &len, &err);
		if (r < 0) {
			refuse_frame(c, cl, r, err.msg);
			return;
		}
		cl->rx_need = len;
	}
	if (cl->rx_len < (cl->rx_need ? cl->rx_need : PSD_CTL_HDR_LEN)) {
		arm_recv(c, cl);
		return;
	}
	handle_frame(c, cl);
}

static void on_sent(struct psd_control *c, struct client *cl, int res)
{
	if (res <= 0) {
		client_close(c, cl, true);
		return;
	}
	cl->tx_off += (size_t)res;
	if (cl->tx_off < cl->tx.len) {
		control_send_reply(c, cl);
		return;
	}
	if (cl->close_after) {
		client_close(c, cl, false);
		return;
	}
	shrink_buffers(cl);
	arm_recv(c, cl);
}

static void on_io(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_control *c = ctx;
	struct client *cl;

	(void)flags;
	if (ud.idx >= PSD_CTL_MAX_CLIENTS)
		return;
	cl = &c->clients[ud.idx];
	if (cl->gen != ud.gen || cl->state == CL_FREE)
		return;
	if (cl->state == CL_RECV)
		on_received(c, cl, res);
	else if (cl->state == CL_SEND)
		on_sent(c, cl, res);
}

/* ---- dispatch ---------------------------------------------------------- */

static void handle_frame(struct psd_control *c, struct client *cl)
{
	struct psd_ctl_err perr = { { 0 } };
	struct reply_err e = { 0 };
	struct psd_ctl_msg m;
	int r;

	cl->state = CL_BUSY;
	cl->tx_off = 0;
	r = psd_ctl_parse(cl->rx, cl->rx_len, &m, &perr);
	if (r == -EOPNOTSUPP) {
		say(&e, r, "%s", perr.msg);
		control_send_error(c, cl, m.seq, &e);
		return;
	}
	if (r < 0 || (m.type & PSD_CTL_REPLY)) {
		refuse_frame(c, cl, r < 0 ? r : -EBADMSG,
			     r < 0 ? perr.msg : "a reply sent to the daemon");
		return;
	}
	c->stats.requests++;
	if (!cl->hello && m.type != PSD_CTL_HELLO) {
		cl->close_after = true;
		say(&e, -EPROTO, "%s before HELLO", psd_ctl_type_name(m.type));
		control_send_error(c, cl, m.seq, &e);
		return;
	}
	r = control_request(c, cl, &m, &e);
	if (r > 0)
		return;		/* answered from a completion */
	if (r == 0)
		r = psd_ctl_finish(&cl->tx);
	if (r < 0) {
		if (!e.msg[0])
			say(&e, r, "%s reply: %s", psd_ctl_type_name(m.type),
			    strerror(-r));
		control_send_error(c, cl, m.seq, &e);
		return;
	}
	control_send_reply(c, cl);
}

/* ---- life cycle -------------------------------------------------------- */

int psd_control_init(struct psd_control **ret,
		     const struct psd_control_params *p,
		     char *err, size_t errlen)
{
	struct psd_control *c;
	int r;

	err[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->lfd = -1;
	c->loop = p->loop;
	c->store = p->store;
	c->fetch = p->fetch;
	c->path = strdup(p->path);
	c->version = strdup(p->daemon_version);
	for (unsigned int i = 0; i < PSD_CTL_MAX_CLIENTS; i++)
		c->clients[i].fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	if (!c->path || !c->version) {
		r = -ENOMEM;
		goto fail;
	}
	r = listen_on(c->path, &c->lfd, err, errlen);
	if (r < 0)
		goto fail;
	psd_loop_set_handler(c->loop, PSD_OP_CONTROL_ACCEPT, on_accept, c);
	psd_loop_set_handler(c->loop, PSD_OP_CONTROL_IO, on_io, c);
	arm_accept(c);
	*ret = c;
	return 0;

fail:
	c->shut = true;		/* nothing to unlink: not ours */
	free(c->path);
	c->path = NULL;
	psd_control_uninit(c);
	return r;
}

void psd_control_shutdown(struct psd_control *c)
{
	if (!c || c->shut)
		return;
	c->shut = true;
	if (c->path && unlink(c->path) < 0 && errno != ENOENT)
		psd_warn("control socket %s: %s", c->path, strerror(errno));
	/* Wakes the pending accept; the loop's quiesce reaps it. */
	if (c->lfd >= 0)
		shutdown(c->lfd, SHUT_RDWR);
}

void psd_control_uninit(struct psd_control *c)
{
	if (!c)
		return;
	psd_control_shutdown(c);
	for (unsigned int i = 0; i < PSD_CTL_MAX_CLIENTS; i++)
		if (c->clients[i].state != CL_FREE)
			client_close(c, &c->clients[i], false);
	if (c->lfd >= 0)
		close(c->lfd);
	free(c->path);
	free(c->version);
	free(c);
}

const struct psd_control_stats *psd_control_get_stats(
	const struct psd_control *c)
{
	return &c->stats;
}
