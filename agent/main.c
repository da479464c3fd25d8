// SPDX-License-Identifier: GPL-2.0
/*
 * peersnapd: the peersnap agent. Arguments and configuration, startup in
 * dependency order, the glue between the netlink socket and the fetch
 * engine, and shutdown in reverse order.
 *
 * Shutdown: the first SIGTERM/SIGINT stops accepting FETCHes and forgets
 * the queue (the kernel still holds those requests), and lets in-flight
 * fetches finish and answer for up to DRAIN_TIMEOUT_MS. A second signal
 * or the deadline abandons what is left unanswered. Then: cancel and reap
 * every outstanding SQE (the netlink poll holds a reference to the socket,
 * and in-flight I/O points into our buffers), close the netlink socket
 * (the kernel sees NETLINK_URELEASE and waits for the next agent, to which
 * it resends every pending request), free the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cache.h"
#include "chunkhash.h"
#include "config.h"
#include "control.h"
#include "fetch.h"
#include "genl.h"
#include "identity.h"
#include "log.h"
#include "loop.h"
#include "origin.h"
#include "serve.h"
#include "store.h"
#include "swarm.h"
#include "swarm_timer.h"

#define PEERSNAPD_VERSION	"0.1.0"
#define DRAIN_TIMEOUT_MS	5000
#define QUIESCE_TIMEOUT_MS	2000
#define EXIT_USAGE		2

struct agent {
	struct psd_config cfg;
	bool foreground;
	bool verbose;
	bool no_kernel;		/* --no-kernel: serve peers only */

	struct psd_loop *loop;
	struct psd_origins *origins;
	struct psd_cache *cache;
	struct psd_store *store;
	struct psd_fetch *fetch;
	struct psd_genl *genl;
	struct psd_control *control;
	struct psd_identity id;		/* with peers only */
	struct psd_serve *serve;
	struct psd_swarm *swarm;	/* NULL: no peers configured */
	struct psd_swarm_timer swarm_timer;
	int sigfd;
	struct signalfd_siginfo siginfo;
	struct __kernel_timespec drain_ts;

	bool attached;
	bool need_register;
	bool stopping;
	int exit_code;
};

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(out,
"Usage: peersnapd [OPTION]...\n"
"The peersnap agent: answers dm-peersnap's chunk requests (generic netlink\n"
"family \"peersnap\") by copying chunks from origin images to cache devices.\n"
"\n"
"  -c, --config FILE        configuration file (default %s;\n"
"                           a missing default file means all defaults)\n"
"  -o, --origin ID=FILE     serve snapshot ID (64 hex digits) from the image\n"
"                           FILE; repeatable; overrides [origin] in the file\n"
"  -p, --peer HOST:PORT=KEY a peer (IPv4, [IPv6] or a name; KEY its 64-hex\n"
"                           identity); repeatable; adds to [peer] in the file\n"
"  -s, --state-dir DIR      state directory (default %s)\n"
"      --no-kernel          do not register with dm-peersnap: only serve\n"
"                           chunks to peers (needs --peer or [peer])\n"
"  -n, --max-inflight N     concurrent fetches, 1..%d (default %d)\n"
"  -f, --foreground         do not daemonize; log to stderr\n"
"  -v, --verbose            debug logging\n"
"  -h, --help               show this help and exit\n"
"  -V, --version            show the version and exit\n"
"\n"
"Options override the configuration file. SIGTERM or SIGINT: finish the\n"
"fetches in flight (up to %d s) and exit; a second signal exits at once.\n"
"Exit status: 0 on clean shutdown, 1 on failure, 2 on bad usage.\n",
		PSD_CONFIG_DEFAULT_PATH, PSD_DEFAULT_STATE_DIR,
		PSD_MAX_MAX_INFLIGHT, PSD_DEFAULT_MAX_INFLIGHT,
		DRAIN_TIMEOUT_MS / 1000);
}

