// SPDX-License-Identifier: GPL-2.0
/*
 * peersnap-hostile: a test-only tool that plays a misbehaving agent against
 * dm-peersnap's generic netlink family, and prints the kernel's answer to
 * every crafted message, so that a VM test can check each is refused.
 *
 * Each attempt prints one line:
 *   <attempt>: <ERRNO NAME> (<-errno>), expected <NAME>: ok [<counted>]
 * or "...: UNEXPECTED [<counted>]". The expected errno is the one the uapi
 * header specifies. <counted> is what the attempt added to the counters of
 * refused replies: "rejected +N", the devices' counters summed over a
 * GET_DEVICE dump (left out without CAP_NET_ADMIN), and "rejected_replies
 * +N", the module parameter. Without CAP_NET_ADMIN (run it through
 * `setpriv --reuid=...` or give --uid) every attempt is expected to fail
 * with EPERM. Exit status: 0 all as expected, 1 something unexpected,
 * 2 bad usage, 3 setup failed (no family), 4 skipped (no pending request).
 *
 * Modes that need a real pending request (mismatch, status, duplicate,
 * all) REGISTER and take the first FETCH the kernel resends: arrange for
 * a read to be held on a peersnap device with no agent before running.
 * This tool then is the agent; when it exits, the kernel waits for the
 * next one. Only "duplicate" answers the request (with -EIO, so the held
 * read fails with EIO); every other attempt must leave it pending.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "../proto.h"

#define EXIT_UNEXPECTED	1
#define EXIT_USAGE	2
#define EXIT_SETUP	3
#define EXIT_SKIP	4
#define UNKNOWN_ID	0xfffffffffffffff0ull
#define NO_ANSWER	INT_MIN
#define REJECTED_PARAM	"/sys/module/dm_peersnap/parameters/rejected_replies"

/* The counters of refused replies (uapi header, top comment). */
struct counters {
	bool have_devices;	/* the dump needs CAP_NET_ADMIN */
	uint64_t devices;	/* PEERSNAP_A_REJECTED, summed over devices */
	bool have_module;
	uint64_t module;	/* the module parameter rejected_replies */
};

struct hostile {
	struct nl_sock *sk;
	int family;
	bool privileged;
	int timeout_s;
	/* Verdict for the message in flight. */
	uint32_t seq;
	int answer;
	/* The first FETCH the kernel sent us. */
	bool have_fetch;
	struct psd_fetch_msg fetch;
	/* Sum of PEERSNAP_A_REJECTED over the GET_DEVICE dump being read. */
	uint64_t dump_rejected;
	struct counters last;
	int unexpected;
};

/* What a reply answers: the real pending request or a made-up one. */
struct target {
	uint64_t id;
	uint32_t device;
	uint64_t first;
	uint32_t count;
};

static const char *errname(int err)
{
	const char *s;

	if (err == 0)
		return "0";
	if (err == NO_ANSWER)
		return "no-answer";
	s = strerrorname_np(err < 0 ? -err : err);
	return s ? s : "E?";
}

static bool has_net_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return d[CAP_NET_ADMIN / 32].effective & (1u << (CAP_NET_ADMIN % 32));
}

/* ---- netlink plumbing -------------------------------------------------- */

