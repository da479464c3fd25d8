/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A transport connection endpoint: one peer, one pair of packet keys.
 * Pure logic, no I/O and no clock: the caller hands in received
 * datagrams, asks for datagrams to send, and calls the timer when it is
 * due, always with the current time in nanoseconds. The agent's loop and
 * the test simulator drive it the same way:
 *
 *     psd_conn_recv(c, dgram, len, now);           for each datagram in
 *     while ((n = psd_conn_send(c, buf, sizeof(buf), now)) > 0)
 *             transmit(buf, n);
 *     wake up at psd_conn_timeout(c), call psd_conn_on_timeout(c, now)
 *
 * The client side issues requests (psd_conn_request) and receives each
 * response whole (app->on_response); the server side answers them from
 * app->on_request and app->read. Either side may be both.
 *
 * What goes into the next packet, in order: ACK (when due), CLOSE,
 * MAX_DATA, MAX_REQUEST_DATA, CANCEL and NOT_FOUND, REQUEST, retransmitted
 * DATA, new DATA by priority class, then 4 MiB windows already sent (a
 * large response yields to the ones behind it), then request order, within
 * each request's credit, and PING when a probe or keepalive
 * is due and nothing else elicits an ACK. Ack-eliciting datagrams are
 * padded to the size path MTU probing found (pmtu.h; PSD_DGRAM_MIN up to
 * max_dgram), except the probes of a PTO, which stay at PSD_DGRAM_MIN;
 * ACK-only ones (and CLOSE) are not padded. Ack-eliciting packets wait
 * for the congestion window and the pacer; ACK-only packets do not.
 *
 * Before the peer's address is validated (the server side, until the peer
 * acknowledges one of its packets) at most 3x the bytes received are sent.
 *
 * The scavenger limit (conn_cc.c, docs/protocol.md): while everything
 * waiting to be sent is DATA of background-class requests (prefetch,
 * hydration), the window and pacing rate are those of a LEDBAT-like
 * controller, which yields to other traffic on the path; as soon as DATA
 * or a REQUEST of the demand class waits, the connection's own controller
 * (cfg.cc) decides again, from the next packet on. Both controllers see
 * every ACK, loss and RTT sample of this path all along; neither is reset
 * when the connection switches. stats.tx_scavenger counts the packets
 * sent under the limit.
 */
#ifndef PSD_CONN_H
#define PSD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ackranges.h"
#include "aead.h"
#include "cc.h"
#include "frame.h"
#include "pacer.h"
#include "pmtu.h"
#include "recovery.h"

#define PSD_CONN_REQUESTS_MAX	256		/* each way, at once */
/*
 * The largest datagram size a connection probes for: IPv6 over a
 * 1500-byte Ethernet MTU (1500 - 40 - 8). A caller of psd_conn_send with
 * max_dgram set passes a buffer of PSD_DGRAM_MAX + PSD_PKT_OVERHEAD_MAX.
 */
#define PSD_DGRAM_MAX		1452
#define PSD_CONN_BUFFERED_MAX	(128u << 20)	/* client: response buffers */
#define PSD_IDLE_TIMEOUT	(25 * PSD_NSEC)
#define PSD_KEEPALIVE		(10 * PSD_NSEC)
#define PSD_MAX_DATA_WINDOW	(16u << 20)
/* The DATA credit each side starts with before any MAX_DATA. */
#define PSD_MAX_DATA_INITIAL	(1u << 20)
/*
 * A request's own credit: its DATA may run at most this far past the bytes
 * of it received (MAX_REQUEST_DATA moves it), so one large response
 * leaves room on the path for others instead of taking all of it.
 */
#define PSD_REQUEST_WINDOW	(4u << 20)

/* CLOSE codes. */
enum psd_close_code {
	PSD_CLOSE_NO_ERROR = 0,
	PSD_CLOSE_PROTOCOL_VIOLATION = 1,
	PSD_CLOSE_INTERNAL = 2,
	PSD_CLOSE_IDLE = 3,		/* local only: never sent */
	PSD_CLOSE_LIMIT = 4,		/* the peer exceeded a limit */
};