struct cli {
	const char *config;
	const char *state_dir;
	long max_inflight;	/* 0: not given */
	const char **origins;
	size_t n_origins;
	struct psd_peer_spec *peers;
	size_t n_peers;
	bool foreground, verbose, no_kernel;
};

static int parse_max_inflight(const char *s, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > PSD_MAX_MAX_INFLIGHT)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int cli_add_origin(struct cli *cli, const char *arg)
{
	const char **v = realloc(cli->origins,
				 (cli->n_origins + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	v[cli->n_origins++] = arg;
	cli->origins = v;
	return 0;
}

/* --peer HOST:PORT=KEY, checked at once: a bad one is a usage error. */
static int cli_add_peer(struct cli *cli, const char *arg)
{
	struct psd_peer_spec *v;
	const char *why = "";

	if (cli->n_peers >= PSD_CONFIG_MAX_PEERS) {
		psd_err("--peer '%s': more than %d peers", arg,
			PSD_CONFIG_MAX_PEERS);
		return EXIT_USAGE;
	}
	v = realloc(cli->peers, (cli->n_peers + 1) * sizeof(*v));
	if (!v)
		return 1;
	cli->peers = v;
	if (psd_peer_arg_parse(arg, &v[cli->n_peers], &why) < 0) {
		psd_err("--peer '%s': %s", arg, why);
		return EXIT_USAGE;
	}
	cli->n_peers++;
	return -1;
}

/* Returns -1 to continue, else the exit status. */
static int parse_args(int argc, char **argv, struct cli *cli)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "origin", required_argument, NULL, 'o' },
		{ "peer", required_argument, NULL, 'p' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "no-kernel", no_argument, NULL, 'K' },
		{ "max-inflight", required_argument, NULL, 'n' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "c:o:p:s:n:fvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cli->config = optarg;
			break;
		case 'o':
			if (cli_add_origin(cli, optarg) < 0)
				return 1;
			break;
		case 'p':
			r = cli_add_peer(cli, optarg);
			if (r >= 0)
				return r;
			break;
		case 's':
			cli->state_dir = optarg;
			break;
		case 'K':
			cli->no_kernel = true;
			break;
		case 'n':
			if (parse_max_inflight(optarg, &cli->max_inflight) < 0) {
				psd_err("--max-inflight '%s': expected 1..%d",
					optarg, PSD_MAX_MAX_INFLIGHT);
				return EXIT_USAGE;
			}
			break;
		case 'f':
			cli->foreground = true;
			break;
		case 'v':
			cli->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("peersnapd %s (generic netlink family %s, version %d)\n",
			       PEERSNAPD_VERSION, PEERSNAP_GENL_NAME,
			       PEERSNAP_GENL_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		psd_err("unexpected argument '%s' (see --help)", argv[optind]);
		return EXIT_USAGE;
	}
	return -1;
}

/* ---- configuration ----------------------------------------------------- */

static int load_config(const struct cli *cli, struct psd_config *ret)
{
	const char *path = cli->config ? cli->config : PSD_CONFIG_DEFAULT_PATH;
	char err[512];
	int r;

	if (!cli->config && access(path, F_OK) < 0)
		return psd_config_init(ret);
	r = psd_config_load(path, ret, err, sizeof(err));
	if (r < 0)
		psd_err("%s", err);
	return r;
}

/* The daemon runs in "/": a relative image path is taken from here. */
static char *absolute_path(const char *path)
{
	char cwd[PATH_MAX], *s;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&s, "%s/%s", cwd, path) < 0)
		return NULL;
	return s;
}

static int apply_origin(struct psd_config *cfg, const char *arg)
{
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
	const char *path;
	char err[256], *abs;
	int r;

	if (psd_origin_arg_parse(arg, id, &path, err, sizeof(err)) < 0) {
		psd_err("%s", err);
		return -EINVAL;
	}
	abs = absolute_path(path);
	if (!abs)
		return -ENOMEM;
	r = psd_config_set_origin(cfg, id, abs);
	free(abs);
	if (r == -E2BIG)
		psd_err("more than %d origins", PSD_CONFIG_MAX_ORIGINS);
	return r;
}

