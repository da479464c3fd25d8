/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The transport's UDP socket in the agent's io_uring loop (loop.h).
 *
 * One AF_INET6 socket, dual-stack (IPV6_V6ONLY off), bound to the
 * configured address and port; an IPv4 listen address is bound as its
 * v4-mapped form, so every address in and out is a sockaddr_in6 (peers.h
 * keeps them so too).
 *
 * Receive: one multishot recvmsg (IORING_RECV_MULTISHOT, kernel 6.0+)
 * picking buffers from a provided buffer ring (io_uring_register_buf_ring:
 * liburing 2.3, Debian 12's, has no io_uring_setup_buf_ring; kernel 5.19+).
 * Each completion is parsed with io_uring_recvmsg_validate() and friends,
 * handed to the callback and its buffer given back at once. A completion
 * without IORING_CQE_F_MORE (e.g. -ENOBUFS: every buffer in use) re-arms
 * the receive. Where the kernel refuses the buffer ring or multishot
 * (-EINVAL), the socket falls back to PSD_UDP_SINGLE_SHOT plain recvmsg
 * operations on buffers of its own, each re-armed after its completion.
 *
 * A datagram longer than a buffer's payload room is counted as truncated
 * and not delivered. With UDP_GRO (where setsockopt accepts it) the
 * kernel may hand several same-sized datagrams of one sender as one
 * buffer with their segment size in a cmsg: they are split again, so the
 * callback always sees single datagrams; buffers are then 64 KiB. Drops
 * in the kernel (socket buffer full) are counted from SO_RXQ_OVFL.
 *
 * Send: psd_udp_send() copies a datagram into a batch slot; consecutive
 * datagrams to the same address of the same size (the last may be
 * shorter) share a slot as one UDP GSO send (UDP_SEGMENT cmsg), where the
 * kernel accepts it. psd_udp_flush() turns the filled slots into sendmsg
 * SQEs, which the loop submits together. No free slot: -ENOBUFS
 * (backpressure: the caller retries after completions).
 *
 * Teardown: psd_udp_close() cancels the socket's operations and waits
 * for the kernel to let go of its buffers (synchronous cancel, kernel
 * 6.0+), so one socket may close while others on the loop go on; where
 * that is refused, psd_loop_quiesce() first. Several sockets may share a
 * loop: each gets an id (its operations' tag, its buffer group).
 */
#ifndef PSD_UDP_H
#define PSD_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

#define PSD_UDP_BUFS_DEFAULT	256	/* receive buffers, a power of two */
#define PSD_UDP_BUF_DEFAULT	2048	/* bytes each, headers included */
#define PSD_UDP_GRO_BUF		(65536 + 512)
#define PSD_UDP_SINGLE_SHOT	16	/* recvmsg ops in the fallback */
#define PSD_UDP_TX_SLOTS	64
#define PSD_UDP_GSO_SEGS	64	/* UDP_MAX_SEGMENTS */
#define PSD_UDP_DGRAM_MAX	65507

/* Receives one datagram (valid during the call) from src. */
typedef void psd_udp_recv_fn(void *ctx, const uint8_t *dgram, size_t len,
			     const struct sockaddr *src, socklen_t src_len);

struct psd_udp_config {
	const char *listen;		/* IPv4 or IPv6 literal, "::" for any */
	uint16_t port;			/* 0: an ephemeral port (tests) */
	unsigned int bufs;		/* 0: PSD_UDP_BUFS_DEFAULT */
	unsigned int buf_size;		/* 0: default (GRO: PSD_UDP_GRO_BUF) */
	bool gso, gro;			/* use them where the kernel has them */
	bool single_shot;		/* skip multishot (tests, old kernels) */
	int rcvbuf;			/* SO_RCVBUF(FORCE) bytes; 0: leave */
	psd_udp_recv_fn *recv;
	void *ctx;
};

struct psd_udp_stats {
	uint64_t rx_datagrams, rx_bytes, tx_datagrams, tx_bytes;
	uint64_t rx_truncated;		/* longer than a buffer: not delivered */
	uint64_t rx_no_buffer;		/* -ENOBUFS: receive re-armed */
	uint64_t rx_dropped;		/* by the kernel (SO_RXQ_OVFL) */
	uint64_t rx_errors, rx_gro_batches;
	uint64_t tx_errors, tx_gso_batches, tx_no_slot;
};

struct psd_udp;

/*
 * Opens, binds and arms the socket. -errno with "reason" in err; the
 * listen address is quoted when it does not parse.
 */
int psd_udp_open(struct psd_udp **ret, struct psd_loop *loop,
		 const struct psd_udp_config *cfg, char *err, size_t errlen);

/* Cancels its operations, closes the socket, frees everything. */
void psd_udp_close(struct psd_udp *u);

/*
 * Queues one datagram (1..PSD_UDP_DGRAM_MAX bytes) to `to` (AF_INET6, or
 * AF_INET made v4-mapped). -EINVAL, -EMSGSIZE, -ENOBUFS (no free slot).
 */
int psd_udp_send(struct psd_udp *u, const struct sockaddr *to,
		 socklen_t to_len, const uint8_t *dgram, size_t len);

/*
 * As psd_udp_send, in a send of its own: no GSO batch with the datagrams
 * before or after it. For a path MTU probe, which the kernel may refuse
 * (larger than the interface's MTU) without taking others with it.
 */
int psd_udp_send_alone(struct psd_udp *u, const struct sockaddr *to,
		       socklen_t to_len, const uint8_t *dgram, size_t len);

/* Hands every filled slot to the ring (one sendmsg SQE each). */
void psd_udp_flush(struct psd_udp *u);

/* The bound address (for an ephemeral port). */
int psd_udp_local(const struct psd_udp *u, struct sockaddr_in6 *ret);

bool psd_udp_multishot(const struct psd_udp *u);
bool psd_udp_gso(const struct psd_udp *u);
bool psd_udp_gro(const struct psd_udp *u);
const struct psd_udp_stats *psd_udp_stats(const struct psd_udp *u);

#endif /* PSD_UDP_H */