enum psd_conn_state {
	PSD_CONN_OPEN,
	PSD_CONN_CLOSING,		/* we sent CLOSE */
	PSD_CONN_DRAINING,		/* the peer sent CLOSE */
	PSD_CONN_CLOSED,
};

struct psd_conn_app {
	/* Client: all bytes of a request arrived (bytes valid during the call). */
	void (*on_response)(void *ctx, uint64_t request_id,
			    const uint8_t *bytes, size_t len);
	/* Client: the peer does not have the object. */
	void (*on_not_found)(void *ctx, uint64_t request_id);
	/* Server: a new request; 0 to serve it, -ENOENT if not held. */
	int (*on_request)(void *ctx, const struct psd_frame_request *req);
	/* Server: copies len bytes of req at absolute offset to buf. */
	int (*read)(void *ctx, const struct psd_frame_request *req,
		    uint64_t offset, uint8_t *buf, size_t len);
	/* Either: the connection closed (by_peer, code, reason). */
	void (*on_close)(void *ctx, bool by_peer, uint64_t code,
			 const char *reason);
};

/*
 * Seals payload as packet pn (encoded against the peer's largest_acked)
 * into out under keys the caller owns (docs/protocol.md, "Key
 * ownership"): 0 and *ret_len, or -errno (the connection then closes).
 */
typedef int psd_conn_seal_fn(void *ctx, uint64_t pn, uint64_t largest_acked,
			     bool any_acked, const uint8_t *payload,
			     size_t len, uint8_t *out, size_t cap,
			     size_t *ret_len, uint64_t now);

struct psd_conn_config {
	bool server;			/* address unvalidated until acked */
	/* The session's handshake proved the peer's address already. */
	bool address_validated;
	/* Fixed keys and ids, used unless seal is set (tests, simulator). */
	uint64_t local_cid, peer_cid;
	struct psd_aead_key tx_key, rx_key;
	/* Keys owned by the session layer: seal out, psd_conn_recv_opened in. */
	psd_conn_seal_fn *seal;
	void *seal_ctx;
	const struct psd_cc_ops *cc;	/* NULL: BBR (psd_cc_bbr) */
	uint64_t seed;			/* packet number skipping */
	uint64_t idle_timeout;		/* ns; 0: PSD_IDLE_TIMEOUT */
	uint64_t keepalive;		/* ns; 0: PSD_KEEPALIVE */
	uint64_t max_data_window;	/* bytes; 0: PSD_MAX_DATA_WINDOW */
	/* Probe the path for datagrams up to this size (<= PSD_DGRAM_MAX);
	 * 0: PSD_DGRAM_MIN, no probing. */
	size_t max_dgram;
	const struct psd_conn_app *app;
	void *app_ctx;
};

struct psd_conn_stats {
	uint64_t tx_packets, tx_bytes, rx_packets, rx_bytes;
	uint64_t rx_undecryptable, rx_duplicate, rx_bad_size, rx_unknown_cid;
	uint64_t tx_data_bytes;		/* new DATA bytes */
	uint64_t tx_max_data;		/* the peer's credit for them */
	uint64_t tx_rtx_bytes;		/* retransmitted DATA bytes */
	uint64_t rx_data_bytes;		/* DATA bytes received, incl. dups */
	uint64_t delivered_bytes;	/* completed responses */
	uint64_t amplification_blocked;	/* sends refused by the 3x limit */
	uint64_t tx_scavenger;		/* ack-eliciting packets sent under
					 * the scavenger limit */
	uint64_t last_pn;		/* the last packet number sent */
};

struct psd_conn;

/*
 * A new connection at now. The keys are copied (the caller wipes its own).
 * -EINVAL (no app, a server without on_request/read, or max_dgram past
 * PSD_DGRAM_MAX), -ENOMEM.
 */
int psd_conn_new(const struct psd_conn_config *cfg, uint64_t now,
		 struct psd_conn **ret);

