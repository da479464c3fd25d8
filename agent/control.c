// SPDX-License-Identifier: GPL-2.0
/*
 * The daemon's control socket: see control.h and docs/control.md.
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
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "ctl.h"
#include "log.h"
#include "origin.h"

/* Buffers larger than this are freed once their request is answered. */
#define KEEP_BUFFER		(64u << 10)
#define LISTEN_BACKLOG		16
#define ACCEPT_RETRY_MS		100

enum { UD_ACCEPT, UD_ACCEPT_RETRY };

enum client_state {
	CL_FREE,
	CL_RECV,
	CL_BUSY,
	CL_SEND,
};

/* An ADD_BEGIN .. ADD_COMMIT in progress. */
struct add_state {
	struct psd_store_add *add;
	uint8_t id[PSD_HASH_LEN];
	uint8_t kind;			/* enum psd_ctl_source */
	char *path;
	uint64_t chunk_count;
	uint8_t *present;		/* NULL until the first ADD_PRESENT */
	size_t present_len;		/* ceil(chunk_count / 8) */
};

struct client {
	int fd;
	uint16_t gen;
	enum client_state state;
	bool hello;
	bool close_after;		/* the reply being sent is the last */
	uint8_t *rx;
	size_t rx_cap;
	size_t rx_len;
	uint32_t rx_need;		/* 0: header not read yet */
	struct psd_ctl_buf tx;
	size_t tx_off;
	struct add_state *add;
	struct psd_control *owner;
	/* A READ waiting for the fetch engine. */
	bool reading;
	uint64_t read_id;
	uint64_t read_first;
	uint32_t read_count;
	uint32_t read_seq;
	size_t read_len;		/* DATA bytes: up to the image's end */
};

struct psd_control {
	struct psd_loop *loop;
	struct psd_store *store;
	struct psd_fetch *fetch;
	char *path;
	char *version;
	int lfd;
	bool shut;
	struct __kernel_timespec retry_ts;
	struct timespec started;
	unsigned int adds;
	struct client clients[PSD_CTL_MAX_CLIENTS];
	struct psd_control_stats stats;
};

/* What a handler says about its request. */
struct reply_err {
	int err;			/* -errno */
	char msg[256];
};

__attribute__((format(printf, 3, 4)))
static int say(struct reply_err *e, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->err = err;
	return err;
}

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

static void add_free(struct psd_control *c, struct client *cl)
{
	struct add_state *a = cl->add;

	if (!a)
		return;
	psd_store_add_abort(a->add);
	free(a->path);
	free(a->present);
	free(a);
	cl->add = NULL;
	c->adds--;
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
	add_free(c, cl);
	close(cl->fd);
	free(cl->rx);
	psd_ctl_buf_free(&cl->tx);
	*cl = (struct client){ .fd = -1, .gen = (uint16_t)(cl->gen + 1) };
	c->stats.clients--;
}

static void send_reply(struct psd_control *c, struct client *cl)
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
static void send_error(struct psd_control *c, struct client *cl,
		       uint32_t seq, const struct reply_err *e)
{
	c->stats.errors++;
	if (psd_ctl_build_error(&cl->tx, seq, e->err, "%s", e->msg) < 0) {
		client_close(c, cl, true);
		return;
	}
	cl->tx_off = 0;
	send_reply(c, cl);
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
	send_error(c, cl, 0, &e);
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
		send_reply(c, cl);
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

/* ---- request handlers -------------------------------------------------- */

typedef int (*handler_fn)(struct psd_control *c, struct client *cl,
			  const struct psd_ctl_msg *m, struct reply_err *e);

static void begin_reply(struct client *cl, const struct psd_ctl_msg *m)
{
	psd_ctl_begin(&cl->tx, m->type | PSD_CTL_REPLY, m->seq);
}

static int find_snapshot(struct psd_control *c, const struct psd_ctl_msg *m,
			 const struct psd_store_snapshot **ret,
			 struct reply_err *e)
{
	const uint8_t *id = psd_ctl_bytes(&m->at, PSD_CTL_A_ID, NULL);
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];

	*ret = psd_store_get(c->store, id);
	if (*ret)
		return 0;
	psd_hex_id_format(id, hex);
	return say(e, -ENOENT, "no snapshot %s in the store", hex);
}

