// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket server (agent/control*.c) in a real io_uring loop,
 * against a real store in a temporary directory and a real fetch engine.
 * Clients are plain blocking sockets driven from a helper thread while
 * the test thread runs the loop, so every byte goes through the kernel.
 *
 * Covered: the socket file and its directory, a live or stale socket at
 * the path, the handshake, every request (publish and commit flows,
 * LIST, GET_MANIFEST by id and prefix, GET_INDEX, READ against the image,
 * ATTACHED/DETACHED, STATUS, PEERS), errors that keep the connection,
 * malformed and oversized frames (closed and counted, others served),
 * too many clients, too many adds, clients vanishing mid-request and
 * mid-add, and a non-root peer.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "cache.h"
#include "control.h"
#include "ctl.h"
#include "fetch.h"
#include "loopdev.h"
#include "manifest.h"
#include "origin.h"
#include "store.h"

#define CHUNK		4096u
#define N_CHUNKS	10u
#define IMAGE_SIZE	(N_CHUNKS * CHUNK - 100)	/* last chunk partial */
#define ZERO_CHUNK	3u				/* all zeros */

/* ---- the image and its manifest ---------------------------------------- */

static uint8_t image_byte(uint64_t i)
{
	if (i / CHUNK == ZERO_CHUNK)
		return 0;
	return (uint8_t)(i * 7 + i / CHUNK + 1);
}

struct snap {
	uint8_t *manifest;
	size_t manifest_len;
	uint8_t id[PSD_HASH_LEN];
	uint8_t index[N_CHUNKS * PSD_HASH_LEN];	/* the one index chunk */
	size_t index_len;
};

static struct psd_identity alice, mallory;

static void make_keys(void)
{
	uint8_t seed[PSD_SEED_LEN];

	if (psd_chunkhash_init())
		abort();
	memset(seed, 'a', sizeof(seed));
	psd_identity_from_seed(seed, &alice);
	memset(seed, 'm', sizeof(seed));
	psd_identity_from_seed(seed, &mallory);
}

/* A manifest of the image (or of its name only: version differs). */
static int make_snap(struct snap *s, const char *name,
		     const struct psd_identity *signer)
{
	uint8_t chunk[CHUNK], ih[1][PSD_HASH_LEN];
	struct psd_manifest_params p = {
		.size = IMAGE_SIZE, .chunk_size = CHUNK,
		.index_chunk_size = 4096, .name = name, .created = 1700000000,
	};
	struct psd_manifest *m;

	for (uint64_t c = 0; c < N_CHUNKS; c++) {
		for (uint64_t i = 0; i < CHUNK; i++) {
			uint64_t at = c * CHUNK + i;

			chunk[i] = at < IMAGE_SIZE ? image_byte(at) : 0;
		}
		psd_chunkhash(chunk, CHUNK, s->index + c * PSD_HASH_LEN);
	}
	s->index_len = N_CHUNKS * PSD_HASH_LEN;
	psd_chunkhash(s->index, s->index_len, ih[0]);
	if (psd_manifest_encode(&p, (const uint8_t (*)[PSD_HASH_LEN])ih, 1,
				signer, &s->manifest, &s->manifest_len, NULL))
		return -1;
	if (psd_manifest_decode(s->manifest, s->manifest_len, &m, NULL))
		return -1;
	memcpy(s->id, m->id, PSD_HASH_LEN);
	psd_manifest_free(m);
	return 0;
}

/* ---- a client in a thread ---------------------------------------------- */

struct xfer {
	int fd;
	const uint8_t *out;
	size_t out_len;
	bool close_after_send;
	bool want_eof;		/* after the reply, expect the daemon to close */
	uint8_t *in;		/* the reply frame, malloc'ed */
	size_t in_len;
	int err;		/* client side: 0 or -errno */
	bool eof;
	atomic_bool done;
};

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (uint8_t *)buf + got, len - got);

		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
	return 0;
}

static int read_frame(struct xfer *x)
{
	uint8_t hdr[PSD_CTL_HDR_LEN];
	uint32_t len;
	int r;

	r = read_full(x->fd, hdr, sizeof(hdr));
	if (r)
		return r;
	if (psd_ctl_frame_len(hdr, sizeof(hdr), &len, NULL))
		return -EBADMSG;
	x->in = malloc(len);
	if (!x->in)
		return -ENOMEM;
	memcpy(x->in, hdr, sizeof(hdr));
	x->in_len = len;
	return read_full(x->fd, x->in + sizeof(hdr), len - sizeof(hdr));
}

static void *client_thread(void *arg)
{
	struct xfer *x = arg;
	size_t off = 0;
	char c;

	while (off < x->out_len && !x->err) {
		ssize_t n = send(x->fd, x->out + off, x->out_len - off,
				 MSG_NOSIGNAL);

		if (n < 0)
			x->err = -errno;
		else
			off += (size_t)n;
	}
	if (x->close_after_send) {
		close(x->fd);
		x->fd = -1;
	} else if (!x->err) {
		x->err = read_frame(x);
		if (!x->err && x->want_eof)
			x->eof = read(x->fd, &c, 1) == 0;
	}
	atomic_store(&x->done, true);
	return NULL;
}

/* ---- the fixture ------------------------------------------------------- */

FIXTURE(srv) {
	char dir[64];
	char sock[128];
	char image[128];
	struct psd_loop *loop;
	struct psd_store *store;
	struct psd_origins *origins;
	struct psd_cache *cache;
	struct psd_fetch *fetch;
	struct psd_control *ctl;
	struct __kernel_timespec tick;
	struct snap a;
	uint32_t seq;
	struct psd_ctl_buf req;
	uint8_t *reply;		/* the last reply, parsed into m */
	struct psd_ctl_msg m;
};

static void on_tick(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	(void)ud;
	(void)res;
	(void)flags;
	psd_loop_stop(ctx);
}

/* Runs the loop for a few milliseconds. */
static void pump(FIXTURE_DATA(srv) *self)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(self->loop);

	self->tick.tv_sec = 0;
	self->tick.tv_nsec = 2 * 1000000;
	io_uring_prep_timeout(sqe, &self->tick, 0, 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_TIMER });
	psd_loop_run(self->loop);
}

/* Runs the loop until the client thread finished (at most 20 s). */
static int run_xfer(FIXTURE_DATA(srv) *self, struct xfer *x)
{
	time_t deadline = time(NULL) + 20;
	pthread_t t;

	atomic_store(&x->done, false);
	if (pthread_create(&t, NULL, client_thread, x))
		return -1;
	while (!atomic_load(&x->done) && time(NULL) < deadline)
		pump(self);
	if (!atomic_load(&x->done))
		shutdown(x->fd, SHUT_RDWR);	/* unblock, then fail */
	pthread_join(t, NULL);
	return atomic_load(&x->done) ? 0 : -1;
}

