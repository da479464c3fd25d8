// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap-perf: the transport's throughput tool, iperf3's counterpart
 * for benchmarks (tests/bench/50-transport.sh). Two of them are each
 * other's only peer, over the same swarm (swarm.h), sessions and
 * congestion control as peersnapd:
 *
 *   peersnap-perf serve --identity A.key --port 7000 \
 *                       --peer 10.0.0.2:7001=<B's key> --time 40
 *   peersnap-perf fetch --identity B.key --port 7001 \
 *                       --peer 10.0.0.1:7000=<A's key> --time 10
 *   peersnap-perf key --identity A.key     (prints A's public key)
 *
 * Both sides make the same data set from --seed (--size MiB of
 * pseudo-random bytes in a memfd, cut into --chunk KiB chunks) and name
 * each chunk by its BLAKE2b-256 hash, so nothing but the transfer itself
 * crosses the link. The server answers requests from the memfd; the
 * client keeps --window chunk requests in flight (cycling over the data
 * set) for --time seconds from the moment the connection is open, and
 * every chunk it counts arrived whole and hash-checked by the swarm.
 * --class picks the requests' class (demand: the connection's full
 * controller; scavenger: background), --cc the serving side's controller
 * for demand data (bbr, the default, or cubic). A missing --identity file is made
 * (keygen); the public key is printed first, as "pubkey=<hex>".
 *
 * SIGTERM or SIGINT ends a run early, as its time would. Results, one
 * line of key=value pairs on stdout at the end:
 *   fetch: seconds bytes chunks failed goodput_mbit cpu_s cpu_ns_per_byte
 *          tx_packets rx_packets rtx_bytes srtt_ms
 *   serve: seconds served cpu_s tx_packets tx_bytes rtx_bytes
 * Exit status: 0, 1 (the run failed: no connection, a failed chunk),
 * 2 (bad usage).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "../chunkhash.h"
#include "../config.h"
#include "../identity.h"
#include "../peers.h"
#include "../swarm.h"
#include "../swarm_timer.h"

#define CONNECT_GRACE	(10 * PSD_NSEC)	/* fetch: to open the connection */
#define WINDOW_MAX	PSD_SWARM_REQUESTS_MAX

enum { TIMER_GUARD, TIMER_END };

struct perf {
	bool fetch, key_only;
	const char *identity;
	const char *listen;
	uint16_t port;
	struct psd_peer_spec peer;
	uint64_t size, chunk, seconds, seed;
	unsigned int window;
	enum psd_swarm_class cls;
	const struct psd_cc_ops *cc;
	bool gso;

	struct psd_identity id;
	struct psd_loop *loop;
	struct psd_swarm *sw;
	struct psd_swarm_timer timer;
	int fd;				/* the data set */
	uint8_t *data;
	size_t n_chunks;
	uint8_t (*hashes)[PSD_HASH_LEN];
	uint32_t *table;		/* chunk index + 1 by hash; 0: empty */
	size_t table_mask;
	struct __kernel_timespec guard_ts, end_ts;
	int sigfd;			/* SIGTERM, SIGINT: end the run */
	struct signalfd_siginfo siginfo;

	/* The connection's counters as last seen: the server's connection
	 * may be gone (the client closed it) by the time it reports. */
	struct psd_conn_stats conn_stats;
	double conn_srtt_ms;

	/* The run. */
	bool started, finished, failed_run;
	uint64_t start, next_chunk, bytes, chunks, failed;
	struct rusage ru_start;
};

/* ---- the data set ---- */

static uint32_t *table_slot(struct perf *p, const uint8_t h[PSD_HASH_LEN])
{
	uint64_t k;
	size_t i;

	memcpy(&k, h, sizeof(k));
	for (i = k & p->table_mask;; i = (i + 1) & p->table_mask)
		if (!p->table[i] ||
		    !memcmp(p->hashes[p->table[i] - 1], h, PSD_HASH_LEN))
			return &p->table[i];
}