/* One device of a GET_DEVICE dump: add up its rejected counter. */
static void on_device(struct hostile *h, struct nlmsghdr *nlh)
{
	struct nlattr *tb[PEERSNAP_A_MAX + 1];

	if (genlmsg_parse(nlh, 0, tb, PEERSNAP_A_MAX, NULL) == 0 &&
	    tb[PEERSNAP_A_REJECTED] &&
	    nla_len(tb[PEERSNAP_A_REJECTED]) == sizeof(uint64_t))
		h->dump_rejected += nla_get_u64(tb[PEERSNAP_A_REJECTED]);
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct hostile *h = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct psd_fetch_msg m;
	const char *why;
	int r;

	if (nlmsg_get_src(msg)->nl_pid != 0 || nlh->nlmsg_type != h->family ||
	    !genlmsg_valid_hdr(nlh, 0))
		return NL_SKIP;
	if (genlmsg_hdr(nlh)->cmd == PEERSNAP_CMD_GET_DEVICE) {
		on_device(h, nlh);
		return NL_OK;
	}
	if (h->have_fetch || genlmsg_hdr(nlh)->cmd != PEERSNAP_CMD_FETCH)
		return NL_SKIP;
	r = psd_proto_fetch_parse(nlh, &m, &why);
	if (r == 0 || r == -EINVAL) {
		h->fetch = m;
		h->have_fetch = true;
	}
	return NL_OK;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct hostile *h = arg;

	(void)nla;
	if (e->msg.nlmsg_seq == h->seq)
		h->answer = e->error;
	return NL_SKIP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	struct hostile *h = arg;
	struct nlmsgerr *e = nlmsg_data(nlmsg_hdr(msg));

	if (e->msg.nlmsg_seq == h->seq)
		h->answer = 0;
	return NL_OK;
}

/* A dump ends with NLMSG_DONE rather than an ack. */
static int on_finish(struct nl_msg *msg, void *arg)
{
	struct hostile *h = arg;

	if (nlmsg_hdr(msg)->nlmsg_seq == h->seq)
		h->answer = 0;
	return NL_OK;
}

static int setup(struct hostile *h)
{
	struct timeval tv = { .tv_sec = h->timeout_s };
	int size = 4 << 20;

	h->sk = nl_socket_alloc();
	if (!h->sk || genl_connect(h->sk) < 0)
		return -1;
	h->family = genl_ctrl_resolve(h->sk, PEERSNAP_GENL_NAME);
	if (h->family < 0) {
		fprintf(stderr, "peersnap-hostile: generic netlink family not found (is dm-peersnap loaded?)\n");
		return -1;
	}
	nl_socket_modify_cb(h->sk, NL_CB_VALID, NL_CB_CUSTOM, on_valid, h);
	nl_socket_modify_cb(h->sk, NL_CB_ACK, NL_CB_CUSTOM, on_ack, h);
	nl_socket_modify_cb(h->sk, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, h);
	nl_socket_modify_err_cb(h->sk, NL_CB_CUSTOM, on_error, h);
	nl_socket_disable_seq_check(h->sk);
	/* REGISTER makes the kernel resend every pending FETCH at once. */
	nl_socket_set_buffer_size(h->sk, 4 << 20, 0);
	setsockopt(nl_socket_get_fd(h->sk), SOL_SOCKET, SO_RCVBUFFORCE, &size,
		   sizeof(size));
	/* A missing answer must not hang the test. */
	setsockopt(nl_socket_get_fd(h->sk), SOL_SOCKET, SO_RCVTIMEO, &tv,
		   sizeof(tv));
	return 0;
}

/* Sends msg with NLM_F_ACK and returns the kernel's verdict. */
static int transact(struct hostile *h, struct nl_msg *msg)
{
	int r;

	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
	r = nl_send_auto(h->sk, msg);
	h->seq = nlmsg_hdr(msg)->nlmsg_seq;
	nlmsg_free(msg);
	if (r < 0)
		return NO_ANSWER;
	h->answer = NO_ANSWER;
	while (h->answer == NO_ANSWER) {
		r = nl_recvmsgs_default(h->sk);
		/* NLE_NOMEM is ENOBUFS: FETCHes overran us; go on. */
		if (r < 0 && r != -NLE_NOMEM)
			break;
	}
	return h->answer;
}

/* Room for the oversized attributes below. */
static struct nl_msg *new_msg(struct hostile *h, uint8_t cmd, int flags)
{
	struct nl_msg *msg = nlmsg_alloc_size(65536);

	if (!msg || !genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, h->family,
				 0, flags, cmd, PEERSNAP_GENL_VERSION)) {
		fprintf(stderr, "peersnap-hostile: out of memory\n");
		exit(EXIT_SETUP);
	}
	return msg;
}

