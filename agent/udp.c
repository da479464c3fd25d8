// SPDX-License-Identifier: GPL-2.0
/*
 * The UDP socket in the io_uring loop (udp.h): multishot receive over a
 * provided buffer ring or the single-shot fallback, GRO splitting, and
 * batched sends with GSO. user_data idx: 0 is the multishot receive,
 * 1..PSD_UDP_SINGLE_SHOT the fallback's receives, and for sends the slot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "udp.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT	103
#endif
#ifndef UDP_GRO
#define UDP_GRO		104
#endif

#define GSO_SLOT_SIZE	65000		/* below IPv4's 65507 with room */
#define RX_CONTROL_LEN	(CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(uint32_t)))
#define TX_CONTROL_LEN	CMSG_SPACE(sizeof(uint16_t))
/*
 * The name's room in a multishot buffer, after the 16-byte
 * io_uring_recvmsg_out: rounded up so the cmsgs behind it are aligned.
 */
#define RX_NAME_LEN	CMSG_ALIGN(sizeof(struct sockaddr_in6))

enum slot_state { SLOT_FREE, SLOT_FILLING, SLOT_SUBMITTED };

struct tx_slot {
	enum slot_state state;
	uint8_t *buf;
	size_t len;
	size_t seg;			/* the first datagram's size */
	size_t last;			/* the last datagram's size */
	unsigned int segs;
	struct sockaddr_in6 to;
	struct msghdr msg;
	struct iovec iov;
	union {
		char buf[TX_CONTROL_LEN];
		struct cmsghdr align;
	} control;
};

struct rx_single {
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_in6 name;
	union {
		char buf[RX_CONTROL_LEN];
		struct cmsghdr align;
	} control;
};

struct psd_udp {
	struct psd_loop *loop;
	/* Sockets sharing a loop (the agent has one, tests two): each has
	 * an id, carried in its operations' tags and its buffer group. */
	struct psd_udp *next_open;
	uint16_t id;
	int fd;
	psd_udp_recv_fn *recv;
	void *ctx;
	bool multishot, gso, gro, got_datagram;
	/* receive buffers: nbufs of buf_size bytes */
	uint8_t *bufs;
	unsigned int nbufs, buf_size;
	struct io_uring_buf_ring *br;
	size_t br_size;
	bool br_registered;
	struct msghdr rx_msg;		/* the multishot's layout */
	struct rx_single single[PSD_UDP_SINGLE_SHOT];
	/* sends */
	struct tx_slot slots[PSD_UDP_TX_SLOTS];
	int filling;			/* the slot being filled, or -1 */
	size_t slot_size;
	uint8_t *slot_mem;
	struct psd_udp_stats st;
};

/* ---- receiving ---- */

struct rx_meta {
	int gro_seg;			/* 0: a single datagram */
};

static void read_cmsg(struct psd_udp *u, const struct cmsghdr *c,
		      struct rx_meta *m)
{
	uint32_t dropped;
	int seg;

	if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
	    c->cmsg_len >= CMSG_LEN(sizeof(int))) {
		memcpy(&seg, CMSG_DATA(c), sizeof(seg));
		m->gro_seg = seg > 0 ? seg : 0;
	} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL &&
		   c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
		/* The socket's drop count so far, not an increment. */
		memcpy(&dropped, CMSG_DATA(c), sizeof(dropped));
		u->st.rx_dropped = dropped;
	}
}

/* Hands one received buffer's payload to the callback, split per GRO. */
static void deliver(struct psd_udp *u, const uint8_t *p, size_t len,
		    const struct sockaddr_in6 *src, const struct rx_meta *m)
{
	size_t seg = m->gro_seg && (size_t)m->gro_seg < len ? (size_t)m->gro_seg
							   : len;

	if (seg < len)
		u->st.rx_gro_batches++;
	u->got_datagram = true;
	for (size_t off = 0; off < len; off += seg) {
		size_t n = len - off < seg ? len - off : seg;

		u->st.rx_datagrams++;
		u->st.rx_bytes += n;
		u->recv(u->ctx, p + off, n, (const struct sockaddr *)src,
			sizeof(*src));
	}
}