/*
 * Runs the loop until the daemon has accepted `accepted` connections in
 * all and `clients` of them are still connected; 0, or -ETIMEDOUT after
 * 20 s. A client that vanished is noticed only in later completions: at
 * its hangup, or -- if it left a request being answered -- when the
 * reply fails, after a READ whose file I/O takes what it takes. A STATUS
 * from another client is answered meanwhile, so counters are read only
 * once this says the daemon is done with the ones that left.
 */
static int settle(FIXTURE_DATA(srv) *self, uint64_t accepted,
		  uint64_t clients)
{
	const struct psd_control_stats *st = psd_control_get_stats(self->ctl);
	time_t deadline = time(NULL) + 20;

	while (st->accepted != accepted || st->clients != clients) {
		if (time(NULL) >= deadline)
			return -ETIMEDOUT;
		pump(self);
	}
	return 0;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	return fd;
}

static void on_done(void *ctx, const struct psd_fetch_done *d)
{
	(void)ctx;
	(void)d;
}

static void on_nothing(void *ctx)
{
	(void)ctx;
}

static const struct psd_fetch_ops fetch_ops = {
	.done = on_done, .overflow = on_nothing,
	.queue_empty = on_nothing, .drained = on_nothing,
};

static int write_image(const char *path)
{
	uint8_t *buf = malloc(IMAGE_SIZE);
	FILE *f = fopen(path, "w");
	int r = -1;

	if (buf && f) {
		for (uint64_t i = 0; i < IMAGE_SIZE; i++)
			buf[i] = image_byte(i);
		r = fwrite(buf, 1, IMAGE_SIZE, f) == IMAGE_SIZE ? 0 : -1;
	}
	if (f && fclose(f))
		r = -1;
	free(buf);
	return r;
}

static int start_control(FIXTURE_DATA(srv) *self)
{
	struct psd_control_params p = {
		.path = self->sock, .daemon_version = "test-1.2",
		.loop = self->loop, .store = self->store, .fetch = self->fetch,
	};
	char err[256];

	return psd_control_init(&self->ctl, &p, err, sizeof(err));
}

FIXTURE_SETUP(srv)
{
	struct psd_fetch_limits lim = {
		.max_inflight = 8, .max_queued = 64, .max_buffer_bytes = 64 << 20,
	};
	struct psd_trust trust = { .keys = &alice.pk, .n = 1 };
	char path[192], err[256];

	make_keys();
	snprintf(self->dir, sizeof(self->dir), "/tmp/psd-control-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->sock, sizeof(self->sock), "%s/run/control.sock",
		 self->dir);
	snprintf(self->image, sizeof(self->image), "%s/image.raw", self->dir);
	ASSERT_EQ(0, write_image(self->image));
	snprintf(path, sizeof(path), "%s/store", self->dir);
	ASSERT_EQ(0, mkdir(path, 0700));
	ASSERT_EQ(0, psd_store_open(&self->store, path, &trust, err,
				    sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(0, psd_loop_init(&self->loop, 64));
	psd_loop_set_handler(self->loop, PSD_OP_TIMER, on_tick, self->loop);
	ASSERT_EQ(0, psd_origins_init(&self->origins, NULL, 0));
	ASSERT_EQ(0, psd_cache_init(&self->cache, self->dir));
	ASSERT_EQ(0, psd_fetch_init(&self->fetch, self->loop, self->origins,
				    self->cache, self->store, &lim, &fetch_ops,
				    NULL));
	ASSERT_EQ(0, start_control(self));
	ASSERT_EQ(0, make_snap(&self->a, "base", &alice));
}

FIXTURE_TEARDOWN(srv)
{
	char cmd[128];

	psd_control_shutdown(self->ctl);
	psd_loop_quiesce(self->loop, 1000);
	psd_control_uninit(self->ctl);
	psd_fetch_uninit(self->fetch);
	psd_cache_uninit(self->cache);
	psd_origins_uninit(self->origins);
	psd_store_close(self->store);
	psd_loop_uninit(self->loop);
	psd_ctl_buf_free(&self->req);
	free(self->reply);
	free(self->a.manifest);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", self->dir);
	if (system(cmd))
		TH_LOG("cleanup of %s failed", self->dir);
}

/* Sends the frame in self->req on fd and parses the reply into self->m;
 * returns the reply's type, or -1 if there was none. */
static int transact(FIXTURE_DATA(srv) *self, int fd)
{
	struct psd_ctl_err err;
	struct xfer x = { .fd = fd };

	if (psd_ctl_finish(&self->req))
		return -1;
	x.out = self->req.p;
	x.out_len = self->req.len;
	free(self->reply);
	self->reply = NULL;
	if (run_xfer(self, &x) || x.err) {
		free(x.in);
		return -1;
	}
	self->reply = x.in;
	if (psd_ctl_parse(x.in, x.in_len, &self->m, &err))
		return -1;
	return self->m.type;
}

static void req(FIXTURE_DATA(srv) *self, uint16_t type)
{
	psd_ctl_begin(&self->req, type, ++self->seq);
}

/* The reply's ERRNO, or 0 if it is not an ERROR. */
static int reply_errno(FIXTURE_DATA(srv) *self)
{
	if (self->m.type != PSD_CTL_ERROR)
		return 0;
	return psd_ctl_s32(&self->m.at, PSD_CTL_A_ERRNO);
}

static const char *reply_msg(FIXTURE_DATA(srv) *self)
{
	const char *s = psd_ctl_str(&self->m.at, PSD_CTL_A_MESSAGE);

	return s ? s : "";
}

/* A connected client that said HELLO. */
static int hello_client(FIXTURE_DATA(srv) *self)
{
	int fd = connect_to(self->sock);

	if (fd < 0)
		return -1;
	req(self, PSD_CTL_HELLO);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_VERSION, PSD_CTL_VERSION);
	if (transact(self, fd) != (PSD_CTL_HELLO | PSD_CTL_REPLY)) {
		close(fd);
		return -1;
	}
	return fd;
}

static uint64_t counter(FIXTURE_DATA(srv) *self, int fd, const char *name)
{
	struct psd_ctl_attrs c;
	uint32_t pos = 0;

	req(self, PSD_CTL_STATUS);
	if (transact(self, fd) != (PSD_CTL_STATUS | PSD_CTL_REPLY))
		return UINT64_MAX;
	while (psd_ctl_nest_next(&self->m, PSD_CTL_A_COUNTER, &pos, &c) == 1)
		if (!strcmp(psd_ctl_str(&c, PSD_CTL_A_NAME), name))
			return psd_ctl_u64(&c, PSD_CTL_A_VALUE);
	return UINT64_MAX - 1;
}

static int add_begin(FIXTURE_DATA(srv) *self, int fd, const struct snap *s,
		     uint8_t kind, const char *path)
{
	req(self, PSD_CTL_ADD_BEGIN);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_MANIFEST, s->manifest,
			  s->manifest_len);
	psd_ctl_put_u8(&self->req, PSD_CTL_A_SOURCE_KIND, kind);
	psd_ctl_put_str(&self->req, PSD_CTL_A_PATH, path);
	return transact(self, fd);
}