/* A FETCH_DONE for t, leaving out attribute `omit` (0: none). */
static struct nl_msg *done_msg(struct hostile *h, const struct target *t,
			       int32_t status, int omit)
{
	struct nl_msg *msg = new_msg(h, PEERSNAP_CMD_FETCH_DONE, 0);

	if (omit != PEERSNAP_A_REQUEST_ID)
		nla_put_u64(msg, PEERSNAP_A_REQUEST_ID, t->id);
	if (omit != PEERSNAP_A_DEVICE_ID)
		nla_put_u32(msg, PEERSNAP_A_DEVICE_ID, t->device);
	if (omit != PEERSNAP_A_FIRST_CHUNK)
		nla_put_u64(msg, PEERSNAP_A_FIRST_CHUNK, t->first);
	if (omit != PEERSNAP_A_CHUNK_COUNT)
		nla_put_u32(msg, PEERSNAP_A_CHUNK_COUNT, t->count);
	if (omit != PEERSNAP_A_STATUS)
		nla_put_s32(msg, PEERSNAP_A_STATUS, status);
	return msg;
}

static struct counters read_counters(struct hostile *h)
{
	struct counters c = { 0 };
	unsigned long long v;
	FILE *f;

	h->dump_rejected = 0;
	if (transact(h, new_msg(h, PEERSNAP_CMD_GET_DEVICE, NLM_F_DUMP)) == 0) {
		c.have_devices = true;
		c.devices = h->dump_rejected;
	}
	f = fopen(REJECTED_PARAM, "re");
	if (f) {
		c.have_module = fscanf(f, "%llu", &v) == 1;
		c.module = c.have_module ? v : 0;
		fclose(f);
	}
	return c;
}

/* What the last attempt added to the counters of refused replies. */
static void print_counted(struct hostile *h)
{
	struct counters now = read_counters(h), *was = &h->last;
	const char *sep = "";

	printf(" [");
	if (now.have_devices && was->have_devices) {
		printf("rejected +%" PRIu64, now.devices - was->devices);
		sep = " ";
	}
	if (now.have_module && was->have_module)
		printf("%srejected_replies +%" PRIu64, sep,
		       now.module - was->module);
	printf("]");
	h->last = now;
}

/*
 * Prints the verdict on one attempt, want being the errno the uapi header
 * specifies (EPERM without CAP_NET_ADMIN: nothing gets past
 * GENL_ADMIN_PERM), and what it added to the rejected counters.
 */
static void check(struct hostile *h, const char *name, int got, int want)
{
	bool ok;

	if (!h->privileged)
		want = -EPERM;
	ok = got == want;
	printf("%s: %s (%d), expected %s: %s", name, errname(got),
	       got == NO_ANSWER ? 0 : got, errname(want),
	       ok ? "ok" : "UNEXPECTED");
	print_counted(h);
	printf("\n");
	fflush(stdout);
	if (!ok)
		h->unexpected++;
}

/* ---- attempts ---------------------------------------------------------- */

static int do_register(struct hostile *h)
{
	int r = transact(h, new_msg(h, PEERSNAP_CMD_REGISTER, 0));

	check(h, "register", r, 0);
	return r;
}

static void do_dump(struct hostile *h)
{
	check(h, "get-device-dump",
	      transact(h, new_msg(h, PEERSNAP_CMD_GET_DEVICE, NLM_F_DUMP)), 0);
}

static void do_not_agent(struct hostile *h)
{
	struct target t = { .id = UNKNOWN_ID, .device = 1, .count = 1 };

	check(h, "not-agent", transact(h, done_msg(h, &t, 0, 0)), -EPERM);
}

static void do_unknown_id(struct hostile *h)
{
	struct target t = { .id = UNKNOWN_ID, .device = 1, .count = 1 };

	check(h, "unknown-id", transact(h, done_msg(h, &t, -EIO, 0)), -ENOENT);
}