static void give_back(struct psd_udp *u, unsigned int bid)
{
	io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * u->buf_size,
			      u->buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(u->nbufs), 0);
	io_uring_buf_ring_advance(u->br, 1);
}

static void arm_multishot(struct psd_udp *u)
{
	struct io_uring_sqe *sqe = psd_loop_sqe(u->loop);

	if (!sqe)
		return;
	io_uring_prep_recvmsg_multishot(sqe, u->fd, &u->rx_msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = u->id;
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_UDP_RECV, .gen = u->id,
					   .idx = 0 });
}

static void arm_single(struct psd_udp *u, unsigned int i)
{
	struct rx_single *r = &u->single[i];
	struct io_uring_sqe *sqe;

	memset(&r->control, 0, sizeof(r->control));
	r->iov.iov_base = u->bufs + (size_t)i * u->buf_size;
	r->iov.iov_len = u->buf_size;
	r->msg = (struct msghdr){
		.msg_name = &r->name, .msg_namelen = sizeof(r->name),
		.msg_iov = &r->iov, .msg_iovlen = 1,
		.msg_control = r->control.buf,
		.msg_controllen = sizeof(r->control.buf),
	};
	sqe = psd_loop_sqe(u->loop);
	if (!sqe)
		return;
	/* MSG_TRUNC: res is the datagram's real length, even if cut. */
	io_uring_prep_recvmsg(sqe, u->fd, &r->msg, MSG_TRUNC);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_UDP_RECV,
					   .gen = u->id, .idx = i + 1 });
}

static void start_single_shot(struct psd_udp *u)
{
	u->multishot = false;
	for (unsigned int i = 0; i < PSD_UDP_SINGLE_SHOT && i < u->nbufs; i++)
		arm_single(u, i);
}

/* One multishot completion: a buffer holding out, name, cmsgs, payload. */
static void on_multishot_buffer(struct psd_udp *u, uint8_t *buf, int res)
{
	struct io_uring_recvmsg_out *out;
	struct rx_meta m = { 0 };
	struct sockaddr_in6 src;
	struct cmsghdr *c;
	unsigned int room;

	out = io_uring_recvmsg_validate(buf, res, &u->rx_msg);
	if (!out || out->namelen > sizeof(src)) {
		u->st.rx_errors++;
		return;
	}
	room = io_uring_recvmsg_payload_length(out, res, &u->rx_msg);
	if ((out->flags & MSG_TRUNC) || out->payloadlen > room) {
		u->st.rx_truncated++;
		return;
	}
	memset(&src, 0, sizeof(src));
	memcpy(&src, io_uring_recvmsg_name(out), out->namelen);
	for (c = io_uring_recvmsg_cmsg_firsthdr(out, &u->rx_msg); c;
	     c = io_uring_recvmsg_cmsg_nexthdr(out, &u->rx_msg, c))
		read_cmsg(u, c, &m);
	deliver(u, io_uring_recvmsg_payload(out, &u->rx_msg), out->payloadlen,
		&src, &m);
}

static void on_multishot(struct psd_udp *u, int res, uint32_t flags)
{
	unsigned int bid = flags >> IORING_CQE_BUFFER_SHIFT;

	if (res >= 0 && (flags & IORING_CQE_F_BUFFER) && bid < u->nbufs) {
		on_multishot_buffer(u, u->bufs + (size_t)bid * u->buf_size,
				    res);
		give_back(u, bid);
	} else if (res == -ENOBUFS) {
		u->st.rx_no_buffer++;
	} else if ((res == -EINVAL || res == -EOPNOTSUPP) &&
		   !u->got_datagram) {
		start_single_shot(u);	/* the kernel has no multishot */
		return;
	} else if (res != -ECANCELED) {
		u->st.rx_errors++;
	}
	if (!(flags & IORING_CQE_F_MORE) && res != -ECANCELED)
		arm_multishot(u);
}