static int add_index(FIXTURE_DATA(srv) *self, int fd, uint32_t k,
		     const void *data, size_t len)
{
	req(self, PSD_CTL_ADD_INDEX);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_INDEX, k);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_INDEX_DATA, data, len);
	return transact(self, fd);
}

/* Publishes self->a with the image as its origin. */
static int publish(FIXTURE_DATA(srv) *self, int fd)
{
	if (add_begin(self, fd, &self->a, PSD_CTL_SOURCE_ORIGIN,
		      self->image) != (PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY))
		return -1;
	if (add_index(self, fd, 0, self->a.index, self->a.index_len) !=
	    (PSD_CTL_ADD_INDEX | PSD_CTL_REPLY))
		return -1;
	req(self, PSD_CTL_ADD_COMMIT);
	return transact(self, fd) == (PSD_CTL_ADD_COMMIT | PSD_CTL_REPLY) ?
	       0 : -1;
}

/* Sends raw bytes, expects an ERROR and then the daemon closing. */
static int expect_closed(FIXTURE_DATA(srv) *self, int fd, const void *bytes,
			 size_t len)
{
	struct psd_ctl_err err;
	struct xfer x = { .fd = fd, .out = bytes, .out_len = len,
			  .want_eof = true };

	free(self->reply);
	self->reply = NULL;
	if (run_xfer(self, &x) || x.err || !x.eof) {
		free(x.in);
		return -1;
	}
	self->reply = x.in;
	if (psd_ctl_parse(x.in, x.in_len, &self->m, &err) ||
	    self->m.type != PSD_CTL_ERROR)
		return -1;
	return reply_errno(self);
}

/* ---- the socket file --------------------------------------------------- */