static int apply_cli(const struct cli *cli, struct psd_config *cfg)
{
	size_t i;
	int r;

	if (cli->state_dir) {
		if (cli->state_dir[0] != '/') {
			psd_err("--state-dir '%s': must be an absolute path",
				cli->state_dir);
			return -EINVAL;
		}
		r = psd_config_set_string(&cfg->state_dir, cli->state_dir);
		if (r < 0)
			return r;
	}
	if (cli->max_inflight)
		cfg->max_inflight = (unsigned int)cli->max_inflight;
	for (i = 0; i < cli->n_origins; i++) {
		r = apply_origin(cfg, cli->origins[i]);
		if (r < 0)
			return r;
	}
	for (i = 0; i < cli->n_peers; i++) {
		r = psd_config_set_peer(cfg, &cli->peers[i]);
		if (r == -E2BIG)
			psd_err("more than %d peers with the file's",
				PSD_CONFIG_MAX_PEERS);
		if (r < 0)
			return r;
	}
	return 0;
}

static void log_config(const struct psd_config *cfg)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];
	size_t i;

	psd_dbg("state_dir=%s max_inflight=%u max_queued=%u max_buffer_mib=%u",
		cfg->state_dir, cfg->max_inflight, cfg->max_queued,
		cfg->max_buffer_mib);
	for (i = 0; i < cfg->n_origins; i++) {
		psd_hex_id_format(cfg->origins[i].id, hex);
		psd_dbg("origin %s = %s", hex, cfg->origins[i].path);
	}
}

/* ---- daemonizing ------------------------------------------------------- */

/*
 * Forks before anything is set up (an io_uring with SINGLE_ISSUER belongs
 * to the task that made it). The parent waits for the child's verdict, so
 * a failed start still exits non-zero with its message on the terminal.
 */
static int daemon_begin(int *ret_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? c : 1);
	}
	close(p[0]);
	setsid();
	*ret_fd = p[1];
	return 0;
}

static void daemon_ready(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	psd_log_use_syslog();
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
	if (chdir("/") < 0)
		psd_warn("chdir /: %s", strerror(errno));
	if (write(fd, "", 1) != 1)
		psd_warn("cannot report readiness: %s", strerror(errno));
	close(fd);
}

/* ---- glue between netlink and the fetch engine ------------------------- */

static void maybe_reregister(struct agent *a)
{
	if (a->need_register && a->attached && !a->stopping)
		psd_fetch_notify_when_empty(a->fetch);
}

static void on_fetch(void *ctx, const struct psd_fetch_msg *m)
{
	struct agent *a = ctx;

	psd_fetch_submit(a->fetch, m);
}

static void on_overrun(void *ctx)
{
	struct agent *a = ctx;

	a->need_register = true;
	maybe_reregister(a);
}

static void on_family_gone(void *ctx)
{
	struct agent *a = ctx;

	a->need_register = false;
	psd_fetch_forget(a->fetch);
}

static void on_genl_fatal(void *ctx, int err)
{
	struct agent *a = ctx;

	psd_err("the kernel refused REGISTER: %s", strerror(-err));
	a->exit_code = 1;
	psd_loop_stop(a->loop);
}

static void on_done(void *ctx, const struct psd_fetch_done *d)
{
	struct agent *a = ctx;
	int r = psd_genl_send_done(a->genl, d);

	if (r < 0 && r != -ENODEV) {
		/* The kernel still holds it: a REGISTER brings it back. */
		psd_warn("FETCH_DONE for request %llu not sent: %s",
			 (unsigned long long)d->request_id, strerror(-r));
		on_overrun(a);
	}
}