static void on_single(struct psd_udp *u, unsigned int i, int res)
{
	struct rx_single *r = &u->single[i];
	struct rx_meta m = { 0 };
	struct cmsghdr *c;

	if (res == -ECANCELED)
		return;
	if (res < 0) {
		u->st.rx_errors++;
	} else if ((size_t)res > u->buf_size) {
		u->st.rx_truncated++;
	} else {
		for (c = CMSG_FIRSTHDR(&r->msg); c; c = CMSG_NXTHDR(&r->msg, c))
			read_cmsg(u, c, &m);
		deliver(u, r->iov.iov_base, (size_t)res, &r->name, &m);
	}
	arm_single(u, i);
}

/* ---- sending ---- */

static bool same_dest(const struct sockaddr_in6 *a, const struct sockaddr_in6 *b)
{
	return a->sin6_port == b->sin6_port &&
	       a->sin6_scope_id == b->sin6_scope_id &&
	       !memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr));
}

/* The filling slot, if len more bytes to `to` may join its GSO batch. */
static struct tx_slot *joinable(struct psd_udp *u,
				const struct sockaddr_in6 *to, size_t len)
{
	struct tx_slot *s;

	if (!u->gso || u->filling < 0)
		return NULL;
	s = &u->slots[u->filling];
	if (!same_dest(&s->to, to) || s->segs >= PSD_UDP_GSO_SEGS ||
	    len > s->seg || s->last != s->seg || s->len + len > u->slot_size)
		return NULL;
	return s;
}

static struct tx_slot *new_slot(struct psd_udp *u,
				const struct sockaddr_in6 *to, size_t len)
{
	for (int i = 0; i < PSD_UDP_TX_SLOTS; i++) {
		struct tx_slot *s = &u->slots[i];

		if (s->state != SLOT_FREE)
			continue;
		s->state = SLOT_FILLING;
		s->len = 0;
		s->segs = 0;
		s->seg = len;
		s->to = *to;
		u->filling = i;
		return s;
	}
	return NULL;
}

static int queue_dgram(struct psd_udp *u, const struct sockaddr *to,
		       socklen_t to_len, const uint8_t *dgram, size_t len,
		       bool alone)
{
	const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)to;
	struct tx_slot *s;

	if (to->sa_family != AF_INET6 || to_len < sizeof(*a) || len == 0)
		return -EINVAL;
	if (len > PSD_UDP_DGRAM_MAX || len > u->slot_size)
		return -EMSGSIZE;
	s = alone ? NULL : joinable(u, a, len);
	if (alone)
		u->filling = -1;	/* close the batch before it */
	if (!s) {
		if (u->filling >= 0 && !u->gso)
			u->filling = -1;	/* one datagram per slot */
		s = new_slot(u, a, len);
	}
	if (!s) {
		u->st.tx_no_slot++;
		return -ENOBUFS;
	}
	memcpy(s->buf + s->len, dgram, len);
	s->len += len;
	s->last = len;
	s->segs++;
	if (alone)
		u->filling = -1;	/* and the one it is */
	return 0;
}

int psd_udp_send(struct psd_udp *u, const struct sockaddr *to,
		 socklen_t to_len, const uint8_t *dgram, size_t len)
{
	return queue_dgram(u, to, to_len, dgram, len, false);
}

int psd_udp_send_alone(struct psd_udp *u, const struct sockaddr *to,
		       socklen_t to_len, const uint8_t *dgram, size_t len)
{
	return queue_dgram(u, to, to_len, dgram, len, true);
}