TEST_F(srv, socket_file_and_directory)
{
	char dir[192];
	struct stat st;

	ASSERT_EQ(0, lstat(self->sock, &st));
	EXPECT_TRUE(S_ISSOCK(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777);
	snprintf(dir, sizeof(dir), "%s/run", self->dir);
	ASSERT_EQ(0, stat(dir, &st));
	EXPECT_EQ(0700, st.st_mode & 07777);
}

TEST_F(srv, live_socket_kept_stale_removed_other_files_refused)
{
	struct psd_control *other = NULL;
	struct psd_control_params p = {
		.path = self->sock, .daemon_version = "x",
		.loop = self->loop, .store = self->store,
	};
	char err[256] = "", stale[192];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	/* A second daemon on the same path. */
	EXPECT_EQ(-EADDRINUSE, psd_control_init(&other, &p, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, self->sock));
	EXPECT_EQ(0, access(self->sock, F_OK));		/* left alone */

	/* A regular file there. */
	snprintf(stale, sizeof(stale), "%s/not-a-socket", self->dir);
	fclose(fopen(stale, "w"));
	p.path = stale;
	EXPECT_EQ(-EEXIST, psd_control_init(&other, &p, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "not a socket"));

	/* A socket file nobody listens on (a daemon that died). */
	snprintf(stale, sizeof(stale), "%s/stale.sock", self->dir);
	strncpy(sa.sun_path, stale, sizeof(sa.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
	close(fd);
	p.path = stale;
	p.loop = self->loop;
	/* Handlers are per loop: a second server needs its own loop. */
	ASSERT_EQ(0, psd_loop_init(&p.loop, 8));
	EXPECT_EQ(0, psd_control_init(&other, &p, err, sizeof(err)))
		TH_LOG("%s", err);
	fd = connect_to(stale);
	EXPECT_LE(0, fd);
	close(fd);
	psd_control_shutdown(other);
	EXPECT_NE(0, access(stale, F_OK));		/* removed at shutdown */
	psd_loop_quiesce(p.loop, 1000);
	psd_control_uninit(other);
	psd_loop_uninit(p.loop);

	/* Relative and overlong paths. */
	p.path = "relative.sock";
	EXPECT_EQ(-EINVAL, psd_control_init(&other, &p, err, sizeof(err)));
	memset(stale, 'x', sizeof(stale) - 1);
	stale[0] = '/';
	stale[sizeof(stale) - 1] = '\0';
	p.path = stale;
	EXPECT_EQ(-ENAMETOOLONG, psd_control_init(&other, &p, err, sizeof(err)));
}

/* ---- handshake --------------------------------------------------------- */

TEST_F(srv, hello_first_and_versions)
{
	int fd;

	fd = hello_client(self);
	ASSERT_LE(0, fd);
	EXPECT_EQ(PSD_CTL_VERSION, psd_ctl_u32(&self->m.at, PSD_CTL_A_VERSION));
	EXPECT_STREQ("test-1.2",
		     psd_ctl_str(&self->m.at, PSD_CTL_A_DAEMON_VERSION));
	EXPECT_EQ(self->seq, self->m.seq);
	close(fd);

	/* Anything else first: -EPROTO, closed. */
	fd = connect_to(self->sock);
	req(self, PSD_CTL_STATUS);
	ASSERT_EQ(0, psd_ctl_finish(&self->req));
	EXPECT_EQ(-EPROTO, expect_closed(self, fd, self->req.p, self->req.len));
	EXPECT_STREQ("STATUS before HELLO", reply_msg(self));
	close(fd);

	/* Another protocol version: -EPROTONOSUPPORT, closed. */
	fd = connect_to(self->sock);
	req(self, PSD_CTL_HELLO);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_VERSION, 7);
	ASSERT_EQ(0, psd_ctl_finish(&self->req));
	EXPECT_EQ(-EPROTONOSUPPORT,
		  expect_closed(self, fd, self->req.p, self->req.len));
	EXPECT_STREQ("protocol version 7 not supported (daemon speaks 1)",
		     reply_msg(self));
	close(fd);
}

/* ---- requests ---------------------------------------------------------- */

TEST_F(srv, publish_list_get_read)
{
	struct psd_ctl_attrs s;
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];
	uint32_t pos = 0, len;
	const uint8_t *v;
	int fd, n = 0;

	fd = hello_client(self);
	ASSERT_LE(0, fd);

	ASSERT_EQ(PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY,
		  add_begin(self, fd, &self->a, PSD_CTL_SOURCE_ORIGIN,
			    self->image)) TH_LOG("%s", reply_msg(self));
	EXPECT_EQ(0, memcmp(self->a.id,
			    psd_ctl_bytes(&self->m.at, PSD_CTL_A_ID, NULL), 32));
	EXPECT_EQ(1u, psd_ctl_u32(&self->m.at, PSD_CTL_A_INDEX_COUNT));
	/* Not in the store before the commit. */
	EXPECT_EQ(NULL, psd_store_get(self->store, self->a.id));
	ASSERT_EQ(PSD_CTL_ADD_INDEX | PSD_CTL_REPLY,
		  add_index(self, fd, 0, self->a.index, self->a.index_len))
		TH_LOG("%s", reply_msg(self));
	req(self, PSD_CTL_ADD_COMMIT);
	ASSERT_EQ(PSD_CTL_ADD_COMMIT | PSD_CTL_REPLY, transact(self, fd))
		TH_LOG("%s", reply_msg(self));
	EXPECT_EQ(0, memcmp(self->a.id,
			    psd_ctl_bytes(&self->m.at, PSD_CTL_A_ID, NULL), 32));
	ASSERT_NE(NULL, psd_store_get(self->store, self->a.id));
	EXPECT_STREQ(self->image,
		     psd_store_origin(psd_store_get(self->store, self->a.id)));

	/* LIST */
	req(self, PSD_CTL_LIST);
	ASSERT_EQ(PSD_CTL_LIST | PSD_CTL_REPLY, transact(self, fd));
	EXPECT_FALSE(psd_ctl_has(&self->m.at, PSD_CTL_A_MORE));
	while (psd_ctl_nest_next(&self->m, PSD_CTL_A_SNAPSHOT, &pos, &s) == 1) {
		EXPECT_EQ(0, memcmp(self->a.id,
				    psd_ctl_bytes(&s, PSD_CTL_A_ID, NULL), 32));
		EXPECT_STREQ("base", psd_ctl_str(&s, PSD_CTL_A_NAME));
		EXPECT_EQ(IMAGE_SIZE, psd_ctl_u64(&s, PSD_CTL_A_SIZE));
		EXPECT_EQ(CHUNK, psd_ctl_u32(&s, PSD_CTL_A_CHUNK_SIZE));
		EXPECT_EQ(N_CHUNKS, psd_ctl_u64(&s, PSD_CTL_A_CHUNK_COUNT));
		EXPECT_EQ(1700000000u, psd_ctl_u64(&s, PSD_CTL_A_CREATED));
		EXPECT_FALSE(psd_ctl_has(&s, PSD_CTL_A_PARENT));
		EXPECT_EQ(0, memcmp(alice.pk,
				    psd_ctl_bytes(&s, PSD_CTL_A_PUBLISHER, NULL),
				    32));
		EXPECT_EQ(1, psd_ctl_u8(&s, PSD_CTL_A_HAS_ORIGIN));
		n++;
	}
	EXPECT_EQ(1, n);
	/* LIST after the only id: empty. */
	req(self, PSD_CTL_LIST);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_AFTER, self->a.id, 32);
	ASSERT_EQ(PSD_CTL_LIST | PSD_CTL_REPLY, transact(self, fd));
	pos = 0;
	EXPECT_EQ(0, psd_ctl_nest_next(&self->m, PSD_CTL_A_SNAPSHOT, &pos, &s));

	/* GET_MANIFEST by id and by an 8-digit upper-case prefix. */
	req(self, PSD_CTL_GET_MANIFEST);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
	ASSERT_EQ(PSD_CTL_GET_MANIFEST | PSD_CTL_REPLY, transact(self, fd));
	v = psd_ctl_bytes(&self->m.at, PSD_CTL_A_MANIFEST, &len);
	ASSERT_EQ(self->a.manifest_len, len);
	EXPECT_EQ(0, memcmp(self->a.manifest, v, len));
	psd_hex_id_format(self->a.id, hex);
	hex[8] = '\0';
	for (int i = 0; i < 8; i++)
		hex[i] = (char)toupper(hex[i]);
	req(self, PSD_CTL_GET_MANIFEST);
	psd_ctl_put_str(&self->req, PSD_CTL_A_ID_PREFIX, hex);
	ASSERT_EQ(PSD_CTL_GET_MANIFEST | PSD_CTL_REPLY, transact(self, fd))
		TH_LOG("%s", reply_msg(self));
	EXPECT_EQ(0, memcmp(self->a.id,
			    psd_ctl_bytes(&self->m.at, PSD_CTL_A_ID, NULL), 32));

	/* GET_INDEX */
	req(self, PSD_CTL_GET_INDEX);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_INDEX, 0);
	ASSERT_EQ(PSD_CTL_GET_INDEX | PSD_CTL_REPLY, transact(self, fd));
	v = psd_ctl_bytes(&self->m.at, PSD_CTL_A_INDEX_DATA, &len);
	ASSERT_EQ(self->a.index_len, len);
	EXPECT_EQ(0, memcmp(self->a.index, v, len));

	/* READ every chunk, four at a time: the image, cut at its end. */
	for (uint32_t first = 0; first < N_CHUNKS; first += 4) {
		uint32_t count = N_CHUNKS - first < 4 ? N_CHUNKS - first : 4;
		uint64_t want = (uint64_t)count * CHUNK;

		if (first * CHUNK + want > IMAGE_SIZE)
			want = IMAGE_SIZE - first * CHUNK;
		req(self, PSD_CTL_READ);
		psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
		psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, first);
		psd_ctl_put_u32(&self->req, PSD_CTL_A_COUNT, count);
		ASSERT_EQ(PSD_CTL_READ | PSD_CTL_REPLY, transact(self, fd))
			TH_LOG("%s", reply_msg(self));
		EXPECT_EQ(first, psd_ctl_u64(&self->m.at, PSD_CTL_A_FIRST_CHUNK));
		EXPECT_EQ(count, psd_ctl_u32(&self->m.at, PSD_CTL_A_COUNT));
		v = psd_ctl_bytes(&self->m.at, PSD_CTL_A_DATA, &len);
		ASSERT_EQ(want, len);
		for (uint32_t i = 0; i < len; i++)
			if (v[i] != image_byte((uint64_t)first * CHUNK + i)) {
				ASSERT_EQ(image_byte((uint64_t)first * CHUNK + i),
					  v[i]) TH_LOG("byte %u", i);
			}
	}
	EXPECT_LE(1u, counter(self, fd, "fetch.chunks_origin"));
	EXPECT_EQ(1u, counter(self, fd, "fetch.chunks_zero"));
	close(fd);
}