static int make_data(struct perf *p)
{
	uint8_t seed[randombytes_SEEDBYTES] = { 0 };
	size_t slots = 1;

	memcpy(seed, &p->seed, sizeof(p->seed));
	p->fd = memfd_create("peersnap-perf", MFD_CLOEXEC);
	if (p->fd < 0 || ftruncate(p->fd, (off_t)p->size))
		return -errno;
	p->data = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       p->fd, 0);
	if (p->data == MAP_FAILED)
		return -errno;
	randombytes_buf_deterministic(p->data, p->size, seed);
	p->n_chunks = p->size / p->chunk;
	while (slots < 2 * p->n_chunks)
		slots <<= 1;
	p->table_mask = slots - 1;
	p->hashes = calloc(p->n_chunks, PSD_HASH_LEN);
	p->table = calloc(slots, sizeof(*p->table));
	if (!p->hashes || !p->table)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_chunks; i++) {
		psd_chunkhash(p->data + i * p->chunk, p->chunk, p->hashes[i]);
		*table_slot(p, p->hashes[i]) = (uint32_t)i + 1;
	}
	return 0;
}

static int lookup(void *ctx, const uint8_t hash[PSD_OBJECT_ID_LEN],
		  struct psd_swarm_extent *ret)
{
	struct perf *p = ctx;
	uint32_t i = *table_slot(p, hash);

	if (!i)
		return -ENOENT;
	*ret = (struct psd_swarm_extent){
		.fd = p->fd, .offset = (uint64_t)(i - 1) * p->chunk,
		.len = p->chunk };
	return 0;
}

/* ---- the run ---- */

static void arm_timer(struct perf *p, uint32_t which, uint64_t at,
		      struct __kernel_timespec *ts)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(p->loop);

	if (!sqe)
		return;
	ts->tv_sec = (long long)(at / PSD_NSEC);
	ts->tv_nsec = (long long)(at % PSD_NSEC);
	io_uring_prep_timeout(sqe, ts, 0, IORING_TIMEOUT_ABS);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_TIMER, .idx = which });
}

static void finish_run(struct perf *p, bool ok)
{
	if (p->finished)
		return;
	p->finished = true;
	p->failed_run = !ok;
	psd_loop_stop(p->loop);
}

static void on_chunk(void *ctx, int err, const uint8_t *bytes, size_t len);

static void request_next(struct perf *p)
{
	const uint8_t *h = p->hashes[p->next_chunk++ % p->n_chunks];

	int r = psd_swarm_request(p->sw, p->peer.key, h, p->chunk, p->cls,
				  on_chunk, p);

	if (r) {
		fprintf(stderr, "peersnap-perf: request refused: %s\n",
			strerror(-r));
		p->failed++;
		finish_run(p, false);
	}
}

static void on_chunk(void *ctx, int err, const uint8_t *bytes, size_t len)
{
	struct perf *p = ctx;

	(void)bytes;
	if (p->finished)
		return;		/* cancelled at the end */
	if (err || len != p->chunk) {
		fprintf(stderr, "peersnap-perf: chunk failed: %s\n",
			err ? strerror(-err) : "short");
		p->failed++;
		finish_run(p, false);
		return;
	}
	if (p->started) {
		p->bytes += len;
		p->chunks++;
	}
	request_next(p);
}

static bool conn_open(struct perf *p)
{
	struct psd_conn *c = psd_swarm_conn(p->sw, p->peer.key);

	return c && psd_conn_state(c) == PSD_CONN_OPEN;
}

static void start_run(struct perf *p)
{
	p->started = true;
	p->start = psd_swarm_now();
	getrusage(RUSAGE_SELF, &p->ru_start);
	arm_timer(p, TIMER_END, p->start + p->seconds * PSD_NSEC, &p->end_ts);
}

static double srtt_ms(const struct psd_conn *c)
{
	return c ? (double)psd_conn_recovery(c)->rtt.smoothed / 1e6 : 0.0;
}

