/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Frames: what the protected payload of a transport packet carries
 * (docs/protocol.md, "Packets and frames"). A payload is a sequence of
 * frames, each a varint type followed by its fields; every integer is a
 * QUIC varint unless said otherwise.
 *
 *   PADDING   0x00                       (a run of zero bytes)
 *   PING      0x01
 *   ACK       0x02 largest ack_delay_us range_count first_range
 *                  (gap range)*          (RFC 9000 19.3 arithmetic)
 *   REQUEST   0x10 request_id kind:u8 prio:u8 object_id:32 index offset length
 *   DATA      0x11 request_id offset length bytes[length]
 *   CANCEL    0x12 request_id
 *   NOT_FOUND 0x13 request_id
 *   MAX_DATA  0x14 maximum               (connection-wide DATA byte credit)
 *   MAX_REQUEST_DATA 0x15 request_id maximum (a request's DATA end credit)
 *   CLOSE     0x1c code reason_len reason[reason_len]
 *
 * The parser checks every varint, length and sum against the bytes given
 * and the limits below; it never reads past the buffer and keeps pointers
 * into it (DATA bytes, CLOSE reason) rather than copying.
 */
#ifndef PSD_FRAME_H
#define PSD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum psd_frame_type {
	PSD_FRAME_PADDING = 0x00,
	PSD_FRAME_PING = 0x01,
	PSD_FRAME_ACK = 0x02,
	PSD_FRAME_REQUEST = 0x10,
	PSD_FRAME_DATA = 0x11,
	PSD_FRAME_CANCEL = 0x12,
	PSD_FRAME_NOT_FOUND = 0x13,
	PSD_FRAME_MAX_DATA = 0x14,
	PSD_FRAME_MAX_REQUEST_DATA = 0x15,
	PSD_FRAME_CLOSE = 0x1c,
};

/* What a REQUEST names: a chunk by its hash, or a piece of a manifest. */
enum psd_req_kind {
	PSD_REQ_CHUNK = 0,
	PSD_REQ_MANIFEST = 1,
	__PSD_REQ_KIND_MAX,
};

/* Priority classes: demand before prefetch (the scavenger class). */
enum psd_req_prio {
	PSD_PRIO_DEMAND = 0,
	PSD_PRIO_BACKGROUND = 1,
	__PSD_PRIO_MAX,
};

#define PSD_ACK_RANGES_MAX	32		/* per ACK frame */
#define PSD_OBJECT_ID_LEN	32		/* BLAKE2b-256 */
#define PSD_REQUEST_LEN_MAX	(64u << 20)	/* as a FETCH */
#define PSD_CLOSE_REASON_MAX	256
/* Any stream offset + length stays below this (no overflow anywhere). */
#define PSD_OFFSET_MAX		(1ull << 62)

/* Acknowledged packet numbers lo..hi inclusive. */
struct psd_ack_range {
	uint64_t lo, hi;
};

struct psd_frame_ack {
	uint64_t ack_delay_us;
	unsigned int n_ranges;			/* 1..PSD_ACK_RANGES_MAX */
	/* Descending: r[0].hi is the largest acknowledged; gaps between. */
	struct psd_ack_range r[PSD_ACK_RANGES_MAX];
};

struct psd_frame_request {
	uint64_t request_id;
	uint8_t kind;				/* enum psd_req_kind */
	uint8_t prio;				/* enum psd_req_prio */
	uint8_t object_id[PSD_OBJECT_ID_LEN];
	uint64_t index;				/* manifest piece; 0 for a chunk */
	uint64_t offset;
	uint64_t length;			/* 1..PSD_REQUEST_LEN_MAX */
};

struct psd_frame_data {
	uint64_t request_id;
	uint64_t offset;
	size_t len;
	const uint8_t *bytes;			/* points into the packet */
};

/* DATA of request_id may reach (not include) absolute offset maximum. */
struct psd_frame_max_req {
	uint64_t request_id;
	uint64_t maximum;
};

struct psd_frame_close {
	uint64_t code;
	size_t reason_len;
	const uint8_t *reason;			/* not NUL-terminated */
};

struct psd_frame {
	enum psd_frame_type type;
	union {
		struct psd_frame_ack ack;
		struct psd_frame_request req;
		struct psd_frame_data data;
		struct psd_frame_close close;
		uint64_t request_id;		/* CANCEL, NOT_FOUND */
		uint64_t max_data;		/* MAX_DATA */
		struct psd_frame_max_req max_req; /* MAX_REQUEST_DATA */
		size_t padding_len;		/* PADDING */
	};
};

/*
 * Parses the frame at p (len bytes left in the payload) into *ret and
 * stores its size in *ret_used. -EBADMSG: truncated, a bad varint, a
 * length or sum out of range, ACK ranges that go below zero or number more
 * than PSD_ACK_RANGES_MAX; -EPROTO: an unknown frame type. Nothing is
 * stored on failure.
 */
int psd_frame_parse(const uint8_t *p, size_t len, struct psd_frame *ret,
		    size_t *ret_used);

/*
 * Encodes f at p (cap bytes); returns the bytes written, 0 if it does not
 * fit or f breaks a limit the parser enforces (nothing is written then).
 */
size_t psd_frame_encode(const struct psd_frame *f, uint8_t *p, size_t cap);

/* The encoded size of f, 0 if f breaks a limit. */
size_t psd_frame_encoded_len(const struct psd_frame *f);

/* Bytes of a DATA frame's header (everything but its bytes). */
size_t psd_frame_data_overhead(uint64_t request_id, uint64_t offset,
			       size_t len);

/* True for frames that make the receiver send an ACK (all but ACK, PADDING, CLOSE). */
bool psd_frame_ack_eliciting(enum psd_frame_type type);

/* "ACK", "DATA", ... for messages; "unknown" otherwise. */
const char *psd_frame_name(enum psd_frame_type type);

#endif /* PSD_FRAME_H */