static int h_hello(struct psd_control *c, struct client *cl,
		   const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t v = psd_ctl_u32(&m->at, PSD_CTL_A_VERSION);

	if (v != PSD_CTL_VERSION) {
		cl->close_after = true;
		return say(e, -EPROTONOSUPPORT,
			   "protocol version %u not supported (daemon speaks %u)",
			   v, PSD_CTL_VERSION);
	}
	cl->hello = true;
	begin_reply(cl, m);
	psd_ctl_put_u32(&cl->tx, PSD_CTL_A_VERSION, PSD_CTL_VERSION);
	psd_ctl_put_str(&cl->tx, PSD_CTL_A_DAEMON_VERSION, c->version);
	return 0;
}

static void put_counter(struct psd_ctl_buf *b, const char *name, uint64_t v)
{
	psd_ctl_nest_begin(b, PSD_CTL_A_COUNTER);
	psd_ctl_put_str(b, PSD_CTL_A_NAME, name);
	psd_ctl_put_u64(b, PSD_CTL_A_VALUE, v);
	psd_ctl_nest_end(b);
}

/* A u64 field of a stats struct, by name (docs/control.md, STATUS). */
struct counter_field {
	const char *name;
	size_t off;
};

#define FIELD(prefix, type, f) { prefix #f, offsetof(struct type, f) }
static const struct counter_field fetch_fields[] = {
	FIELD("fetch.", psd_fetch_stats, received),
	FIELD("fetch.", psd_fetch_stats, duplicates),
	FIELD("fetch.", psd_fetch_stats, dropped),
	FIELD("fetch.", psd_fetch_stats, ignored),
	FIELD("fetch.", psd_fetch_stats, succeeded),
	FIELD("fetch.", psd_fetch_stats, failed),
	FIELD("fetch.", psd_fetch_stats, legacy),
	FIELD("fetch.", psd_fetch_stats, chunks_zero),
	FIELD("fetch.", psd_fetch_stats, chunks_in_place),
	FIELD("fetch.", psd_fetch_stats, chunks_origin),
	FIELD("fetch.", psd_fetch_stats, chunks_cache),
	FIELD("fetch.", psd_fetch_stats, hash_mismatch),
	FIELD("fetch.", psd_fetch_stats, in_place_stale),
	FIELD("fetch.", psd_fetch_stats, source_errors),
	FIELD("fetch.", psd_fetch_stats, no_source),
	FIELD("fetch.", psd_fetch_stats, reads),
	FIELD("fetch.", psd_fetch_stats, reads_failed),
};

static const struct counter_field store_fields[] = {
	FIELD("store.", psd_store_stats, snapshots),
	FIELD("store.", psd_store_stats, origins),
	FIELD("store.", psd_store_stats, cache_records),
	FIELD("store.", psd_store_stats, index_chunks_stored),
	FIELD("store.", psd_store_stats, index_reads),
	FIELD("store.", psd_store_stats, index_bad),
	FIELD("store.", psd_store_stats, skipped),
	FIELD("store.", psd_store_stats, temp_removed),
	FIELD("store.", psd_store_stats, table_entries),
};

static const struct counter_field control_fields[] = {
	FIELD("control.", psd_control_stats, clients),
	FIELD("control.", psd_control_stats, accepted),
	FIELD("control.", psd_control_stats, requests),
	FIELD("control.", psd_control_stats, errors),
	FIELD("control.", psd_control_stats, malformed),
	FIELD("control.", psd_control_stats, refused),
	FIELD("control.", psd_control_stats, busy),
	FIELD("control.", psd_control_stats, dropped),
};
#undef FIELD

static void put_counters(struct psd_ctl_buf *b, const void *stats,
			 const struct counter_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v;

		memcpy(&v, (const uint8_t *)stats + f[i].off, sizeof(v));
		put_counter(b, f[i].name, v);
	}
}

#define PUT_COUNTERS(b, stats, fields) \
	put_counters(b, stats, fields, sizeof(fields) / sizeof(fields[0]))