/* The queue is empty: a REGISTER now resends only what we lost. */
static void on_queue_empty(void *ctx)
{
	struct agent *a = ctx;
	int r;

	if (!a->need_register || !a->attached || a->stopping)
		return;
	a->need_register = false;
	r = psd_genl_reregister(a->genl);
	if (r < 0 && r != -ENODEV) {
		/* Retried at the next overrun or overflow. */
		psd_warn("REGISTER not sent: %s", strerror(-r));
		a->need_register = true;
	}
}

static void on_drained(void *ctx)
{
	struct agent *a = ctx;

	psd_loop_stop(a->loop);
}

static const struct psd_genl_ops genl_ops = {
	.fetch = on_fetch,
	.overrun = on_overrun,
	.family_gone = on_family_gone,
	.fatal = on_genl_fatal,
};

static const struct psd_fetch_ops fetch_ops = {
	.done = on_done,
	.overflow = on_overrun,
	.queue_empty = on_queue_empty,
	.drained = on_drained,
};

/* ---- signals and the shutdown deadline --------------------------------- */

static int arm_signal(struct agent *a)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(a->loop);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, a->sigfd, &a->siginfo, sizeof(a->siginfo), 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_SIGNAL });
	return 0;
}

static void arm_drain_timer(struct agent *a)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(a->loop);

	if (!sqe)
		return;
	a->drain_ts.tv_sec = DRAIN_TIMEOUT_MS / 1000;
	a->drain_ts.tv_nsec = (DRAIN_TIMEOUT_MS % 1000) * 1000000LL;
	io_uring_prep_timeout(sqe, &a->drain_ts, 0, 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_TIMER });
}

static void on_signal(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct agent *a = ctx;

	(void)ud;
	(void)flags;
	if (res != (int)sizeof(a->siginfo)) {
		psd_err("signalfd read: %s", res < 0 ? strerror(-res) : "short");
		a->exit_code = 1;
		psd_loop_stop(a->loop);
		return;
	}
	if (a->stopping) {
		psd_info("%s again: abandoning %u fetches in flight",
			 strsignal((int)a->siginfo.ssi_signo),
			 psd_fetch_inflight(a->fetch));
		psd_loop_stop(a->loop);
		return;
	}
	psd_info("%s: finishing %u fetches in flight, then exiting",
		 strsignal((int)a->siginfo.ssi_signo),
		 psd_fetch_inflight(a->fetch));
	a->stopping = true;
	arm_signal(a);
	arm_drain_timer(a);
	psd_fetch_drain(a->fetch);
}

static void on_timer(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct agent *a = ctx;

	(void)ud;
	(void)flags;
	if (res != -ETIME)
		return;
	psd_warn("shutdown deadline: abandoning %u fetches in flight (the kernel resends them)",
		 psd_fetch_inflight(a->fetch));
	psd_loop_stop(a->loop);
}

static int signals_init(struct agent *a)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	a->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (a->sigfd < 0)
		return -errno;
	psd_loop_set_handler(a->loop, PSD_OP_SIGNAL, on_signal, a);
	psd_loop_set_handler(a->loop, PSD_OP_TIMER, on_timer, a);
	return arm_signal(a);
}

/* ---- startup and shutdown ---------------------------------------------- */

static unsigned int ring_entries(unsigned int max_inflight, bool peers)
{
	unsigned int want = max_inflight + 16, n = 64;

	/* One SQE per fetch in flight, plus signal, timer, poll, cancel;
	 * with peers, the socket's sends and receives and the swarm timer. */
	if (peers)
		want += PSD_UDP_TX_SLOTS + PSD_UDP_SINGLE_SHOT + 2;
	while (n < want)
		n <<= 1;
	return n;
}

static int genl_start(struct agent *a)
{
	int r = psd_genl_init(&a->genl, &genl_ops, a);

	if (r == -ENOENT)
		fprintf(stderr, "peersnap: generic netlink family not found (is dm-peersnap loaded?)\n");
	else if (r < 0)
		psd_err("generic netlink: %s", strerror(-r));
	return r;
}

/* ---- the store and trust ----------------------------------------------- */