static void garbage_sizes(struct hostile *h, const struct target *t)
{
	struct nl_msg *msg;
	uint8_t big[4096] = { 0 };

	msg = done_msg(h, t, -EIO, PEERSNAP_A_REQUEST_ID);
	nla_put_u32(msg, PEERSNAP_A_REQUEST_ID, (uint32_t)t->id);
	check(h, "request-id-as-u32", transact(h, msg), -EINVAL);

	msg = done_msg(h, t, -EIO, PEERSNAP_A_STATUS);
	nla_put_u64(msg, PEERSNAP_A_STATUS, (uint64_t)-EIO);
	check(h, "status-as-u64", transact(h, msg), -EINVAL);

	msg = done_msg(h, t, -EIO, PEERSNAP_A_DEVICE_ID);
	nla_put(msg, PEERSNAP_A_DEVICE_ID, 0, NULL);
	check(h, "device-id-empty", transact(h, msg), -EINVAL);

	msg = done_msg(h, t, -EIO, 0);
	nla_put(msg, PEERSNAP_A_SNAPSHOT_ID, sizeof(big), big);
	check(h, "oversized-snapshot-id", transact(h, msg), -EINVAL);

	memset(big, 'A', sizeof(big) - 1);
	msg = done_msg(h, t, -EIO, 0);
	nla_put_string(msg, PEERSNAP_A_DEVICE_NAME, (char *)big);
	check(h, "oversized-device-name", transact(h, msg), -EINVAL);
}

static void garbage_structure(struct hostile *h, const struct target *t)
{
	struct nl_msg *msg;
	struct nlattr *nla;

	msg = done_msg(h, t, -EIO, 0);
	nla_put_u32(msg, PEERSNAP_A_MAX + 7, 0xdeadbeef);
	check(h, "unknown-attribute", transact(h, msg), -EINVAL);

	/* An attribute whose length runs past the end of the message. */
	msg = done_msg(h, t, -EIO, 0);
	nla = nla_reserve(msg, PEERSNAP_A_FLAGS, 4);
	if (nla)
		nla->nla_len = 512;
	check(h, "truncated-attribute", transact(h, msg), -EINVAL);

	msg = done_msg(h, t, -EIO, PEERSNAP_A_REQUEST_ID);
	check(h, "missing-request-id", transact(h, msg), -EINVAL);
	msg = done_msg(h, t, -EIO, PEERSNAP_A_DEVICE_ID);
	check(h, "missing-device-id", transact(h, msg), -EINVAL);
	msg = done_msg(h, t, -EIO, PEERSNAP_A_STATUS);
	check(h, "missing-status", transact(h, msg), -EINVAL);

	/* A non-zero PEERSNAP_A_FLAGS is out of its range. */
	msg = new_msg(h, PEERSNAP_CMD_REGISTER, 0);
	nla_put_u32(msg, PEERSNAP_A_FLAGS, 0x80000000u);
	check(h, "register-unknown-flag", transact(h, msg), -ERANGE);
}

static void do_garbage(struct hostile *h, const struct target *t)
{
	garbage_sizes(h, t);
	garbage_structure(h, t);
}

static void do_mismatch(struct hostile *h, const struct target *t)
{
	struct target w;

	w = *t;
	w.device++;
	check(h, "wrong-device", transact(h, done_msg(h, &w, -EIO, 0)),
	      -EINVAL);
	w = *t;
	w.first++;
	check(h, "wrong-first-chunk", transact(h, done_msg(h, &w, -EIO, 0)),
	      -EINVAL);
	w = *t;
	w.count++;
	check(h, "wrong-chunk-count", transact(h, done_msg(h, &w, -EIO, 0)),
	      -EINVAL);
	/* Zero request ids and chunk counts are out of their ranges. */
	w = *t;
	w.count = 0;
	check(h, "zero-chunk-count", transact(h, done_msg(h, &w, -EIO, 0)),
	      -ERANGE);
	w = *t;
	w.id = 0;
	check(h, "request-id-zero", transact(h, done_msg(h, &w, -EIO, 0)),
	      -ERANGE);
}