static int h_status(struct psd_control *c, struct client *cl,
		    const struct psd_ctl_msg *m, struct reply_err *e)
{
	struct timespec now;

	(void)e;
	clock_gettime(CLOCK_MONOTONIC, &now);
	begin_reply(cl, m);
	psd_ctl_put_u64(&cl->tx, PSD_CTL_A_UPTIME,
			(uint64_t)(now.tv_sec - c->started.tv_sec));
	if (c->fetch) {
		PUT_COUNTERS(&cl->tx, psd_fetch_get_stats(c->fetch),
			     fetch_fields);
		put_counter(&cl->tx, "fetch.inflight",
			    psd_fetch_inflight(c->fetch));
		put_counter(&cl->tx, "fetch.queued", psd_fetch_queued(c->fetch));
	}
	PUT_COUNTERS(&cl->tx, psd_store_get_stats(c->store), store_fields);
	PUT_COUNTERS(&cl->tx, &c->stats, control_fields);
	return 0;
}

static int by_id(const void *a, const void *b)
{
	const struct psd_store_snapshot *const *x = a, *const *y = b;

	return memcmp(psd_store_manifest(*x)->id, psd_store_manifest(*y)->id,
		      PSD_HASH_LEN);
}

static void put_snapshot(struct psd_ctl_buf *b,
			 const struct psd_store_snapshot *sn)
{
	const struct psd_manifest *mf = psd_store_manifest(sn);

	psd_ctl_nest_begin(b, PSD_CTL_A_SNAPSHOT);
	psd_ctl_put_bytes(b, PSD_CTL_A_ID, mf->id, PSD_HASH_LEN);
	psd_ctl_put_str(b, PSD_CTL_A_NAME, mf->name);
	psd_ctl_put_u64(b, PSD_CTL_A_SIZE, mf->geo.size);
	psd_ctl_put_u32(b, PSD_CTL_A_CHUNK_SIZE, mf->geo.chunk_size);
	psd_ctl_put_u64(b, PSD_CTL_A_CHUNK_COUNT, mf->geo.chunk_count);
	psd_ctl_put_u64(b, PSD_CTL_A_CREATED, mf->created);
	if (mf->has_parent)
		psd_ctl_put_bytes(b, PSD_CTL_A_PARENT, mf->parent,
				  PSD_HASH_LEN);
	psd_ctl_put_bytes(b, PSD_CTL_A_PUBLISHER, mf->publisher,
			  PSD_PUBKEY_LEN);
	psd_ctl_put_u8(b, PSD_CTL_A_HAS_ORIGIN, psd_store_origin(sn) != NULL);
	psd_ctl_nest_end(b);
}

/* Sorted by id, resuming after AFTER, PSD_CTL_LIST_MAX at a time. */
static int h_list(struct psd_control *c, struct client *cl,
		  const struct psd_ctl_msg *m, struct reply_err *e)
{
	const uint8_t *after = psd_ctl_bytes(&m->at, PSD_CTL_A_AFTER, NULL);
	size_t n = psd_store_count(c->store), i, sent = 0;
	const struct psd_store_snapshot **v;

	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return say(e, -ENOMEM, "out of memory listing %zu snapshots", n);
	for (i = 0; i < n; i++)
		v[i] = psd_store_nth(c->store, i);
	qsort(v, n, sizeof(*v), by_id);
	begin_reply(cl, m);
	for (i = 0; i < n; i++) {
		if (after && memcmp(psd_store_manifest(v[i])->id, after,
				    PSD_HASH_LEN) <= 0)
			continue;
		if (sent == PSD_CTL_LIST_MAX) {
			psd_ctl_put_u8(&cl->tx, PSD_CTL_A_MORE, 1);
			break;
		}
		put_snapshot(&cl->tx, v[i]);
		sent++;
	}
	free(v);
	return 0;
}

static int h_get_manifest(struct psd_control *c, struct client *cl,
			  const struct psd_ctl_msg *m, struct reply_err *e)
{
	const char *prefix = psd_ctl_str(&m->at, PSD_CTL_A_ID_PREFIX);
	const struct psd_store_snapshot *sn;
	const struct psd_manifest *mf;
	int r;

	if (psd_ctl_has(&m->at, PSD_CTL_A_ID) == !!prefix)
		return say(e, -EINVAL, "GET_MANIFEST needs exactly one of ID and ID_PREFIX");
	if (prefix) {
		r = psd_store_lookup(c->store, prefix, strlen(prefix), &sn);
		if (r == -ENOENT)
			return say(e, r, "no snapshot matches '%s'", prefix);
		if (r == -ENOTUNIQ)
			return say(e, r, "'%s' matches more than one snapshot",
				   prefix);
		if (r < 0)
			return say(e, r, "'%s' is not a snapshot id or prefix (%u..64 hex digits)",
				   prefix, PSD_CTL_ID_PREFIX_MIN);
	} else {
		r = find_snapshot(c, m, &sn, e);
		if (r < 0)
			return r;
	}
	mf = psd_store_manifest(sn);
	begin_reply(cl, m);
	psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_ID, mf->id, PSD_HASH_LEN);
	psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_MANIFEST, mf->raw, mf->raw_len);
	return 0;
}