TEST_F(srv, errors_keep_the_connection)
{
	struct snap m;
	int fd;

	ASSERT_EQ(0, make_snap(&m, "evil", &mallory));
	fd = hello_client(self);
	ASSERT_LE(0, fd);

	/* Without an add. */
	ASSERT_EQ(PSD_CTL_ERROR, add_index(self, fd, 0, "x", 1));
	EXPECT_EQ(-ENOENT, reply_errno(self));
	EXPECT_STREQ("ADD_INDEX without ADD_BEGIN", reply_msg(self));
	req(self, PSD_CTL_ADD_COMMIT);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENOENT, reply_errno(self));

	/* An untrusted publisher. */
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &m, PSD_CTL_SOURCE_ORIGIN,
					   self->image));
	EXPECT_EQ(-EKEYREJECTED, reply_errno(self));
	EXPECT_NE(NULL, strstr(reply_msg(self), "manifest refused"));
	/* Garbage as a manifest. */
	free(m.manifest);
	m.manifest = (uint8_t *)strdup("PSNAPMAN garbage");
	m.manifest_len = 16;
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &m, PSD_CTL_SOURCE_ORIGIN,
					   self->image));
	EXPECT_EQ(-EBADMSG, reply_errno(self));
	/* Sources: unknown kind, relative, missing, wrong size, not a
	 * block device. */
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &self->a, 9, self->image));
	EXPECT_EQ(-EINVAL, reply_errno(self));
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &self->a,
					   PSD_CTL_SOURCE_ORIGIN, "image.raw"));
	EXPECT_EQ(-EINVAL, reply_errno(self));
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &self->a,
					   PSD_CTL_SOURCE_ORIGIN, "/nonexistent"));
	EXPECT_EQ(-ENOENT, reply_errno(self));
	EXPECT_STREQ("source '/nonexistent': No such file or directory",
		     reply_msg(self));
	ASSERT_EQ(0, truncate(self->image, IMAGE_SIZE + 1));
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &self->a,
					   PSD_CTL_SOURCE_ORIGIN, self->image));
	EXPECT_EQ(-EMEDIUMTYPE, reply_errno(self));
	ASSERT_EQ(0, truncate(self->image, IMAGE_SIZE));
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &self->a,
					   PSD_CTL_SOURCE_CACHE, self->image));
	EXPECT_EQ(-ENOTBLK, reply_errno(self));

	/* A good begin; then a second one, a bad index chunk, an early
	 * commit. */
	ASSERT_EQ(PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY,
		  add_begin(self, fd, &self->a, PSD_CTL_SOURCE_ORIGIN,
			    self->image));
	ASSERT_EQ(PSD_CTL_ERROR, add_begin(self, fd, &self->a,
					   PSD_CTL_SOURCE_ORIGIN, self->image));
	EXPECT_EQ(-EBUSY, reply_errno(self));
	self->a.index[5] ^= 1;
	ASSERT_EQ(PSD_CTL_ERROR,
		  add_index(self, fd, 0, self->a.index, self->a.index_len));
	self->a.index[5] ^= 1;
	EXPECT_EQ(-EBADMSG, reply_errno(self));
	EXPECT_NE(NULL, strstr(reply_msg(self), "index chunk 0"));
	ASSERT_EQ(PSD_CTL_ERROR,
		  add_index(self, fd, 1, self->a.index, self->a.index_len));
	EXPECT_EQ(-ERANGE, reply_errno(self));
	/* A 4 MiB frame (received in many pieces) of a wrong-length
	 * index chunk: refused by the store, the connection kept. */
	uint8_t *big = calloc(1, PSD_INDEX_CHUNK_SIZE_MAX);

	ASSERT_NE(NULL, big);
	ASSERT_EQ(PSD_CTL_ERROR,
		  add_index(self, fd, 0, big, PSD_INDEX_CHUNK_SIZE_MAX));
	EXPECT_EQ(-EBADMSG, reply_errno(self));
	free(big);
	req(self, PSD_CTL_ADD_PRESENT);	/* origin source: no bitmap */
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 0);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_BITMAP, "\x01", 1);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-EINVAL, reply_errno(self));
	req(self, PSD_CTL_ADD_COMMIT);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENODATA, reply_errno(self));
	EXPECT_EQ(NULL, psd_store_get(self->store, self->a.id));
	/* The failed commit ended the add. */
	req(self, PSD_CTL_ADD_ABORT);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENOENT, reply_errno(self));
	/* Begin, abort, begin again works. */
	ASSERT_EQ(PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY,
		  add_begin(self, fd, &self->a, PSD_CTL_SOURCE_ORIGIN,
			    self->image));
	req(self, PSD_CTL_ADD_ABORT);
	ASSERT_EQ(PSD_CTL_ADD_ABORT | PSD_CTL_REPLY, transact(self, fd));
	ASSERT_EQ(0, publish(self, fd));

	/* Lookups. */
	req(self, PSD_CTL_GET_MANIFEST);
	psd_ctl_put_str(&self->req, PSD_CTL_A_ID_PREFIX, "00000000");
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENOENT, reply_errno(self));
	EXPECT_STREQ("no snapshot matches '00000000'", reply_msg(self));
	req(self, PSD_CTL_GET_MANIFEST);
	psd_ctl_put_str(&self->req, PSD_CTL_A_ID_PREFIX, "xyz");
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-EINVAL, reply_errno(self));
	req(self, PSD_CTL_GET_MANIFEST);	/* neither */
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-EINVAL, reply_errno(self));
	req(self, PSD_CTL_GET_INDEX);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_INDEX, 1);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ERANGE, reply_errno(self));
	req(self, PSD_CTL_GET_INDEX);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, m.id, 32);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_INDEX, 0);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENOENT, reply_errno(self));

	/* READ limits: count 0, more than 4 MiB, past the end. */
	const struct { uint64_t first; uint32_t count; int err; } reads[] = {
		{ 0, 0, -EINVAL }, { 0, 1025, -EINVAL },
		{ N_CHUNKS - 1, 2, -ERANGE }, { N_CHUNKS, 1, -ERANGE },
		{ UINT64_MAX, 1, -ERANGE },
	};
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
		req(self, PSD_CTL_READ);
		psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
		psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK,
				reads[i].first);
		psd_ctl_put_u32(&self->req, PSD_CTL_A_COUNT, reads[i].count);
		ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
		EXPECT_EQ(reads[i].err, reply_errno(self)) TH_LOG("read %zu", i);
	}

	/* DETACHED of a name nobody attached; PEERS is empty. */
	req(self, PSD_CTL_DETACHED);
	psd_ctl_put_str(&self->req, PSD_CTL_A_DM_NAME, "nosuch");
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENOENT, reply_errno(self));
	EXPECT_STREQ("no attached device named 'nosuch'", reply_msg(self));
	req(self, PSD_CTL_PEERS);
	ASSERT_EQ(PSD_CTL_PEERS | PSD_CTL_REPLY, transact(self, fd));
	EXPECT_EQ(0u, self->m.body_len);

	/* An unknown message type: answered, connection kept. */
	req(self, 0x7777);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-EOPNOTSUPP, reply_errno(self));
	EXPECT_EQ(self->seq, self->m.seq);
	EXPECT_EQ(0u, counter(self, fd, "control.malformed"));
	EXPECT_LE(20u, counter(self, fd, "control.errors"));
	free(m.manifest);
	close(fd);
}

