// SPDX-License-Identifier: GPL-2.0
/* The agent's generic netlink socket: see genl.h. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "genl.h"
#include "log.h"

/*
 * 4 MiB of receive buffer holds a few thousand FETCHes: the burst a
 * REGISTER triggers when the kernel resends everything pending.
 */
#define GENL_RCVBUF		(4 << 20)
#define GENL_SNDBUF		(256 << 10)
/* Messages per drain before other completions get a turn. */
#define GENL_DRAIN_BATCH	1024
#define GENL_DRAIN_ERRORS	16
/* Remembered FETCH_DONE sequence numbers, to name refused requests. */
#define GENL_SEQ_MEMORY		256

enum { UD_POLL, UD_CONTINUE };

enum reg_state {
	REG_IDLE,
	REG_PENDING,
	REG_DONE,
};

struct psd_genl {
	struct nl_sock *sk;
	int family;
	const struct psd_genl_ops *ops;
	void *ctx;
	struct psd_loop *loop;
	bool attached;
	bool family_gone;
	enum reg_state reg;
	uint32_t reg_seq;
	int reg_err;
	uint64_t seq_req[GENL_SEQ_MEMORY];
	struct psd_genl_stats stats;
};

static int nle_to_errno(int nle)
{
	switch (nle < 0 ? -nle : nle) {
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_PERM:
		return -EPERM;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_NOACCESS:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* ---- receiving --------------------------------------------------------- */

static void handle_fetch(struct psd_genl *g, struct nlmsghdr *nlh)
{
	struct psd_fetch_done done;
	struct psd_fetch_msg m;
	const char *why = NULL;
	int r;

	r = psd_proto_fetch_parse(nlh, &m, &why);
	if (r == -EBADMSG) {
		g->stats.malformed++;
		psd_warn("dropping malformed FETCH: %s", why);
		return;
	}
	if (r == -EINVAL) {
		g->stats.invalid++;
		psd_warn("refusing FETCH %llu: %s",
			 (unsigned long long)m.request_id, why);
		done = psd_proto_done_for(&m, -EINVAL);
		psd_genl_send_done(g, &done);
		return;
	}
	g->ops->fetch(g->ctx, &m);
}

static int send_register(struct psd_genl *g);

static void family_event(struct psd_genl *g, uint8_t cmd, struct nlattr **tb)
{
	if (cmd == CTRL_CMD_DELFAMILY && !g->family_gone) {
		psd_warn("dm-peersnap unloaded: dropping its requests, waiting for it to return");
		g->family_gone = true;
		g->reg = REG_IDLE;
		g->ops->family_gone(g->ctx);
	} else if (cmd == CTRL_CMD_NEWFAMILY && tb[CTRL_ATTR_FAMILY_ID]) {
		g->family = nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]);
		g->family_gone = false;
		psd_info("dm-peersnap loaded (family %d): registering", g->family);
		if (send_register(g) < 0)
			g->ops->fatal(g->ctx, -EIO);
	}
}

/* nlctrl's notifications: is it our family coming or going? */
static void handle_ctrl(struct psd_genl *g, struct nlmsghdr *nlh)
{
	static const struct nla_policy policy[CTRL_ATTR_MAX + 1] = {
		[CTRL_ATTR_FAMILY_ID] = { .type = NLA_U16 },
		[CTRL_ATTR_FAMILY_NAME] = { .type = NLA_STRING,
					    .maxlen = GENL_NAMSIZ },
	};
	struct nlattr *tb[CTRL_ATTR_MAX + 1];

	if (genlmsg_parse(nlh, 0, tb, CTRL_ATTR_MAX, policy) < 0 ||
	    !tb[CTRL_ATTR_FAMILY_NAME] ||
	    strcmp(nla_get_string(tb[CTRL_ATTR_FAMILY_NAME]),
		   PEERSNAP_GENL_NAME))
		return;
	family_event(g, genlmsg_hdr(nlh)->cmd, tb);
}

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct psd_genl *g = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);

	if (nlmsg_get_src(msg)->nl_pid != 0) {
		g->stats.foreign++;
		return NL_SKIP;
	}
	if (nlh->nlmsg_type == GENL_ID_CTRL && genlmsg_valid_hdr(nlh, 0)) {
		handle_ctrl(g, nlh);
		return NL_OK;
	}
	if (g->family_gone || nlh->nlmsg_type != g->family ||
	    !genlmsg_valid_hdr(nlh, 0)) {
		g->stats.malformed++;
		return NL_SKIP;
	}
	if (genlmsg_hdr(nlh)->cmd == PEERSNAP_CMD_FETCH)
		handle_fetch(g, nlh);
	else
		psd_dbg("ignoring genl command %u", genlmsg_hdr(nlh)->cmd);
	return NL_OK;
}