static int h_get_index(struct psd_control *c, struct client *cl,
		       const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t k = psd_ctl_u32(&m->at, PSD_CTL_A_INDEX);
	const struct psd_store_snapshot *sn;
	size_t len, got;
	void *buf;
	int r;

	r = find_snapshot(c, m, &sn, e);
	if (r < 0)
		return r;
	len = psd_geometry_index_len(&psd_store_manifest(sn)->geo, k);
	if (!len)
		return say(e, -ERANGE, "index chunk %u: the snapshot has %u",
			   k, psd_store_manifest(sn)->geo.index_count);
	begin_reply(cl, m);
	buf = psd_ctl_put_reserve(&cl->tx, PSD_CTL_A_INDEX_DATA, len);
	if (!buf)
		return say(e, -ENOMEM, "out of memory for index chunk %u", k);
	r = psd_store_index_read(c->store, sn, k, buf, len, &got);
	if (r < 0)
		return say(e, r, "index chunk %u: %s", k, strerror(-r));
	if (got != len)
		return say(e, -EIO, "index chunk %u: %zu bytes, expected %zu",
			   k, got, len);
	return 0;
}

/* ---- adding a snapshot ------------------------------------------------- */

static int check_source(uint8_t kind, const char *path,
			const struct psd_manifest *mf, struct reply_err *e)
{
	struct stat st;

	if (kind != PSD_CTL_SOURCE_ORIGIN && kind != PSD_CTL_SOURCE_CACHE)
		return say(e, -EINVAL, "unknown source kind %u", kind);
	if (path[0] != '/')
		return say(e, -EINVAL, "source '%s': not an absolute path", path);
	if (stat(path, &st) < 0)
		return say(e, -errno, "source '%s': %s", path, strerror(errno));
	if (kind == PSD_CTL_SOURCE_CACHE && !S_ISBLK(st.st_mode))
		return say(e, -ENOTBLK, "source '%s': not a block device", path);
	if (kind == PSD_CTL_SOURCE_ORIGIN && !S_ISREG(st.st_mode))
		return say(e, -EMEDIUMTYPE, "origin '%s': not a regular file",
			   path);
	if (kind == PSD_CTL_SOURCE_ORIGIN &&
	    (uint64_t)st.st_size != mf->geo.size)
		return say(e, -EMEDIUMTYPE,
			   "origin '%s': %lld bytes, the manifest says %llu",
			   path, (long long)st.st_size,
			   (unsigned long long)mf->geo.size);
	return 0;
}

static int mf_error(struct reply_err *e, int r, const struct psd_mf_err *mfe,
		    const char *what)
{
	if (mfe->msg[0])
		return say(e, r, "%s: %s", what, mfe->msg);
	return say(e, r, "%s: %s", what, strerror(-r));
}