static void do_status(struct hostile *h, const struct target *t)
{
	check(h, "positive-status", transact(h, done_msg(h, t, 1, 0)),
	      -ERANGE);
	check(h, "status-below-4095", transact(h, done_msg(h, t, -4096, 0)),
	      -ERANGE);
	check(h, "status-int-min", transact(h, done_msg(h, t, INT32_MIN, 0)),
	      -ERANGE);
}

/* Answers the real request (-EIO: its held read fails), then again. */
static void do_duplicate(struct hostile *h, const struct target *t)
{
	check(h, "first-reply", transact(h, done_msg(h, t, -EIO, 0)), 0);
	check(h, "duplicate-reply", transact(h, done_msg(h, t, -EIO, 0)),
	      -ENOENT);
}

/* ---- modes ------------------------------------------------------------- */

static bool wait_fetch(struct hostile *h)
{
	struct pollfd pfd = { .fd = nl_socket_get_fd(h->sk), .events = POLLIN };
	int left_ms = h->timeout_s * 1000;

	while (!h->have_fetch && left_ms > 0) {
		if (poll(&pfd, 1, 100) > 0)
			nl_recvmsgs_default(h->sk);
		left_ms -= 100;
	}
	return h->have_fetch;
}

/* REGISTER, then the request to aim at; false: skip (none pending). */
static bool registered_target(struct hostile *h, bool need_real,
			      struct target *t)
{
	*t = (struct target){ .id = UNKNOWN_ID, .device = 1, .count = 1 };
	if (do_register(h) != 0 || !need_real)
		return true;
	if (!wait_fetch(h)) {
		printf("no FETCH within %d s: hold a read on a peersnap device with no agent first\n",
		       h->timeout_s);
		return false;
	}
	printf("target: request %llu device %u chunks %llu+%u\n",
	       (unsigned long long)h->fetch.request_id, h->fetch.device_id,
	       (unsigned long long)h->fetch.first_chunk, h->fetch.chunk_count);
	t->id = h->fetch.request_id;
	t->device = h->fetch.device_id;
	t->first = h->fetch.first_chunk;
	t->count = h->fetch.chunk_count;
	return true;
}

enum mode_kind { M_PLAIN, M_REGISTERED, M_REAL };

struct mode {
	const char *name;
	enum mode_kind kind;
	void (*run)(struct hostile *h, const struct target *t);
	const char *help;
};

static void run_none(struct hostile *h, const struct target *t)
{
	(void)h;
	(void)t;
}

static void run_dump(struct hostile *h, const struct target *t)
{
	(void)t;
	do_dump(h);
}

static void run_not_agent(struct hostile *h, const struct target *t)
{
	(void)t;
	do_not_agent(h);
}

static void run_unknown_id(struct hostile *h, const struct target *t)
{
	(void)t;
	do_unknown_id(h);
}

static void run_all(struct hostile *h, const struct target *t)
{
	do_unknown_id(h);
	do_garbage(h, t);
	do_mismatch(h, t);
	do_status(h, t);
	do_duplicate(h, t);
}

static const struct mode modes[] = {
	{ "register", M_REGISTERED, run_none,
	  "REGISTER only (expect 0; EPERM without CAP_NET_ADMIN)" },
	{ "dump", M_PLAIN, run_dump,
	  "GET_DEVICE dump without registering (expect 0)" },
	{ "not-agent", M_PLAIN, run_not_agent,
	  "FETCH_DONE without registering (expect EPERM)" },
	{ "unknown-id", M_REGISTERED, run_unknown_id,
	  "FETCH_DONE for a never issued request id (expect ENOENT)" },
	{ "garbage", M_REGISTERED, do_garbage,
	  "wrong sizes, oversized, unknown, truncated and missing attributes\n"
	  "                (expect EINVAL), a REGISTER flag (expect ERANGE)" },
	{ "mismatch", M_REAL, do_mismatch,
	  "answer a pending request with the wrong device, first chunk or\n"
	  "                count (expect EINVAL), count 0 or id 0 (expect ERANGE);\n"
	  "                the request stays pending" },
	{ "status", M_REAL, do_status,
	  "answer a pending request with status 1, -4096, INT32_MIN\n"
	  "                (expect ERANGE)" },
	{ "duplicate", M_REAL, do_duplicate,
	  "answer a pending request with -EIO twice (expect 0, then ENOENT)" },
	{ "all", M_REAL, run_all,
	  "unknown-id, garbage, mismatch, status, duplicate, in that order" },
};