static void register_verdict(struct psd_genl *g, int err)
{
	g->reg = REG_DONE;
	g->reg_err = err;
	if (err && g->attached)
		g->ops->fatal(g->ctx, err);
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct psd_genl *g = arg;
	uint32_t seq = e->msg.nlmsg_seq;

	if (nla->nl_pid != 0)
		return NL_SKIP;
	if (g->reg == REG_PENDING && seq == g->reg_seq) {
		register_verdict(g, e->error);
		return NL_SKIP;
	}
	g->stats.refused++;
	/* -ENOENT: a late answer (device gone, request already failed). */
	psd_log(e->error == -ENOENT ? PSD_LOG_DEBUG : PSD_LOG_WARN,
		"kernel refused FETCH_DONE for request %llu: %s",
		(unsigned long long)g->seq_req[seq % GENL_SEQ_MEMORY],
		strerror(-e->error));
	return NL_SKIP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	struct psd_genl *g = arg;
	struct nlmsgerr *e = nlmsg_data(nlmsg_hdr(msg));

	if (g->reg == REG_PENDING && e->msg.nlmsg_seq == g->reg_seq)
		register_verdict(g, 0);
	return NL_OK;
}

static void overrun(struct psd_genl *g)
{
	g->stats.overruns++;
	psd_warn("netlink receive buffer overrun: FETCHes lost, will REGISTER again");
	g->ops->overrun(g->ctx);
}

/* Returns true if the socket may still hold messages. */
static bool drain(struct psd_genl *g)
{
	unsigned int n, errors = 0;
	int r;

	for (n = 0; n < GENL_DRAIN_BATCH; n++) {
		r = nl_recvmsgs_default(g->sk);
		if (r == 0)
			continue;
		if (r == -NLE_AGAIN)
			return false;
		/* libnl reports ENOBUFS, the overrun, as NLE_NOMEM. */
		if (r == -NLE_NOMEM)
			overrun(g);
		else
			psd_warn("netlink receive: %s", nl_geterror(r));
		if (++errors >= GENL_DRAIN_ERRORS)
			return false;
	}
	return true;
}

/* ---- loop plumbing ----------------------------------------------------- */

static int arm(struct psd_genl *g, unsigned int what)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(g->loop);

	if (!sqe)
		return -EBUSY;
	if (what == UD_POLL)
		io_uring_prep_poll_multishot(sqe, nl_socket_get_fd(g->sk),
					     POLLIN);
	else
		io_uring_prep_nop(sqe);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_NETLINK,
					   .idx = what });
	return 0;
}

/*
 * UD_POLL: the multishot poll fired (or ended: re-arm it without F_MORE).
 * UD_CONTINUE: a NOP queued by a drain that stopped at its batch limit;
 * the poll would not fire again for messages already queued.
 */
static void on_netlink(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct psd_genl *g = ctx;

	if (ud.idx == UD_POLL && res < 0 && res != -ECANCELED)
		psd_warn("netlink poll: %s", strerror(-res));
	if ((ud.idx == UD_POLL && res > 0) || ud.idx == UD_CONTINUE) {
		if (drain(g))
			arm(g, UD_CONTINUE);
	}
	if (ud.idx == UD_POLL && !(flags & IORING_CQE_F_MORE))
		arm(g, UD_POLL);
}

/* ---- sending ----------------------------------------------------------- */

static int send_register(struct psd_genl *g)
{
	struct nl_msg *msg = nlmsg_alloc();
	int r;

	if (!msg)
		return -ENOMEM;
	r = psd_proto_register_build(msg, g->family);
	if (r == 0) {
		r = nl_send_auto(g->sk, msg);
		r = r < 0 ? nle_to_errno(r) : 0;
	}
	if (r == 0) {
		g->reg = REG_PENDING;
		g->reg_seq = nlmsg_hdr(msg)->nlmsg_seq;
	}
	nlmsg_free(msg);
	return r;
}

int psd_genl_send_done(struct psd_genl *g, const struct psd_fetch_done *d)
{
	struct nl_msg *msg;
	int r;

	if (g->family_gone)
		return -ENODEV;
	msg = nlmsg_alloc();
	if (!msg)
		return -ENOMEM;
	r = psd_proto_done_build(msg, g->family, d);
	if (r == 0) {
		r = nl_send_auto(g->sk, msg);
		r = r < 0 ? nle_to_errno(r) : 0;
	}
	if (r == 0)
		g->seq_req[nlmsg_hdr(msg)->nlmsg_seq % GENL_SEQ_MEMORY] =
			d->request_id;
	else
		g->stats.send_failed++;
	nlmsg_free(msg);
	return r;
}