static int h_add_begin(struct psd_control *c, struct client *cl,
		       const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t len;
	const uint8_t *raw = psd_ctl_bytes(&m->at, PSD_CTL_A_MANIFEST, &len);
	const char *path = psd_ctl_str(&m->at, PSD_CTL_A_PATH);
	uint8_t kind = psd_ctl_u8(&m->at, PSD_CTL_A_SOURCE_KIND);
	struct psd_mf_err mfe = { 0 };
	const struct psd_manifest *mf;
	struct add_state *a;
	int r;

	if (cl->add)
		return say(e, -EBUSY, "an add is already open on this connection");
	if (c->adds >= PSD_CTL_MAX_ADDS)
		return say(e, -EBUSY, "%u adds in progress: try again later",
			   c->adds);
	a = calloc(1, sizeof(*a));
	if (!a)
		return say(e, -ENOMEM, "out of memory");
	r = psd_store_add_begin(c->store, raw, len, &a->add, &mfe);
	if (r < 0) {
		free(a);
		return mf_error(e, r, &mfe, "manifest refused");
	}
	mf = psd_store_add_manifest(a->add);
	r = check_source(kind, path, mf, e);
	if (r == 0 && kind == PSD_CTL_SOURCE_CACHE &&
	    (mf->geo.chunk_count + 7) / 8 > PSD_CTL_PRESENT_MAX)
		r = say(e, -EFBIG, "%llu chunks: a present bitmap of more than %u bytes",
			(unsigned long long)mf->geo.chunk_count,
			PSD_CTL_PRESENT_MAX);
	a->path = strdup(path);
	if (r == 0 && !a->path)
		r = say(e, -ENOMEM, "out of memory");
	if (r < 0) {
		psd_store_add_abort(a->add);
		free(a->path);
		free(a);
		return r;
	}
	memcpy(a->id, mf->id, PSD_HASH_LEN);
	a->kind = kind;
	a->chunk_count = mf->geo.chunk_count;
	a->present_len = (size_t)((a->chunk_count + 7) / 8);
	cl->add = a;
	c->adds++;
	begin_reply(cl, m);
	psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_ID, a->id, PSD_HASH_LEN);
	psd_ctl_put_u32(&cl->tx, PSD_CTL_A_INDEX_COUNT, mf->geo.index_count);
	return 0;
}

static int need_add(struct client *cl, const struct psd_ctl_msg *m,
		    struct reply_err *e)
{
	if (cl->add)
		return 0;
	return say(e, -ENOENT, "%s without ADD_BEGIN",
		   psd_ctl_type_name(m->type));
}

static int h_add_index(struct psd_control *c, struct client *cl,
		       const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint32_t k = psd_ctl_u32(&m->at, PSD_CTL_A_INDEX), len;
	const uint8_t *data = psd_ctl_bytes(&m->at, PSD_CTL_A_INDEX_DATA, &len);
	struct psd_mf_err mfe = { 0 };
	char what[48];
	int r;

	(void)c;
	r = need_add(cl, m, e);
	if (r < 0)
		return r;
	r = psd_store_add_index(cl->add->add, k, data, len, &mfe);
	if (r < 0) {
		snprintf(what, sizeof(what), "index chunk %u", k);
		return mf_error(e, r, &mfe, what);
	}
	begin_reply(cl, m);
	return 0;
}

static int h_add_present(struct psd_control *c, struct client *cl,
			 const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint64_t first = psd_ctl_u64(&m->at, PSD_CTL_A_FIRST_CHUNK);
	uint32_t len;
	const uint8_t *bits = psd_ctl_bytes(&m->at, PSD_CTL_A_BITMAP, &len);
	struct add_state *a = cl->add;
	uint64_t at;
	int r;

	(void)c;
	r = need_add(cl, m, e);
	if (r < 0)
		return r;
	a = cl->add;
	if (a->kind != PSD_CTL_SOURCE_CACHE)
		return say(e, -EINVAL, "ADD_PRESENT for an origin source");
	if (first % 8)
		return say(e, -EINVAL, "first chunk %llu is not a multiple of 8",
			   (unsigned long long)first);
	at = first / 8;
	if (at > a->present_len || len > a->present_len - at)
		return say(e, -ERANGE, "chunks %llu..%llu past the snapshot's %llu",
			   (unsigned long long)first,
			   (unsigned long long)(first + 8ull * len),
			   (unsigned long long)a->chunk_count);
	if (len && at + len == a->present_len && a->chunk_count % 8 &&
	    (bits[len - 1] >> (a->chunk_count % 8)))
		return say(e, -EINVAL, "bits set past the last chunk %llu",
			   (unsigned long long)(a->chunk_count - 1));
	if (!a->present) {
		a->present = calloc(1, a->present_len ? a->present_len : 1);
		if (!a->present)
			return say(e, -ENOMEM, "out of memory for %zu bytes of bitmap",
				   a->present_len);
	}
	for (uint32_t i = 0; i < len; i++)
		a->present[at + i] |= bits[i];
	begin_reply(cl, m);
	return 0;
}

/* The snapshot is stored: record where its chunks are. */
static int record_source(struct psd_control *c, struct add_state *a,
			 struct reply_err *e)
{
	char err[256] = "";
	int r;