#define NR_MODES	(sizeof(modes) / sizeof(modes[0]))

static void usage(FILE *out)
{
	size_t i;

	fprintf(out,
"Usage: peersnap-hostile [--timeout SECONDS] [--uid UID] MODE\n"
"Test-only: sends crafted messages to dm-peersnap's generic netlink family\n"
"and prints the kernel's errno for each, with the one uapi/linux/peersnap.h\n"
"specifies, and what it added to the counters of refused replies\n"
"([rejected +N rejected_replies +N]).\n"
"\n"
"  -t, --timeout S  wait up to S seconds for a pending FETCH and for each\n"
"                   answer (default 5)\n"
"  -u, --uid UID    drop to UID (and its gid) first: every attempt must\n"
"                   then fail with EPERM\n"
"  -h, --help       show this help\n"
"\nModes:\n");
	for (i = 0; i < NR_MODES; i++)
		fprintf(out, "  %-12s  %s\n", modes[i].name, modes[i].help);
	fprintf(out,
"\nModes mismatch, status, duplicate and all need a pending request: hold\n"
"a read on a peersnap device while no agent runs. Exit status: 0 every\n"
"answer as expected, 1 some unexpected, 2 usage, 3 setup failed, 4 no\n"
"pending request (skip).\n");
}

static int drop_privileges(const char *arg)
{
	char *end;
	long uid = strtol(arg, &end, 10);

	if (*arg == '\0' || *end || uid < 0 || uid > INT_MAX) {
		fprintf(stderr, "peersnap-hostile: bad uid '%s'\n", arg);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid((gid_t)uid) < 0 ||
	    setuid((uid_t)uid) < 0) {
		perror("peersnap-hostile: dropping privileges");
		return -1;
	}
	return 0;
}

static const struct mode *find_mode(const char *name)
{
	size_t i;

	for (i = 0; i < NR_MODES; i++)
		if (!strcmp(modes[i].name, name))
			return &modes[i];
	return NULL;
}

static int parse_args(int argc, char **argv, struct hostile *h,
		      const struct mode **ret_mode)
{
	int i;

	for (i = 1; i < argc - 1; i += 2) {
		if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--timeout")) {
			h->timeout_s = atoi(argv[i + 1]);
		} else if (!strcmp(argv[i], "-u") || !strcmp(argv[i], "--uid")) {
			if (drop_privileges(argv[i + 1]) < 0)
				return EXIT_SETUP;
		} else {
			break;
		}
	}
	if (i == argc - 1 && (!strcmp(argv[i], "-h") ||
			      !strcmp(argv[i], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (i != argc - 1 || !(*ret_mode = find_mode(argv[i])) ||
	    h->timeout_s <= 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct hostile h = { .timeout_s = 5 };
	const struct mode *mode = NULL;
	struct target t = { .id = UNKNOWN_ID, .device = 1, .count = 1 };
	int r;

	r = parse_args(argc, argv, &h, &mode);
	if (r >= 0)
		return r;
	h.privileged = has_net_admin();
	if (setup(&h) < 0)
		return EXIT_SETUP;
	h.last = read_counters(&h);
	if (mode->kind != M_PLAIN &&
	    !registered_target(&h, mode->kind == M_REAL && h.privileged, &t))
		return EXIT_SKIP;
	mode->run(&h, &t);
	nl_socket_free(h.sk);
	return h.unexpected ? EXIT_UNEXPECTED : 0;
}