/* Three snapshots: LIST sorts by id and resumes after AFTER. One is all
 * zeros: its index chunk is never sent, and GET_INDEX gives zeros. */
TEST_F(srv, list_order_after_and_an_all_zero_snapshot)
{
	struct psd_manifest_params zp = {
		.size = 4 * CHUNK, .chunk_size = CHUNK, .index_chunk_size = 4096,
		.name = "zeros", .created = 1700000001,
	};
	static const uint8_t zero_index[1][PSD_HASH_LEN];
	uint8_t ids[3][PSD_HASH_LEN], got[3][PSD_HASH_LEN];
	struct snap b, z = { 0 };
	struct psd_ctl_attrs e;
	char zimg[192];
	uint32_t pos = 0, len;
	const uint8_t *v;
	int fd, n = 0;

	fd = hello_client(self);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, publish(self, fd));
	memcpy(ids[0], self->a.id, PSD_HASH_LEN);
	ASSERT_EQ(0, make_snap(&b, "base v2", &alice));
	ASSERT_EQ(PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY,
		  add_begin(self, fd, &b, PSD_CTL_SOURCE_ORIGIN, self->image));
	ASSERT_EQ(PSD_CTL_ADD_INDEX | PSD_CTL_REPLY,
		  add_index(self, fd, 0, b.index, b.index_len));
	req(self, PSD_CTL_ADD_COMMIT);
	ASSERT_EQ(PSD_CTL_ADD_COMMIT | PSD_CTL_REPLY, transact(self, fd));
	memcpy(ids[1], b.id, PSD_HASH_LEN);

	snprintf(zimg, sizeof(zimg), "%s/zeros.raw", self->dir);
	fclose(fopen(zimg, "w"));
	ASSERT_EQ(0, truncate(zimg, 4 * CHUNK));
	ASSERT_EQ(0, psd_manifest_encode(&zp, zero_index, 1, &alice,
					 &z.manifest, &z.manifest_len, NULL));
	ASSERT_EQ(PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY,
		  add_begin(self, fd, &z, PSD_CTL_SOURCE_ORIGIN, zimg))
		TH_LOG("%s", reply_msg(self));
	memcpy(ids[2], psd_ctl_bytes(&self->m.at, PSD_CTL_A_ID, NULL),
	       PSD_HASH_LEN);
	req(self, PSD_CTL_ADD_COMMIT);		/* no index chunk to send */
	ASSERT_EQ(PSD_CTL_ADD_COMMIT | PSD_CTL_REPLY, transact(self, fd))
		TH_LOG("%s", reply_msg(self));
	req(self, PSD_CTL_GET_INDEX);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, ids[2], 32);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_INDEX, 0);
	ASSERT_EQ(PSD_CTL_GET_INDEX | PSD_CTL_REPLY, transact(self, fd))
		TH_LOG("%s", reply_msg(self));
	v = psd_ctl_bytes(&self->m.at, PSD_CTL_A_INDEX_DATA, &len);
	EXPECT_EQ(4 * PSD_HASH_LEN, len);
	EXPECT_TRUE(psd_chunk_is_zero(v, len));

	req(self, PSD_CTL_LIST);
	ASSERT_EQ(PSD_CTL_LIST | PSD_CTL_REPLY, transact(self, fd));
	while (psd_ctl_nest_next(&self->m, PSD_CTL_A_SNAPSHOT, &pos, &e) == 1)
		memcpy(got[n++], psd_ctl_bytes(&e, PSD_CTL_A_ID, NULL), 32);
	ASSERT_EQ(3, n);
	for (int i = 0; i < 2; i++)
		EXPECT_GT(0, memcmp(got[i], got[i + 1], PSD_HASH_LEN));
	for (int i = 0; i < 3; i++)
		EXPECT_TRUE(!memcmp(got[i], ids[0], 32) ||
			    !memcmp(got[i], ids[1], 32) ||
			    !memcmp(got[i], ids[2], 32));
	req(self, PSD_CTL_LIST);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_AFTER, got[0], 32);
	ASSERT_EQ(PSD_CTL_LIST | PSD_CTL_REPLY, transact(self, fd));
	pos = 0;
	n = 0;
	while (psd_ctl_nest_next(&self->m, PSD_CTL_A_SNAPSHOT, &pos, &e) == 1)
		EXPECT_EQ(0, memcmp(got[1 + n++],
				    psd_ctl_bytes(&e, PSD_CTL_A_ID, NULL), 32));
	EXPECT_EQ(2, n);
	free(b.manifest);
	free(z.manifest);
	close(fd);
}

/* The corrupted origin: READ fails with EIO, never returns wrong data. */
TEST_F(srv, read_of_a_corrupted_origin_fails)
{
	FILE *f;
	int fd;

	fd = hello_client(self);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, publish(self, fd));
	f = fopen(self->image, "r+");
	ASSERT_NE(NULL, f);
	fseek(f, 5 * CHUNK + 17, SEEK_SET);
	fputc(image_byte(5 * CHUNK + 17) ^ 0xff, f);
	fclose(f);
	req(self, PSD_CTL_READ);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 4);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_COUNT, 2);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-EIO, reply_errno(self));
	EXPECT_NE(NULL, strstr(reply_msg(self), "chunks 4..5"));
	EXPECT_LE(1u, counter(self, fd, "fetch.hash_mismatch"));
	close(fd);
}