	if (a->kind == PSD_CTL_SOURCE_ORIGIN) {
		r = psd_store_set_origin(c->store, a->id, a->path, err,
					 sizeof(err));
	} else {
		/* No ADD_PRESENT at all: no chunk is recorded present. */
		if (!a->present)
			a->present = calloc(1, a->present_len);
		if (!a->present)
			return say(e, -ENOMEM, "out of memory");
		r = psd_store_set_cache(c->store, a->id, a->path, NULL,
					a->present, a->present_len, err,
					sizeof(err));
	}
	if (r < 0)
		return say(e, r, "snapshot stored, but its source was not recorded: %s",
			   err[0] ? err : strerror(-r));
	return 0;
}

static int h_add_commit(struct psd_control *c, struct client *cl,
			const struct psd_ctl_msg *m, struct reply_err *e)
{
	struct psd_mf_err mfe = { 0 };
	struct add_state *a;
	bool existed = false;
	int r;

	r = need_add(cl, m, e);
	if (r < 0)
		return r;
	a = cl->add;
	/* Commit frees the store's add whatever happens. */
	r = psd_store_add_commit(a->add, NULL, &existed, &mfe);
	a->add = NULL;
	if (r < 0) {
		mf_error(e, r, &mfe, "add not committed");
	} else {
		r = record_source(c, a, e);
		if (r == 0) {
			char hex[PSD_SNAPSHOT_HEX_LEN + 1];

			psd_hex_id_format(a->id, hex);
			psd_info("control: snapshot %s %s, %s %s", hex,
				 existed ? "already stored" : "stored",
				 a->kind == PSD_CTL_SOURCE_ORIGIN ?
				 "origin" : "cache device", a->path);
		}
	}
	if (r == 0) {
		begin_reply(cl, m);
		psd_ctl_put_bytes(&cl->tx, PSD_CTL_A_ID, a->id, PSD_HASH_LEN);
	}
	add_free(c, cl);
	return r;
}

static int h_add_abort(struct psd_control *c, struct client *cl,
		       const struct psd_ctl_msg *m, struct reply_err *e)
{
	int r = need_add(cl, m, e);

	if (r < 0)
		return r;
	add_free(c, cl);
	begin_reply(cl, m);
	return 0;
}

/* ---- attachments, reads, peers ----------------------------------------- */

static int h_attached(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e)
{
	const char *path = psd_ctl_str(&m->at, PSD_CTL_A_PATH);
	const char *dm = psd_ctl_str(&m->at, PSD_CTL_A_DM_NAME);
	const struct psd_store_snapshot *sn;
	char err[256] = "";
	int r;

	r = find_snapshot(c, m, &sn, e);
	if (r < 0)
		return r;
	r = psd_store_set_cache(c->store, psd_store_manifest(sn)->id, path, dm,
				NULL, 0, err, sizeof(err));
	if (r < 0)
		return say(e, r, "%s", err[0] ? err : strerror(-r));
	begin_reply(cl, m);
	return 0;
}

static int h_detached(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e)
{
	const char *dm = psd_ctl_str(&m->at, PSD_CTL_A_DM_NAME);
	int r = psd_store_cache_detached(c->store, dm);

	if (r == -ENOENT)
		return say(e, r, "no attached device named '%s'", dm);
	if (r < 0)
		return say(e, r, "detaching '%s': %s", dm, strerror(-r));
	begin_reply(cl, m);
	return 0;
}

/* The store's read finished: the reply waits in cl->tx, DATA last. */
static void on_read_done(void *ctx, int status)
{
	struct client *cl = ctx;
	struct psd_control *c = cl->owner;
	struct reply_err e = { 0 };

	cl->reading = false;
	if (status == 0) {
		psd_ctl_shrink_last(&cl->tx, cl->read_len);
		status = psd_ctl_finish(&cl->tx);
		if (status == 0) {
			send_reply(c, cl);
			return;
		}
	}
	if (status == -EIO)
		say(&e, status, "chunks %llu..%llu: no source whose data matches the manifest's hash",
		    (unsigned long long)cl->read_first,
		    (unsigned long long)(cl->read_first + cl->read_count - 1));
	else
		say(&e, status, "chunks %llu..%llu: %s",
		    (unsigned long long)cl->read_first,
		    (unsigned long long)(cl->read_first + cl->read_count - 1),
		    strerror(-status));
	send_error(c, cl, cl->read_seq, &e);
}