/* After each batch of completions: the swarm's timer, the run's clock. */
static void on_idle(void *ctx)
{
	struct perf *p = ctx;
	struct psd_conn *c = psd_swarm_conn(p->sw, p->peer.key);

	if (p->fetch && !p->started && conn_open(p))
		start_run(p);
	if (c) {
		p->conn_stats = *psd_conn_stats(c);
		p->conn_srtt_ms = srtt_ms(c);
	}
	psd_swarm_timer_arm(&p->timer);
}

static void on_timer(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct perf *p = ctx;

	(void)flags;
	if (res != -ETIME)
		return;
	if (ud.idx == TIMER_END)
		finish_run(p, true);
	else if (p->fetch && !p->started) {
		fprintf(stderr, "peersnap-perf: no connection to %s:%u\n",
			p->peer.host, p->peer.port);
		finish_run(p, false);
	} else if (!p->fetch) {
		finish_run(p, true);
	}
}

/* SIGTERM or SIGINT ends the run as its time would: results printed. */
static void on_signal(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct perf *p = ctx;

	(void)ud;
	(void)flags;
	finish_run(p, res == (int)sizeof(p->siginfo));
}

static int watch_signals(struct perf *p)
{
	struct io_uring_sqe *sqe;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	p->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (p->sigfd < 0)
		return -errno;
	sqe = psd_loop_sqe(p->loop);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, p->sigfd, &p->siginfo, sizeof(p->siginfo), 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_SIGNAL });
	psd_loop_set_handler(p->loop, PSD_OP_SIGNAL, on_signal, p);
	return 0;
}

/* ---- results ---- */

static double cpu_seconds(const struct rusage *a, const struct rusage *b)
{
	double ua = (double)a->ru_utime.tv_sec + a->ru_utime.tv_usec / 1e6;
	double sa = (double)a->ru_stime.tv_sec + a->ru_stime.tv_usec / 1e6;
	double ub = (double)b->ru_utime.tv_sec + b->ru_utime.tv_usec / 1e6;
	double sb = (double)b->ru_stime.tv_sec + b->ru_stime.tv_usec / 1e6;

	return ub + sb - ua - sa;
}

static void print_results(struct perf *p)
{
	const struct psd_conn_stats *cs = &p->conn_stats;
	double secs = (double)(psd_swarm_now() - p->start) / 1e9;
	struct rusage ru;
	double cpu;

	getrusage(RUSAGE_SELF, &ru);
	cpu = cpu_seconds(&p->ru_start, &ru);
	if (!p->fetch) {
		printf("mode=serve seconds=%.3f served=%" PRIu64
		       " cpu_s=%.3f tx_packets=%" PRIu64 " tx_bytes=%" PRIu64
		       " rtx_bytes=%" PRIu64 " srtt_ms=%.1f\n", secs,
		       psd_swarm_stats(p->sw)->served, cpu, cs->tx_packets,
		       cs->tx_bytes, cs->tx_rtx_bytes, p->conn_srtt_ms);
		return;
	}
	printf("mode=fetch seconds=%.3f bytes=%" PRIu64 " chunks=%" PRIu64
	       " failed=%" PRIu64 " goodput_mbit=%.2f cpu_s=%.3f"
	       " cpu_ns_per_byte=%.2f rx_packets=%" PRIu64
	       " rx_data_bytes=%" PRIu64 " srtt_ms=%.1f\n",
	       secs, p->bytes, p->chunks, p->failed,
	       secs > 0 ? (double)p->bytes * 8 / secs / 1e6 : 0.0, cpu,
	       p->bytes ? cpu * 1e9 / (double)p->bytes : 0.0, cs->rx_packets,
	       cs->rx_data_bytes, p->conn_srtt_ms);
}

/* ---- options ---- */

static const char usage[] =
"usage: peersnap-perf serve|fetch --identity FILE --peer HOST:PORT=KEY\n"
"                     [--listen ADDR] [--port N] [--time SECONDS]\n"
"                     [--size MIB] [--chunk KIB] [--seed N] [--window N]\n"
"                     [--class demand|scavenger] [--cc bbr|cubic] [--no-gso]\n"
"       peersnap-perf key --identity FILE\n";