static void submit_slot(struct psd_udp *u, int i)
{
	struct tx_slot *s = &u->slots[i];
	struct io_uring_sqe *sqe;
	struct cmsghdr *c;
	uint16_t seg = (uint16_t)s->seg;

	s->iov = (struct iovec){ .iov_base = s->buf, .iov_len = s->len };
	s->msg = (struct msghdr){
		.msg_name = &s->to, .msg_namelen = sizeof(s->to),
		.msg_iov = &s->iov, .msg_iovlen = 1,
	};
	if (s->segs > 1) {
		s->msg.msg_control = s->control.buf;
		s->msg.msg_controllen = sizeof(s->control.buf);
		c = CMSG_FIRSTHDR(&s->msg);
		c->cmsg_level = SOL_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(seg));
		memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	}
	sqe = psd_loop_sqe(u->loop);
	if (!sqe) {
		u->st.tx_errors += s->segs;
		s->state = SLOT_FREE;
		return;
	}
	io_uring_prep_sendmsg(sqe, u->fd, &s->msg, 0);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_UDP_SEND,
					   .gen = u->id, .idx = (uint32_t)i });
	s->state = SLOT_SUBMITTED;
}

void psd_udp_flush(struct psd_udp *u)
{
	for (int i = 0; i < PSD_UDP_TX_SLOTS; i++)
		if (u->slots[i].state == SLOT_FILLING)
			submit_slot(u, i);
	u->filling = -1;
}

static void on_send(struct psd_udp *u, unsigned int i, int res)
{
	struct tx_slot *s;

	if (i >= PSD_UDP_TX_SLOTS)
		return;
	s = &u->slots[i];
	if (res < 0) {
		u->st.tx_errors += s->segs;
		/* A device without checksum offload refuses GSO: stop it. */
		if (s->segs > 1 && res == -EIO)
			u->gso = false;
	} else {
		u->st.tx_datagrams += s->segs;
		u->st.tx_bytes += (uint64_t)res;
		if (s->segs > 1)
			u->st.tx_gso_batches++;
	}
	s->state = SLOT_FREE;
}

/* Every open socket; the loop's handler finds one by loop and id. */
static struct psd_udp *open_sockets;

static struct psd_udp *socket_by_id(const struct psd_loop *loop, uint16_t id)
{
	for (struct psd_udp *u = open_sockets; u; u = u->next_open)
		if (u->loop == loop && u->id == id)
			return u;
	return NULL;
}

/* The smallest id no other socket of loop has (1..: 0 is no group). */
static int pick_id(struct psd_udp *u)
{
	for (unsigned int id = 1; id <= UINT16_MAX; id++)
		if (!socket_by_id(u->loop, (uint16_t)id)) {
			u->id = (uint16_t)id;
			return 0;
		}
	return -EMFILE;
}

static void unlink_socket(struct psd_udp *u)
{
	for (struct psd_udp **p = &open_sockets; *p; p = &(*p)->next_open)
		if (*p == u) {
			*p = u->next_open;
			return;
		}
}

static void on_cqe(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	/* A completion of a socket closed since finds none: dropped. */
	struct psd_udp *u = socket_by_id(ctx, ud.gen);

	if (!u)
		return;
	if (ud.op == PSD_OP_UDP_SEND)
		on_send(u, ud.idx, res);
	else if (ud.idx == 0)
		on_multishot(u, res, flags);
	else if (ud.idx <= PSD_UDP_SINGLE_SHOT)
		on_single(u, ud.idx - 1, res);
}

/* ---- setup ---- */

static int listen_addr(const char *s, uint16_t port, struct sockaddr_in6 *ret)
{
	struct in_addr a4;

	memset(ret, 0, sizeof(*ret));
	ret->sin6_family = AF_INET6;
	ret->sin6_port = htons(port);
	if (inet_pton(AF_INET6, s, &ret->sin6_addr) == 1)
		return 0;
	if (inet_pton(AF_INET, s, &a4) != 1)
		return -EINVAL;
	ret->sin6_addr.s6_addr[10] = 0xff;
	ret->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&ret->sin6_addr.s6_addr[12], &a4, sizeof(a4));
	return 0;
}