TEST_F(srv, commit_from_a_cache_device_attach_detach)
{
	const struct psd_store_snapshot *sn;
	struct loopdev ld;
	int fd;

	if (loopdev_create(&ld, N_CHUNKS * CHUNK) < 0)
		SKIP(return, "no loop device: %s", strerror(errno));
	fd = hello_client(self);
	ASSERT_LE(0, fd);
	ASSERT_EQ(PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY,
		  add_begin(self, fd, &self->a, PSD_CTL_SOURCE_CACHE, ld.node))
		TH_LOG("%s", reply_msg(self));
	/* Bitmap slices: alignment, range, bits past the end. */
	req(self, PSD_CTL_ADD_PRESENT);
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 3);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_BITMAP, "\x01", 1);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-EINVAL, reply_errno(self));
	req(self, PSD_CTL_ADD_PRESENT);
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 8);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_BITMAP, "\x01\x01", 2);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ERANGE, reply_errno(self));
	req(self, PSD_CTL_ADD_PRESENT);
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 8);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_BITMAP, "\x04", 1);
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-EINVAL, reply_errno(self));
	EXPECT_NE(NULL, strstr(reply_msg(self), "past the last chunk 9"));
	/* Chunks 0, 1 and 9, in two slices. */
	req(self, PSD_CTL_ADD_PRESENT);
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 8);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_BITMAP, "\x02", 1);
	ASSERT_EQ(PSD_CTL_ADD_PRESENT | PSD_CTL_REPLY, transact(self, fd));
	req(self, PSD_CTL_ADD_PRESENT);
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 0);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_BITMAP, "\x03", 1);
	ASSERT_EQ(PSD_CTL_ADD_PRESENT | PSD_CTL_REPLY, transact(self, fd));
	ASSERT_EQ(PSD_CTL_ADD_INDEX | PSD_CTL_REPLY,
		  add_index(self, fd, 0, self->a.index, self->a.index_len));
	req(self, PSD_CTL_ADD_COMMIT);
	ASSERT_EQ(PSD_CTL_ADD_COMMIT | PSD_CTL_REPLY, transact(self, fd))
		TH_LOG("%s", reply_msg(self));
	sn = psd_store_get(self->store, self->a.id);
	ASSERT_NE(NULL, sn);
	EXPECT_EQ(NULL, psd_store_origin(sn));
	EXPECT_EQ(1u, psd_store_get_stats(self->store)->cache_records);

	/* ATTACHED / DETACHED */
	req(self, PSD_CTL_ATTACHED);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
	psd_ctl_put_str(&self->req, PSD_CTL_A_PATH, ld.node);
	psd_ctl_put_str(&self->req, PSD_CTL_A_DM_NAME, "snap0");
	ASSERT_EQ(PSD_CTL_ATTACHED | PSD_CTL_REPLY, transact(self, fd))
		TH_LOG("%s", reply_msg(self));
	EXPECT_TRUE(psd_store_cache_attached(self->store, "snap0"));
	req(self, PSD_CTL_DETACHED);
	psd_ctl_put_str(&self->req, PSD_CTL_A_DM_NAME, "snap0");
	ASSERT_EQ(PSD_CTL_DETACHED | PSD_CTL_REPLY, transact(self, fd))
		TH_LOG("%s", reply_msg(self));
	EXPECT_FALSE(psd_store_cache_attached(self->store, "snap0"));
	/* ATTACHED of an unknown snapshot, or to a file. */
	req(self, PSD_CTL_ATTACHED);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.index, 32);
	psd_ctl_put_str(&self->req, PSD_CTL_A_PATH, ld.node);
	psd_ctl_put_str(&self->req, PSD_CTL_A_DM_NAME, "snap1");
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENOENT, reply_errno(self));
	req(self, PSD_CTL_ATTACHED);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
	psd_ctl_put_str(&self->req, PSD_CTL_A_PATH, self->image);
	psd_ctl_put_str(&self->req, PSD_CTL_A_DM_NAME, "snap1");
	ASSERT_EQ(PSD_CTL_ERROR, transact(self, fd));
	EXPECT_EQ(-ENOTBLK, reply_errno(self));
	close(fd);
	loopdev_destroy(&ld);
}

TEST_F(srv, status_counters)
{
	struct psd_ctl_attrs c;
	uint32_t pos = 0;
	int fd, n = 0;
	bool fetch = false, store = false, control = false;

	fd = hello_client(self);
	ASSERT_LE(0, fd);
	req(self, PSD_CTL_STATUS);
	ASSERT_EQ(PSD_CTL_STATUS | PSD_CTL_REPLY, transact(self, fd));
	EXPECT_TRUE(psd_ctl_has(&self->m.at, PSD_CTL_A_UPTIME));
	EXPECT_GE(5u, psd_ctl_u64(&self->m.at, PSD_CTL_A_UPTIME));
	while (psd_ctl_nest_next(&self->m, PSD_CTL_A_COUNTER, &pos, &c) == 1) {
		const char *name = psd_ctl_str(&c, PSD_CTL_A_NAME);

		fetch |= !strncmp(name, "fetch.", 6);
		store |= !strncmp(name, "store.", 6);
		control |= !strncmp(name, "control.", 8);
		n++;
	}
	EXPECT_TRUE(fetch && store && control);
	EXPECT_LE(20, n);
	EXPECT_EQ(1u, counter(self, fd, "control.clients"));
	EXPECT_EQ(1u, counter(self, fd, "control.accepted"));
	/* HELLO, four STATUS before, and the one of this very call. */
	EXPECT_EQ(5u, counter(self, fd, "control.requests"));
	EXPECT_EQ(0u, counter(self, fd, "store.snapshots"));
	EXPECT_EQ(0u, counter(self, fd, "fetch.received"));
	close(fd);
}

/* ---- hostile clients --------------------------------------------------- */

TEST_F(srv, malformed_frames_close_that_client_only)
{
	uint8_t frame[64];
	int good, bad;

	good = hello_client(self);
	ASSERT_LE(0, good);

	/* Bad magic. */
	bad = hello_client(self);
	ASSERT_LE(0, bad);
	memset(frame, 0, sizeof(frame));
	memcpy(frame, "XXXX\x10\0\0\0", 8);
	EXPECT_EQ(-EBADMSG, expect_closed(self, bad, frame, PSD_CTL_HDR_LEN));
	EXPECT_NE(NULL, strstr(reply_msg(self), "bad magic"));
	EXPECT_EQ(0u, self->m.seq);
	close(bad);

	/* Oversize: a header announcing 16 MiB. */
	bad = hello_client(self);
	ASSERT_LE(0, bad);
	memcpy(frame, "PSCT\0\0\0\x01\x02\0\0\0\x05\0\0\0", 16);
	EXPECT_EQ(-EMSGSIZE, expect_closed(self, bad, frame, PSD_CTL_HDR_LEN));
	EXPECT_NE(NULL, strstr(reply_msg(self), "16777216"));
	close(bad);

	/* A well-framed request with a wrong attribute size. */
	bad = hello_client(self);
	ASSERT_LE(0, bad);
	req(self, PSD_CTL_GET_INDEX);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 31);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_INDEX, 0);
	ASSERT_EQ(0, psd_ctl_finish(&self->req));
	EXPECT_EQ(-EBADMSG, expect_closed(self, bad, self->req.p,
					  self->req.len));
	EXPECT_STREQ("malformed frame: attribute ID has 31 bytes, expected 32",
		     reply_msg(self));
	close(bad);

	/* A reply sent to the daemon. */
	bad = hello_client(self);
	ASSERT_LE(0, bad);
	req(self, PSD_CTL_PEERS | PSD_CTL_REPLY);
	ASSERT_EQ(0, psd_ctl_finish(&self->req));
	EXPECT_EQ(-EBADMSG, expect_closed(self, bad, self->req.p,
					  self->req.len));
	close(bad);

	/* The first client is still served, and saw it all counted. */
	EXPECT_EQ(4u, counter(self, good, "control.malformed"));
	EXPECT_EQ(1u, counter(self, good, "control.clients"));
	close(good);
}