/*
 * Verified chunk data, straight into the reply frame: the store's read
 * fills count whole chunks; DATA is then cut at the image's end.
 * Returns 1: answered later, by on_read_done().
 */
static int h_read(struct psd_control *c, struct client *cl,
		  const struct psd_ctl_msg *m, struct reply_err *e)
{
	uint64_t first = psd_ctl_u64(&m->at, PSD_CTL_A_FIRST_CHUNK);
	uint32_t count = psd_ctl_u32(&m->at, PSD_CTL_A_COUNT);
	const struct psd_store_snapshot *sn;
	const struct psd_geometry *g;
	uint64_t bytes, end;
	void *buf;
	int r;

	r = find_snapshot(c, m, &sn, e);
	if (r < 0)
		return r;
	g = &psd_store_manifest(sn)->geo;
	bytes = (uint64_t)count * g->chunk_size;
	if (!count || bytes > PSD_CTL_READ_MAX)
		return say(e, -EINVAL, "READ of %u chunks of %u bytes: 1..%u bytes at a time",
			   count, g->chunk_size, PSD_CTL_READ_MAX);
	if (first >= g->chunk_count || count > g->chunk_count - first)
		return say(e, -ERANGE, "chunks %llu..%llu: the snapshot has %llu",
			   (unsigned long long)first,
			   (unsigned long long)(first + count - 1),
			   (unsigned long long)g->chunk_count);
	if (!c->fetch)
		return say(e, -EOPNOTSUPP, "no fetch engine to read with");
	begin_reply(cl, m);
	psd_ctl_put_u64(&cl->tx, PSD_CTL_A_FIRST_CHUNK, first);
	psd_ctl_put_u32(&cl->tx, PSD_CTL_A_COUNT, count);
	buf = psd_ctl_put_reserve(&cl->tx, PSD_CTL_A_DATA, bytes);
	if (!buf)
		return say(e, -ENOMEM, "out of memory for %llu bytes",
			   (unsigned long long)bytes);
	end = first * g->chunk_size + bytes;
	cl->read_len = (size_t)(end > g->size ? bytes - (end - g->size) : bytes);
	cl->read_first = first;
	cl->read_count = count;
	cl->read_seq = m->seq;
	r = psd_fetch_read(c->fetch, psd_store_manifest(sn)->id, first, count,
			   buf, bytes, on_read_done, cl, &cl->read_id);
	if (r < 0)
		return say(e, r, "chunks %llu..%llu: %s",
			   (unsigned long long)first,
			   (unsigned long long)(first + count - 1),
			   strerror(-r));
	cl->reading = true;
	return 1;
}

static int h_peers(struct psd_control *c, struct client *cl,
		   const struct psd_ctl_msg *m, struct reply_err *e)
{
	(void)c;
	(void)e;
	begin_reply(cl, m);	/* no peers until issue 6 */
	return 0;
}

static const handler_fn handlers[__PSD_CTL_TYPE_MAX] = {
	[PSD_CTL_HELLO] = h_hello,
	[PSD_CTL_STATUS] = h_status,
	[PSD_CTL_LIST] = h_list,
	[PSD_CTL_GET_MANIFEST] = h_get_manifest,
	[PSD_CTL_GET_INDEX] = h_get_index,
	[PSD_CTL_ADD_BEGIN] = h_add_begin,
	[PSD_CTL_ADD_INDEX] = h_add_index,
	[PSD_CTL_ADD_PRESENT] = h_add_present,
	[PSD_CTL_ADD_COMMIT] = h_add_commit,
	[PSD_CTL_ADD_ABORT] = h_add_abort,
	[PSD_CTL_ATTACHED] = h_attached,
	[PSD_CTL_DETACHED] = h_detached,
	[PSD_CTL_READ] = h_read,
	[PSD_CTL_PEERS] = h_peers,
};

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
		send_error(c, cl, m.seq, &e);
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
		send_error(c, cl, m.seq, &e);
		return;
	}
	r = handlers[m.type](c, cl, &m, &e);
	if (r > 0)
		return;		/* answered from a completion */
	if (r == 0)
		r = psd_ctl_finish(&cl->tx);
	if (r < 0) {
		if (!e.msg[0])
			say(&e, r, "%s reply: %s", psd_ctl_type_name(m.type),
			    strerror(-r));
		send_error(c, cl, m.seq, &e);
		return;
	}
	send_reply(c, cl);
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