_Static_assert(PSD_CONFIG_KEY_LEN == PSD_PUBKEY_LEN,
	       "[trust] keys are Ed25519 public keys");

/* Our own identity's key is trusted like a [trust] publisher's. The
 * daemon never creates an identity: `peersnap keygen` does. */
static int trust_own_identity(struct psd_config *cfg)
{
	struct psd_identity id;
	char *path = psd_config_identity_path(cfg), err[512];
	int r;

	if (!path)
		return -ENOMEM;
	r = psd_identity_load(path, &id, err, sizeof(err));
	if (r == -ENOENT) {
		psd_dbg("no identity at %s: trusting [trust] publishers only",
			path);
		r = 0;
	} else if (r < 0) {
		psd_warn("identity not trusted: %s", err);
		r = 0;
	} else {
		r = psd_config_add_publisher(cfg, id.pk);
	}
	psd_identity_wipe(&id);
	free(path);
	return r;
}

static int store_start(struct agent *a)
{
	struct psd_trust trust;
	char err[PATH_MAX + 128];
	int r;

	r = psd_chunkhash_init();
	if (r < 0) {
		psd_err("libsodium: cannot initialise");
		return r;
	}
	if (mkdir(a->cfg.state_dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		psd_err("state dir %s: %s", a->cfg.state_dir, strerror(errno));
		return r;
	}
	r = trust_own_identity(&a->cfg);
	if (r < 0)
		return r;
	trust.keys = (const uint8_t (*)[PSD_PUBKEY_LEN])a->cfg.publishers;
	trust.n = a->cfg.n_publishers;
	r = psd_store_open(&a->store, a->cfg.state_dir, &trust, err,
			   sizeof(err));
	if (r < 0) {
		psd_err("%s", err);
		return r;
	}
	psd_info("store: %llu snapshots, %zu trusted publishers",
		 (unsigned long long)psd_store_get_stats(a->store)->snapshots,
		 a->cfg.n_publishers);
	return 0;
}

static int engine_start(struct agent *a)
{
	struct psd_fetch_limits lim = {
		.max_inflight = a->cfg.max_inflight,
		.max_queued = a->cfg.max_queued,
		.max_buffer_bytes = (size_t)a->cfg.max_buffer_mib << 20,
	};
	int r;

	r = psd_origins_init(&a->origins, a->cfg.origins, a->cfg.n_origins);
	if (r == 0)
		r = psd_cache_init(&a->cache, a->cfg.state_dir);
	if (r == 0)
		r = psd_fetch_init(&a->fetch, a->loop, a->origins, a->cache,
				   a->store, &lim, &fetch_ops, a);
	if (r < 0)
		psd_err("fetch engine: %s", strerror(-r));
	return r;
}

/* ---- peers: the swarm ------------------------------------------------- */

static void swarm_arm(void *ctx)
{
	struct agent *a = ctx;

	psd_swarm_timer_arm(&a->swarm_timer);
}

/* Peers need our identity: without one, no handshake can complete. */
static int identity_load(struct agent *a)
{
	char *path = psd_config_identity_path(&a->cfg), err[PATH_MAX + 128];
	int r;

	if (!path)
		return -ENOMEM;
	r = psd_identity_load(path, &a->id, err, sizeof(err));
	if (r == -ENOENT)
		psd_err("%zu peers configured but no identity at %s: make one with `peersnap keygen`",
			a->cfg.n_peers, path);
	else if (r < 0)
		psd_err("%s", err);
	free(path);
	return r;
}

/* After the store (what we serve) and the fetch engine (who asks). */
static int swarm_start(struct agent *a)
{
	struct psd_swarm_config sc = {
		.loop = a->loop, .id = &a->id,
		.listen = a->cfg.listen, .port = a->cfg.port,
		.gso = true, .gro = true,	/* where the kernel has them */
		.cc = a->cfg.congestion == PSD_CONGESTION_CUBIC ?
		      &psd_cc_cubic : &psd_cc_bbr,
		.realtime_offset_ns = psd_swarm_realtime_offset(),
		.lookup = psd_serve_lookup,
	};
	char err[512];
	int r;

	if (!a->cfg.n_peers)
		return 0;
	r = identity_load(a);
	if (r < 0)
		return r;
	r = psd_serve_new(&a->serve, a->store);
	if (r < 0)
		return r;
	sc.lookup_ctx = a->serve;
	randombytes_buf(&sc.seed, sizeof(sc.seed));
	r = psd_swarm_new(&sc, &a->swarm, err, sizeof(err));
	if (r == 0)
		r = psd_swarm_load_peers(a->swarm, &a->cfg, err, sizeof(err));
	if (r < 0) {
		psd_err("peers: %s", err);
		return r;
	}
	psd_swarm_timer_init(&a->swarm_timer, a->loop, a->swarm);
	psd_loop_set_idle(a->loop, swarm_arm, a);
	psd_fetch_set_swarm(a->fetch, a->swarm);
	psd_info("peers: %zu, listening on [%s]:%u", a->cfg.n_peers,
		 a->cfg.listen, a->cfg.port);
	return 0;
}

/*
 * Before the loop quiesces, like the control socket: the fetch engine
 * stops asking, the swarm fails its requests (their FETCHes are left to
 * the next agent) and closes its socket.
 */
static void swarm_stop(struct agent *a)
{
	if (a->fetch)
		psd_fetch_set_swarm(a->fetch, NULL);
	if (a->loop)
		psd_loop_set_idle(a->loop, NULL, NULL);
	psd_swarm_timer_stop(&a->swarm_timer);
	psd_swarm_free(a->swarm);
	a->swarm = NULL;
	psd_serve_free(a->serve);
	a->serve = NULL;
	psd_identity_wipe(&a->id);
}

/* ---- the control socket ------------------------------------------------ */

/* After the store and the fetch engine, whose state it serves. */
static int control_start(struct agent *a)
{
	struct psd_control_params p = {
		.path = a->cfg.control_socket,
		.daemon_version = PEERSNAPD_VERSION,
		.loop = a->loop,
		.store = a->store,
		.fetch = a->fetch,
	};
	char err[PATH_MAX + 128];
	int r;

	r = psd_control_init(&a->control, &p, err, sizeof(err));
	if (r < 0)
		psd_err("%s", err);
	return r;
}

/*
 * Before the loop quiesces: no new clients, the socket file gone. The
 * quiesce cancels the control socket's SQEs with everyone else's; its
 * buffers are freed only after that (control_free()).
 */
static void control_stop(struct agent *a)
{
	psd_control_shutdown(a->control);
}

static void control_free(struct agent *a, bool quiet)
{
	/* A client's reply buffer may be under a READ still in flight. */
	if (quiet)
		psd_control_uninit(a->control);
	a->control = NULL;
}

static int agent_start(struct agent *a)
{
	int r;

	if (!a->no_kernel) {
		r = genl_start(a);
		if (r < 0)
			return r;
	}
	r = psd_loop_init(&a->loop, ring_entries(a->cfg.max_inflight,
						    a->cfg.n_peers > 0));
	if (r < 0) {
		psd_err("io_uring: %s", strerror(-r));
		return r;
	}
	r = signals_init(a);
	if (r < 0) {
		psd_err("signals: %s", strerror(-r));
		return r;
	}
	r = store_start(a);
	if (r < 0)
		return r;
	r = engine_start(a);
	if (r < 0)
		return r;
	r = swarm_start(a);
	if (r < 0)
		return r;
	r = control_start(a);
	if (r < 0)
		return r;
	if (a->no_kernel)
		return 0;
	r = psd_genl_register(a->genl);
	if (r < 0) {
		psd_err("REGISTER: %s%s", strerror(-r),
			r == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
		return r;
	}
	r = psd_genl_attach(a->genl, a->loop);
	if (r < 0) {
		psd_err("netlink poll: %s", strerror(-r));
		return r;
	}
	a->attached = true;
	maybe_reregister(a);
	return 0;
}

static void log_stats(struct agent *a)
{
	const struct psd_fetch_stats *f;
	const struct psd_genl_stats *g;

	if (a->fetch) {
		f = psd_fetch_get_stats(a->fetch);
		psd_info("fetches: %llu received, %llu ok, %llu failed, %llu duplicate, %llu dropped, %llu ignored",
			 (unsigned long long)f->received,
			 (unsigned long long)f->succeeded,
			 (unsigned long long)f->failed,
			 (unsigned long long)f->duplicates,
			 (unsigned long long)f->dropped,
			 (unsigned long long)f->ignored);
	}
	if (a->genl) {
		g = psd_genl_get_stats(a->genl);
		psd_info("netlink: %llu malformed, %llu invalid, %llu foreign, %llu refused, %llu unsent, %llu overruns",
			 (unsigned long long)g->malformed,
			 (unsigned long long)g->invalid,
			 (unsigned long long)g->foreign,
			 (unsigned long long)g->refused,
			 (unsigned long long)g->send_failed,
			 (unsigned long long)g->overruns);
	}
}

/* Reverse of agent_start(); accepts a half-started agent. */
static void agent_stop(struct agent *a)
{
	bool quiet = true;

	log_stats(a);
	swarm_stop(a);
	control_stop(a);
	if (a->loop)
		quiet = psd_loop_quiesce(a->loop, QUIESCE_TIMEOUT_MS);
	control_free(a, quiet);
	psd_genl_uninit(a->genl);
	/* If I/O is still in flight, its buffers must outlive us: leak. */
	if (quiet)
		psd_fetch_uninit(a->fetch);
	else
		psd_warn("I/O still in flight at exit");
	psd_cache_uninit(a->cache);
	psd_store_close(a->store);
	psd_origins_uninit(a->origins);
	if (a->sigfd >= 0)
		close(a->sigfd);
	psd_loop_uninit(a->loop);
	psd_config_free(&a->cfg);
}

static int configure(struct agent *a, int argc, char **argv)
{
	struct cli cli = { 0 };
	int r;

	r = parse_args(argc, argv, &cli);
	if (r < 0) {
		psd_log_init("peersnapd", cli.verbose);
		r = load_config(&cli, &a->cfg);
		if (r == 0)
			r = apply_cli(&cli, &a->cfg);
		r = r < 0 ? (r == -EINVAL ? EXIT_USAGE : 1) : -1;
	}
	a->foreground = cli.foreground;
	a->verbose = cli.verbose;
	a->no_kernel = cli.no_kernel;
	if (r < 0 && a->no_kernel && !a->cfg.n_peers) {
		psd_err("--no-kernel serves peers only, and no peer is configured (--peer, [peer])");
		r = EXIT_USAGE;
	}
	free(cli.origins);
	free(cli.peers);
	return r;
}

int main(int argc, char **argv)
{
	struct agent a = { .sigfd = -1 };
	int ready_fd = -1, r;

	umask(077);
	psd_log_init("peersnapd", false);
	r = configure(&a, argc, argv);
	if (r >= 0) {
		psd_config_free(&a.cfg);
		return r;
	}
	log_config(&a.cfg);
	if (!a.foreground) {
		r = daemon_begin(&ready_fd);
		if (r < 0) {
			psd_err("fork: %s", strerror(-r));
			psd_config_free(&a.cfg);
			return 1;
		}
	}
	if (agent_start(&a) < 0) {
		agent_stop(&a);
		return 1;
	}
	if (ready_fd >= 0)
		daemon_ready(ready_fd);
	psd_info("running: %zu origins, up to %u fetches in flight",
		 a.cfg.n_origins, a.cfg.max_inflight);
	r = psd_loop_run(a.loop);
	if (r < 0) {
		psd_err("event loop: %s", strerror(-r));
		a.exit_code = 1;
	}
	agent_stop(&a);
	return a.exit_code;
}