int psd_genl_register(struct psd_genl *g)
{
	int r = send_register(g);

	/*
	 * The kernel answers inside our sendmsg(), so the verdict is queued
	 * already, possibly behind resent FETCHes (handed to ops->fetch).
	 */
	while (r == 0 && g->reg == REG_PENDING) {
		r = nl_recvmsgs_default(g->sk);
		if (r == -NLE_NOMEM) {
			/*
			 * Overrun: only resent FETCHes fill the buffer, and
			 * the kernel sends them only to its agent. The ack
			 * may be lost; REGISTER was accepted.
			 */
			register_verdict(g, 0);
			overrun(g);
			r = 0;
		}
		r = r < 0 ? nle_to_errno(r) : 0;
	}
	return r < 0 ? r : g->reg_err;
}

int psd_genl_reregister(struct psd_genl *g)
{
	if (g->family_gone)
		return -ENODEV;
	psd_info("registering again: the kernel resends every pending request");
	return send_register(g);
}

int psd_genl_attach(struct psd_genl *g, struct psd_loop *loop)
{
	int r = nl_socket_set_nonblocking(g->sk);

	if (r < 0)
		return nle_to_errno(r);
	g->loop = loop;
	psd_loop_set_handler(loop, PSD_OP_NETLINK, on_netlink, g);
	r = arm(g, UD_POLL);
	if (r == 0)
		g->attached = true;
	return r;
}

const struct psd_genl_stats *psd_genl_get_stats(const struct psd_genl *g)
{
	return &g->stats;
}

/* ---- setup ------------------------------------------------------------- */

static int set_buffers(struct psd_genl *g)
{
	int fd = nl_socket_get_fd(g->sk), size = GENL_RCVBUF;
	int r = nl_socket_set_buffer_size(g->sk, GENL_RCVBUF, GENL_SNDBUF);

	if (r < 0)
		return nle_to_errno(r);
	/* SO_RCVBUF is capped by rmem_max; as root, lift the cap. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
		psd_dbg("SO_RCVBUFFORCE: %s (using the capped size)",
			strerror(errno));
	return 0;
}

/* Module reload tracking is a convenience: without it, still run. */
static void watch_family(struct psd_genl *g)
{
	int grp = genl_ctrl_resolve_grp(g->sk, "nlctrl", "notify");

	if (grp < 0 || nl_socket_add_membership(g->sk, grp) < 0)
		psd_warn("cannot watch for dm-peersnap reloads: %s",
			 nl_geterror(grp < 0 ? grp : -NLE_FAILURE));
}

static int install_callbacks(struct psd_genl *g)
{
	if (nl_socket_modify_cb(g->sk, NL_CB_VALID, NL_CB_CUSTOM, on_valid,
				g) < 0 ||
	    nl_socket_modify_cb(g->sk, NL_CB_ACK, NL_CB_CUSTOM, on_ack, g) < 0 ||
	    nl_socket_modify_err_cb(g->sk, NL_CB_CUSTOM, on_error, g) < 0)
		return -ENOMEM;
	/* FETCH is unsolicited: it matches no sequence number of ours. */
	nl_socket_disable_seq_check(g->sk);
	/* FETCH_DONE needs no ack: errors are reported regardless. */
	nl_socket_disable_auto_ack(g->sk);
	return 0;
}

int psd_genl_init(struct psd_genl **ret, const struct psd_genl_ops *ops,
		  void *ctx)
{
	struct psd_genl *g;
	int r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->ops = ops;
	g->ctx = ctx;
	g->sk = nl_socket_alloc();
	if (!g->sk) {
		r = -ENOMEM;
		goto err_free_genl;
	}
	r = genl_connect(g->sk);
	if (r < 0)
		goto err_nl;
	/* Before our callbacks: the resolver relies on the default ones. */
	g->family = genl_ctrl_resolve(g->sk, PEERSNAP_GENL_NAME);
	if (g->family < 0) {
		r = g->family;
		goto err_nl;
	}
	watch_family(g);
	r = set_buffers(g);
	if (r == 0)
		r = install_callbacks(g);
	if (r < 0)
		goto err_free_genl;
	*ret = g;
	return 0;

err_nl:
	r = nle_to_errno(r);
err_free_genl:
	psd_genl_uninit(g);
	return r;
}

/* Closing the socket is what tells the kernel the agent is gone. */
void psd_genl_uninit(struct psd_genl *g)
{
	if (!g)
		return;
	nl_socket_free(g->sk);
	free(g);
}