static bool set_int(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v)) == 0;
}

/*
 * Datagrams leave with DF set and are never fragmented, whatever MTU the
 * kernel has cached for the path: a path MTU probe too large for the path
 * must be lost, not arrive in fragments (docs/protocol.md, "Path MTU").
 * One larger than the interface fails its send with -EMSGSIZE, counted
 * in tx_errors: the probe is lost, the socket goes on. The IPv4 option
 * covers v4-mapped peers.
 */
static bool never_fragment(int fd)
{
	return set_int(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER,
		       IPV6_PMTUDISC_PROBE) &&
	       set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE);
}

static int open_socket(struct psd_udp *u, const struct psd_udp_config *cfg,
		       char *err, size_t errlen)
{
	struct sockaddr_in6 a;
	int r;

	if (listen_addr(cfg->listen, cfg->port, &a)) {
		snprintf(err, errlen,
			 "listen address '%s' is not an IPv4 or IPv6 literal",
			 cfg->listen);
		return -EINVAL;
	}
	u->fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "udp socket: %s", strerror(-r));
		return r;
	}
	if (!set_int(u->fd, IPPROTO_IPV6, IPV6_V6ONLY, 0) ||
	    !set_int(u->fd, SOL_SOCKET, SO_RXQ_OVFL, 1) ||
	    !never_fragment(u->fd) ||
	    bind(u->fd, (struct sockaddr *)&a, sizeof(a))) {
		r = -errno;
		snprintf(err, errlen, "udp [%s]:%u: %s", cfg->listen,
			 cfg->port, strerror(-r));
		return r;
	}
	if (cfg->rcvbuf > 0 &&
	    !set_int(u->fd, SOL_SOCKET, SO_RCVBUFFORCE, cfg->rcvbuf))
		set_int(u->fd, SOL_SOCKET, SO_RCVBUF, cfg->rcvbuf);
	/* UDP_SEGMENT 0 is "no default segmentation": accepted iff GSO exists. */
	u->gso = cfg->gso && set_int(u->fd, SOL_UDP, UDP_SEGMENT, 0);
	u->gro = cfg->gro && set_int(u->fd, SOL_UDP, UDP_GRO, 1);
	return 0;
}

static int alloc_buffers(struct psd_udp *u, const struct psd_udp_config *cfg)
{
	u->nbufs = cfg->bufs ? cfg->bufs : PSD_UDP_BUFS_DEFAULT;
	u->buf_size = cfg->buf_size ? cfg->buf_size
				    : u->gro ? PSD_UDP_GRO_BUF
					     : PSD_UDP_BUF_DEFAULT;
	if ((u->nbufs & (u->nbufs - 1)) || u->nbufs > 32768 ||
	    u->buf_size < 256)
		return -EINVAL;
	u->bufs = aligned_alloc(4096, (size_t)u->nbufs * u->buf_size);
	u->slot_size = u->gso ? GSO_SLOT_SIZE : PSD_UDP_BUF_DEFAULT;
	u->slot_mem = malloc(PSD_UDP_TX_SLOTS * u->slot_size);
	if (!u->bufs || !u->slot_mem)
		return -ENOMEM;
	for (int i = 0; i < PSD_UDP_TX_SLOTS; i++)
		u->slots[i].buf = u->slot_mem + (size_t)i * u->slot_size;
	return 0;
}

