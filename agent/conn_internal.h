/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The inside of a connection (conn.h), shared by conn.c (setup, requests,
 * closing, timers), conn_recv.c (datagrams in), conn_send.c (datagrams
 * out) and conn_cc.c (congestion control). Nothing outside these files
 * includes it.
 */
#ifndef PSD_CONN_INTERNAL_H
#define PSD_CONN_INTERNAL_H

#include "conn.h"
#include "packet.h"

#define NEVER		UINT64_MAX
/* Room in the send queue: everything in flight plus one control frame per request. */
#define QUEUE_CAP	(PSD_SENT_RING * PSD_SENT_FRAMES_MAX + \
			 4 * PSD_CONN_REQUESTS_MAX)
#define RX_PN_RANGES	256
/*
 * Disjoint pieces a response may arrive in: enough for full-size DATA
 * frames with a hole after every one (a burst of losses), so only a peer
 * that cuts a response into tiny frames runs out; at most the ranges'
 * cap, which is also the most packets that can be in flight.
 */
#define RX_DATA_RANGES_MIN	64
#define RX_DATA_PIECE_MIN	512	/* bytes per piece on average */
#define RX_DATA_RANGES(len)	\
	(RX_DATA_RANGES_MIN + (len) / RX_DATA_PIECE_MIN < PSD_RANGES_CAP_MAX ? \
	 RX_DATA_RANGES_MIN + (len) / RX_DATA_PIECE_MIN : PSD_RANGES_CAP_MAX)
#define SERVED_ID_RANGES 64
/* The most payload a packet carries (at PSD_DGRAM_MAX). */
#define PAYLOAD_CAP	(PSD_DGRAM_MAX - PSD_PKT_OVERHEAD_MAX)

struct out_req {
	bool used;
	bool cancelled;			/* CANCEL queued or in flight */
	struct psd_frame_request f;
	uint8_t *buf;
	struct psd_ranges got;
	uint64_t received;		/* distinct bytes of it received */
	/* Its credit (an absolute end offset): granted, announced, and
	 * whether a MAX_REQUEST_DATA is owed. */
	uint64_t credit, credit_sent;
	bool credit_due;
	bool request_queued;		/* its REQUEST is in the send queue */
};

struct in_req {
	bool used;
	bool not_found;			/* NOT_FOUND queued or in flight */
	struct psd_frame_request f;
	uint64_t next;			/* next new byte (absolute offset) */
	uint64_t credit;		/* DATA may not reach past this offset */
	unsigned int frames_out;	/* DATA frames in flight */
	unsigned int queued;		/* DATA frames in the send queue */
};

struct send_queue {
	struct psd_sent_frame *f;
	unsigned int head, n;
};

enum plan_kind { PLAN_NONE, PLAN_CLOSE, PLAN_ELICITING, PLAN_ACK_ONLY };

struct psd_conn {
	struct psd_conn_config cfg;
	enum psd_conn_state state;
	bool sent_probe;		/* the last datagram sent was a probe */
	struct psd_cc cc;
	/*
	 * The scavenger limit (conn_cc.c): a LEDBAT state fed the same
	 * events as cc through cc_feed (recovery's controller), binding
	 * while all DATA waiting belongs to background requests. A change
	 * of cc.mss must change scavenger.mss too.
	 */
	struct psd_cc scavenger;
	struct psd_cc cc_feed;
	bool scavenging;		/* the limit applies now */
	struct psd_recovery rec;
	struct psd_pacer pacer;
	struct psd_pmtu pmtu;		/* the datagram size (pmtu.h) */

	/* Receive side: packet numbers seen and the ACK we owe. */
	struct psd_ranges rx_pns;
	uint64_t largest_rx;
	uint64_t largest_rx_time;	/* when largest_rx arrived */
	bool any_rx;
	bool ack_new;			/* packets arrived since the last ACK */
	bool ack_now;			/* out of order: ACK immediately */
	unsigned int unacked_eliciting;
	uint64_t ack_deadline;

	bool validated;
	uint64_t last_rx, last_tx_eliciting;
	unsigned int probes;		/* PTO probes owed */
	bool ping_due;
	unsigned int stall_backoff;

	struct out_req out[PSD_CONN_REQUESTS_MAX];
	uint64_t next_req_id;
	uint64_t buffered;
	struct in_req in[PSD_CONN_REQUESTS_MAX];
	struct psd_ranges served_ids;
	struct send_queue q;

	/* Flow control: what we may send, what we allow. */
	uint64_t tx_max_data;
	uint64_t rx_data, rx_max_data;	/* new bytes received; granted */
	uint64_t rx_max_data_sent;	/* the largest credit announced */
	bool max_data_due;
	unsigned int request_credit_due;	/* out_reqs with credit_due */

	uint64_t close_code;
	char close_reason[PSD_CLOSE_REASON_MAX + 1];
	bool close_due;
	uint64_t drain_deadline;
	struct psd_conn_stats st;
};

/* The send queue (conn.c). false: full. */
bool conn_queue_push(struct send_queue *q, const struct psd_sent_frame *f,
		     bool front);
struct psd_sent_frame conn_queue_pop(struct send_queue *q);

/* Requests (conn.c). */
/* The credit a request starts with: its end, or one window in. */
uint64_t conn_request_initial_credit(const struct psd_frame_request *f);
struct out_req *conn_find_out(struct psd_conn *c, uint64_t id);
struct in_req *conn_find_in(struct psd_conn *c, uint64_t id);
void conn_free_out(struct psd_conn *c, struct out_req *o);
void conn_finish_in(struct psd_conn *c, struct in_req *r);
void conn_maybe_finish_in(struct psd_conn *c, struct in_req *r);

/* Closing (conn.c). */
void conn_enter_closed(struct psd_conn *c, enum psd_conn_state state,
		       uint64_t now);
void conn_notify_close(struct psd_conn *c, bool by_peer);
/* A protocol error: closes with a reason naming the bad input; -EPROTO. */
__attribute__((format(printf, 4, 5)))
int conn_violation(struct psd_conn *c, uint64_t code, uint64_t now,
		   const char *fmt, ...);

/* Congestion control (conn_cc.c): both controllers, then the rule. */
void conn_cc_init(struct psd_conn *c, uint64_t now);
/* Applies the rule to what waits now; call before each send decision. */
void conn_cc_update(struct psd_conn *c, uint64_t now);
/* The window and pacing rate in force. */
uint64_t conn_cc_window(const struct psd_conn *c);
uint64_t conn_cc_pacing_rate(const struct psd_conn *c);

/* The controllers' mss follows the path MTU's datagram size (conn.c). */
void conn_pmtu_sync(struct psd_conn *c);

/* What may be sent at now, or when it might be (conn_send.c). */
uint64_t conn_plan(struct psd_conn *c, uint64_t now, enum plan_kind *ret_kind);

#endif /* PSD_CONN_INTERNAL_H */