TEST_F(srv, too_many_clients)
{
	int fds[PSD_CTL_MAX_CLIENTS + 1], extra;

	for (unsigned int i = 0; i < PSD_CTL_MAX_CLIENTS; i++) {
		fds[i] = hello_client(self);
		ASSERT_LE(0, fds[i]) TH_LOG("client %u", i);
	}
	extra = connect_to(self->sock);
	ASSERT_LE(0, extra);
	EXPECT_EQ(-EBUSY, expect_closed(self, extra, NULL, 0));
	EXPECT_STREQ("too many control clients", reply_msg(self));
	close(extra);
	/* One leaves: once the daemon saw it go, there is room again. */
	close(fds[0]);
	ASSERT_EQ(0, settle(self, PSD_CTL_MAX_CLIENTS, PSD_CTL_MAX_CLIENTS - 1));
	fds[0] = hello_client(self);
	ASSERT_LE(0, fds[0]);
	EXPECT_EQ(1u, counter(self, fds[0], "control.busy"));
	EXPECT_EQ(PSD_CTL_MAX_CLIENTS, counter(self, fds[0], "control.clients"));
	for (unsigned int i = 0; i < PSD_CTL_MAX_CLIENTS; i++)
		close(fds[i]);
}

TEST_F(srv, clients_vanishing_mid_add_and_mid_frame)
{
	int fds[PSD_CTL_MAX_ADDS + 1], fd;
	uint64_t conns = PSD_CTL_MAX_ADDS + 1;	/* connections so far */
	struct xfer x;

	/* PSD_CTL_MAX_ADDS adds open at once; one more is refused. */
	for (unsigned int i = 0; i <= PSD_CTL_MAX_ADDS; i++) {
		fds[i] = hello_client(self);
		ASSERT_LE(0, fds[i]);
		add_begin(self, fds[i], &self->a, PSD_CTL_SOURCE_ORIGIN,
			  self->image);
		EXPECT_EQ(i < PSD_CTL_MAX_ADDS ? 0 : -EBUSY,
			  reply_errno(self)) TH_LOG("add %u", i);
	}
	/* One vanishes mid-add: its add is dropped, and counted. */
	close(fds[0]);
	ASSERT_EQ(0, settle(self, conns, PSD_CTL_MAX_ADDS));
	EXPECT_EQ(1u, counter(self, fds[PSD_CTL_MAX_ADDS], "control.dropped"));
	ASSERT_EQ(PSD_CTL_ADD_BEGIN | PSD_CTL_REPLY,
		  add_begin(self, fds[PSD_CTL_MAX_ADDS], &self->a,
			    PSD_CTL_SOURCE_ORIGIN, self->image));
	/* The others vanish too; the daemon still completes an add. */
	for (unsigned int i = 1; i <= PSD_CTL_MAX_ADDS; i++)
		close(fds[i]);
	ASSERT_EQ(0, settle(self, conns, 0));
	fd = hello_client(self);
	ASSERT_LE(0, fd);
	conns++;
	EXPECT_EQ(5u, counter(self, fd, "control.dropped"));
	EXPECT_EQ(0, publish(self, fd)) TH_LOG("%s", reply_msg(self));

	/* Half a frame, then gone. */
	x = (struct xfer){ .fd = connect_to(self->sock),
			   .close_after_send = true };
	req(self, PSD_CTL_HELLO);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_VERSION, 1);
	ASSERT_EQ(0, psd_ctl_finish(&self->req));
	x.out = self->req.p;
	x.out_len = self->req.len - 3;
	ASSERT_EQ(0, run_xfer(self, &x));
	conns++;
	ASSERT_EQ(0, settle(self, conns, 1));
	EXPECT_EQ(6u, counter(self, fd, "control.dropped"));
	EXPECT_EQ(1u, counter(self, fd, "control.clients"));

	/* A READ, and gone before its reply: the reply finds no one. The
	 * frame is small, so it is written and the socket closed while the
	 * loop does not run: the daemon cannot answer in between. It
	 * notices only when the reply, after the read, fails. */
	x.fd = hello_client(self);
	ASSERT_LE(0, x.fd);
	conns++;
	req(self, PSD_CTL_READ);
	psd_ctl_put_bytes(&self->req, PSD_CTL_A_ID, self->a.id, 32);
	psd_ctl_put_u64(&self->req, PSD_CTL_A_FIRST_CHUNK, 0);
	psd_ctl_put_u32(&self->req, PSD_CTL_A_COUNT, N_CHUNKS);
	ASSERT_EQ(0, psd_ctl_finish(&self->req));
	ASSERT_EQ((ssize_t)self->req.len,
		  send(x.fd, self->req.p, self->req.len, MSG_NOSIGNAL));
	close(x.fd);
	ASSERT_EQ(0, settle(self, conns, 1));
	EXPECT_EQ(7u, counter(self, fd, "control.dropped"));
	EXPECT_EQ(1u, counter(self, fd, "control.clients"));
	EXPECT_EQ(1u, counter(self, fd, "fetch.reads"));
	close(fd);
}

/* A non-root peer: the test opens the directory and the socket to it. */
TEST_F(srv, non_root_peer_refused)
{
	char dir[192];
	pid_t pid;
	int status = -1;

	if (geteuid() != 0)
		SKIP(return, "needs root to become another user");
	snprintf(dir, sizeof(dir), "%s/run", self->dir);
	ASSERT_EQ(0, chmod(self->dir, 0755));
	ASSERT_EQ(0, chmod(dir, 0755));
	ASSERT_EQ(0, chmod(self->sock, 0666));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct xfer x = { .want_eof = true };
		struct psd_ctl_msg m;

		if (setgid(65534) || setuid(65534))
			_exit(10);
		x.fd = connect_to(self->sock);
		if (x.fd < 0)
			_exit(11);
		client_thread(&x);
		if (x.err || !x.eof || psd_ctl_parse(x.in, x.in_len, &m, NULL))
			_exit(12);
		_exit(psd_ctl_s32(&m.at, PSD_CTL_A_ERRNO) == -EACCES ? 0 : 13);
	}
	for (int i = 0; i < 5000 && waitpid(pid, &status, WNOHANG) == 0; i++)
		pump(self);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(1u, psd_control_get_stats(self->ctl)->refused);
	EXPECT_EQ(0u, psd_control_get_stats(self->ctl)->clients);
}

TEST_HARNESS_MAIN