/* The provided buffer ring; false if this kernel has none (-> fallback). */
static bool setup_buf_ring(struct psd_udp *u)
{
	struct io_uring_buf_reg reg = { 0 };
	void *mem;

	u->br_size = (size_t)u->nbufs * sizeof(struct io_uring_buf);
	mem = mmap(NULL, u->br_size, PROT_READ | PROT_WRITE,
		   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (mem == MAP_FAILED)
		return false;
	u->br = mem;
	io_uring_buf_ring_init(u->br);
	reg.ring_addr = (unsigned long)(uintptr_t)mem;
	reg.ring_entries = u->nbufs;
	reg.bgid = u->id;
	if (io_uring_register_buf_ring(psd_loop_ring(u->loop), &reg, 0))
		return false;
	u->br_registered = true;
	for (unsigned int i = 0; i < u->nbufs; i++)
		io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * u->buf_size,
				      u->buf_size, (unsigned short)i,
				      io_uring_buf_ring_mask(u->nbufs),
				      (int)i);
	io_uring_buf_ring_advance(u->br, (int)u->nbufs);
	return true;
}

int psd_udp_open(struct psd_udp **ret, struct psd_loop *loop,
		 const struct psd_udp_config *cfg, char *err, size_t errlen)
{
	struct psd_udp *u = calloc(1, sizeof(*u));
	int r;

	if (!u)
		return -ENOMEM;
	u->loop = loop;
	u->fd = -1;
	u->filling = -1;
	u->recv = cfg->recv;
	u->ctx = cfg->ctx;
	r = pick_id(u);
	if (r)
		snprintf(err, errlen, "udp: too many sockets on one loop");
	else
		r = open_socket(u, cfg, err, errlen);
	if (!r) {
		r = alloc_buffers(u, cfg);
		if (r)
			snprintf(err, errlen, "udp buffers: %s", strerror(-r));
	}
	if (r) {
		psd_udp_close(u);
		return r;
	}
	u->rx_msg.msg_namelen = RX_NAME_LEN;
	u->rx_msg.msg_controllen = RX_CONTROL_LEN;
	u->next_open = open_sockets;
	open_sockets = u;
	psd_loop_set_handler(loop, PSD_OP_UDP_RECV, on_cqe, loop);
	psd_loop_set_handler(loop, PSD_OP_UDP_SEND, on_cqe, loop);
	if (!cfg->single_shot && setup_buf_ring(u)) {
		u->multishot = true;
		arm_multishot(u);
	} else {
		start_single_shot(u);
	}
	*ret = u;
	return 0;
}

/*
 * The kernel must be done with the buffers before they are freed: cancel
 * every operation on the socket and wait (kernel 6.0+). Their completions
 * still come, and find no socket. Where the kernel cannot, the caller's
 * psd_loop_quiesce() beforehand is what makes closing safe.
 */
static void cancel_all(struct psd_udp *u)
{
	struct io_uring_sync_cancel_reg reg = {
		.fd = u->fd,
		.flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL,
		.timeout = { .tv_sec = -1, .tv_nsec = -1 },
	};

	if (u->fd >= 0)
		io_uring_register_sync_cancel(psd_loop_ring(u->loop), &reg);
}

void psd_udp_close(struct psd_udp *u)
{
	if (!u)
		return;
	unlink_socket(u);
	cancel_all(u);
	if (u->br_registered)
		io_uring_unregister_buf_ring(psd_loop_ring(u->loop), u->id);
	if (u->br)
		munmap(u->br, u->br_size);
	if (u->fd >= 0)
		close(u->fd);
	free(u->bufs);
	free(u->slot_mem);
	free(u);
}

int psd_udp_local(const struct psd_udp *u, struct sockaddr_in6 *ret)
{
	socklen_t len = sizeof(*ret);

	if (getsockname(u->fd, (struct sockaddr *)ret, &len))
		return -errno;
	return 0;
}

bool psd_udp_multishot(const struct psd_udp *u)
{
	return u->multishot;
}

bool psd_udp_gso(const struct psd_udp *u)
{
	return u->gso;
}

bool psd_udp_gro(const struct psd_udp *u)
{
	return u->gro;
}

const struct psd_udp_stats *psd_udp_stats(const struct psd_udp *u)
{
	return &u->st;
}