/* Wipes the keys and frees everything. Accepts NULL. */
void psd_conn_free(struct psd_conn *c);

/*
 * Asks the peer for length bytes at offset of an object. *ret_id names it
 * in on_response/on_not_found. -EBUSY: PSD_CONN_REQUESTS_MAX outstanding;
 * -ENOBUFS: response buffers would pass PSD_CONN_BUFFERED_MAX; -EINVAL: a
 * bad field; -ENOTCONN: closing; -ENOMEM.
 */
int psd_conn_request(struct psd_conn *c, enum psd_req_kind kind,
		     const uint8_t object_id[PSD_OBJECT_ID_LEN],
		     uint64_t index, uint64_t offset, uint64_t length,
		     enum psd_req_prio prio, uint64_t *ret_id);

/* Gives up a request: no callback for it after this. -ENOENT. */
int psd_conn_cancel(struct psd_conn *c, uint64_t request_id);

/*
 * Handles one received datagram. Datagrams that are short, for another
 * connection id, fail authentication or repeat a packet number are
 * dropped and counted (0); a protocol violation closes the connection
 * (-EPROTO).
 */
int psd_conn_recv(struct psd_conn *c, const uint8_t *dgram, size_t len,
		  uint64_t now);

/*
 * Handles one packet that the session layer already opened (the seal
 * hook's keys): its full packet number pn, plaintext payload, and the
 * datagram's size dgram_len (for the 3x limit). As psd_conn_recv.
 */
int psd_conn_recv_opened(struct psd_conn *c, uint64_t pn,
			 const uint8_t *payload, size_t len,
			 size_t dgram_len, uint64_t now);

/* Sends a PING with the next packet (a keepalive asked for from outside). */
void psd_conn_ping(struct psd_conn *c);

/*
 * Writes the next datagram to send into buf (cap >= PSD_DGRAM_MIN) and
 * returns its length; 0 when nothing may leave now (see psd_conn_timeout).
 * A datagram may be PSD_PMTU_PN_SLACK bytes longer than the size it was
 * built for (the seal hook's packet numbers); a cap too small for the
 * size the path MTU search would try next lowers the search's maximum.
 */
size_t psd_conn_send(struct psd_conn *c, uint8_t *buf, size_t cap,
		     uint64_t now);

/*
 * When psd_conn_on_timeout (or psd_conn_send) has work; UINT64_MAX: none.
 * (Not const: it drops queued frames of finished requests on the way.)
 */
uint64_t psd_conn_timeout(struct psd_conn *c, uint64_t now);

/* Runs the timers due at now (loss, PTO, ACK delay, keepalive, idle, drain). */
void psd_conn_on_timeout(struct psd_conn *c, uint64_t now);

/* Starts closing: CLOSE(code, reason) goes out with the next send. */
void psd_conn_close(struct psd_conn *c, uint64_t code, const char *reason,
		    uint64_t now);

enum psd_conn_state psd_conn_state(const struct psd_conn *c);
const struct psd_conn_stats *psd_conn_stats(const struct psd_conn *c);
/* The loss recovery and congestion state (read-only, for tests and stats). */
const struct psd_recovery *psd_conn_recovery(const struct psd_conn *c);
const struct psd_cc *psd_conn_cc(const struct psd_conn *c);
/* The path MTU state: datagram size in use, search, counters. */
const struct psd_pmtu *psd_conn_pmtu(const struct psd_conn *c);
/* The close code and reason once closing (reason "" before). */
uint64_t psd_conn_close_code(const struct psd_conn *c);
const char *psd_conn_close_reason(const struct psd_conn *c);
/* True once the peer proved it receives at its address (always, client). */
bool psd_conn_address_validated(const struct psd_conn *c);
/* The datagram psd_conn_send() returned last is a path MTU probe: it
 * should go out in a send of its own (udp.h: psd_udp_send_alone). */
bool psd_conn_sent_probe(const struct psd_conn *c);
/* Bytes held in response buffers (client side). */
uint64_t psd_conn_buffered(const struct psd_conn *c);

#endif /* PSD_CONN_H */