static int bad_usage(const char *what, const char *arg)
{
	fprintf(stderr, "peersnap-perf: %s: '%s'\n%s", what, arg, usage);
	return 2;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max,
		     uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_option(struct perf *p, int opt, const char *arg)
{
	const char *why = NULL;
	uint64_t v;

	switch (opt) {
	case 'i':
		p->identity = arg;
		return 0;
	case 'l':
		p->listen = arg;
		return 0;
	case 'p':
		if (parse_u64(arg, 1, 65535, &v))
			return bad_usage("--port wants 1..65535", arg);
		p->port = (uint16_t)v;
		return 0;
	case 'P':
		if (psd_peer_arg_parse(arg, &p->peer, &why))
			return bad_usage(why, arg);
		return 0;
	case 't':
		return parse_u64(arg, 1, 3600, &p->seconds) ?
		       bad_usage("--time wants 1..3600 seconds", arg) : 0;
	case 's':
		if (parse_u64(arg, 1, 4096, &v))
			return bad_usage("--size wants 1..4096 MiB", arg);
		p->size = v << 20;
		return 0;
	case 'c':
		if (parse_u64(arg, 4, 4096, &v) || (v & (v - 1)))
			return bad_usage("--chunk wants a power of two, 4..4096 KiB",
					 arg);
		p->chunk = v << 10;
		return 0;
	case 'S':
		return parse_u64(arg, 0, UINT64_MAX, &p->seed) ?
		       bad_usage("--seed wants a number", arg) : 0;
	case 'w':
		if (parse_u64(arg, 1, WINDOW_MAX, &v))
			return bad_usage("--window wants 1..1024", arg);
		p->window = (unsigned int)v;
		return 0;
	case 'C':
		if (!strcmp(arg, "demand"))
			p->cls = PSD_SWARM_DEMAND;
		else if (!strcmp(arg, "scavenger"))
			p->cls = PSD_SWARM_SCAVENGER;
		else
			return bad_usage("--class wants demand or scavenger",
					 arg);
		return 0;
	case 'G':
		p->gso = false;
		return 0;
	case 'K':
		if (!strcmp(arg, "bbr"))
			p->cc = &psd_cc_bbr;
		else if (!strcmp(arg, "cubic"))
			p->cc = &psd_cc_cubic;
		else
			return bad_usage("--cc wants bbr or cubic", arg);
		return 0;
	default:
		fputs(usage, stderr);
		return 2;
	}
}

static int parse_args(struct perf *p, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "identity", required_argument, NULL, 'i' },
		{ "listen", required_argument, NULL, 'l' },
		{ "port", required_argument, NULL, 'p' },
		{ "peer", required_argument, NULL, 'P' },
		{ "time", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, 's' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 'S' },
		{ "window", required_argument, NULL, 'w' },
		{ "class", required_argument, NULL, 'C' },
		{ "no-gso", no_argument, NULL, 'G' },
		{ "cc", required_argument, NULL, 'K' },
		{ 0 }
	};
	int opt, r;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		r = parse_option(p, opt, optarg);
		if (r)
			return r;
	}
	if (optind + 1 != argc || (strcmp(argv[optind], "serve") &&
				   strcmp(argv[optind], "fetch") &&
				   strcmp(argv[optind], "key")))
		return bad_usage("want one mode, serve, fetch or key",
				 optind < argc ? argv[optind] : "");
	p->fetch = !strcmp(argv[optind], "fetch");
	p->key_only = !strcmp(argv[optind], "key");
	if (p->key_only && p->identity)
		return 0;
	if (!p->identity || !p->peer.port)
		return bad_usage("--identity and --peer are required", "");
	if (p->size < p->chunk)
		return bad_usage("--size is below one chunk", "");
	return 0;
}

/* ---- set-up ---- */

static int load_identity(struct perf *p)
{
	char err[512], hex[PSD_PUBKEY_HEX_LEN + 1];
	int r = psd_identity_load(p->identity, &p->id, err, sizeof(err));

	if (r == -ENOENT)
		r = psd_identity_keygen(p->identity, &p->id, err, sizeof(err));
	if (r) {
		fprintf(stderr, "peersnap-perf: %s\n", err);
		return r;
	}
	psd_pubkey_format(p->id.pk, hex);
	printf("pubkey=%s\n", hex);
	fflush(stdout);
	return 0;
}

static int open_swarm(struct perf *p)
{
	struct psd_swarm_config sc = {
		.loop = p->loop, .id = &p->id, .listen = p->listen,
		.port = p->port, .gso = p->gso, .gro = p->gso, .cc = p->cc,
		.realtime_offset_ns = psd_swarm_realtime_offset(),
		.lookup = p->fetch ? NULL : lookup, .lookup_ctx = p,
	};
	struct sockaddr_in6 addr;
	char err[512];
	int r;

	randombytes_buf(&sc.seed, sizeof(sc.seed));
	r = psd_peers_resolve(&p->peer, &addr, err, sizeof(err));
	if (!r)
		r = psd_swarm_new(&sc, &p->sw, err, sizeof(err));
	if (!r)
		r = psd_swarm_add_peer(p->sw, p->peer.key,
				       (struct sockaddr *)&addr, sizeof(addr));
	if (r) {
		fprintf(stderr, "peersnap-perf: peer %s:%u: %s\n",
			p->peer.host, p->peer.port, p->sw ? strerror(-r) : err);
		return r;
	}
	psd_swarm_timer_init(&p->timer, p->loop, p->sw);
	psd_loop_set_handler(p->loop, PSD_OP_TIMER, on_timer, p);
	psd_loop_set_idle(p->loop, on_idle, p);
	return 0;
}

static int run(struct perf *p)
{
	uint64_t now = psd_swarm_now();
	int r;

	r = psd_loop_init(&p->loop, 1024);
	if (r) {
		fprintf(stderr, "peersnap-perf: io_uring: %s\n", strerror(-r));
		return r;
	}
	r = open_swarm(p);
	if (r)
		return r;
	r = watch_signals(p);
	if (r) {
		fprintf(stderr, "peersnap-perf: signals: %s\n", strerror(-r));
		return r;
	}
	if (p->fetch) {
		arm_timer(p, TIMER_GUARD, now + CONNECT_GRACE, &p->guard_ts);
		for (unsigned int i = 0; i < p->window; i++)
			request_next(p);
	} else {
		p->start = now;
		getrusage(RUSAGE_SELF, &p->ru_start);
		arm_timer(p, TIMER_GUARD, now + p->seconds * PSD_NSEC,
			  &p->guard_ts);
	}
	r = psd_loop_run(p->loop);
	if (r)
		fprintf(stderr, "peersnap-perf: loop: %s\n", strerror(-r));
	else if (p->started || !p->fetch)
		print_results(p);
	return r;
}

int main(int argc, char **argv)
{
	struct perf p = {
		.listen = "::", .size = 64ull << 20, .chunk = 256u << 10,
		.seconds = 10, .window = 32, .cls = PSD_SWARM_DEMAND,
		.gso = true, .fd = -1, .sigfd = -1,
	};
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	r = parse_args(&p, argc, argv);
	if (r)
		return r;
	if (psd_chunkhash_init() || load_identity(&p))
		return 1;
	if (p.key_only) {
		psd_identity_wipe(&p.id);
		return 0;
	}
	r = make_data(&p);
	if (r) {
		fprintf(stderr, "peersnap-perf: data set: %s\n", strerror(-r));
		return 1;
	}
	r = run(&p);
	psd_swarm_timer_stop(&p.timer);
	if (p.loop)
		psd_loop_quiesce(p.loop, 1000);
	psd_swarm_free(p.sw);
	psd_loop_uninit(p.loop);
	psd_identity_wipe(&p.id);
	if (p.sigfd >= 0)
		close(p.sigfd);
	return r || p.failed_run ? 1 : 0;
}
