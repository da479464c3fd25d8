/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control protocol's wire codec (docs/control.md is the spec), shared
 * by peersnapd's control server and the peersnap CLI. No I/O here.
 *
 *   frame = header (16 bytes) || attributes
 *   header: magic u32 "PSCT" | length u32 (whole frame) | type u16 |
 *           flags u16 (0) | seq u32            (all little-endian)
 *   attribute: type u16 | zero u16 | length u32 | value[length]
 *
 * Every request gets exactly one reply with the request's seq: its type
 * with PSD_CTL_REPLY set, or PSD_CTL_ERROR (ERRNO + MESSAGE).
 *
 * Parsing validates the whole frame before anything is used: magic, the
 * length (PSD_CTL_HDR_LEN .. PSD_CTL_FRAME_MAX, equal to the bytes given),
 * flags 0, every attribute's header and exact size for its wire type, no
 * trailing bytes, no duplicates (except the repeatable nests), every
 * attribute allowed for the message type and every required one present,
 * nests (one level deep) validated the same way. Unknown attribute types
 * (>= __PSD_CTL_A_MAX) are skipped, for newer peers' optional additions.
 * A well-framed message of an unknown type is -EOPNOTSUPP.
 */
#ifndef PSD_CTL_H
#define PSD_CTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkhash.h"
#include "manifest.h"

#define PSD_CTL_VERSION		1u
#define PSD_CTL_MAGIC		0x54435350u	/* "PSCT" on the wire */
#define PSD_CTL_HDR_LEN		16u
#define PSD_CTL_ATTR_HDR_LEN	8u

/* READ data per request, and the largest attribute values. */
#define PSD_CTL_READ_MAX	(4u << 20)
#define PSD_CTL_BITMAP_MAX	(1u << 20)	/* 8 Mi chunks per ADD_PRESENT */
#define PSD_CTL_STRING_MAX	4096u		/* with the NUL */
/* One 4 MiB index chunk or READ batch, or a manifest, plus headers. */
#define PSD_CTL_FRAME_MAX	((4u << 20) + (64u << 10))
#define PSD_CTL_LIST_MAX	1024u		/* snapshots per LIST reply */
#define PSD_CTL_ID_PREFIX_MIN	8u		/* hex digits */
/* The daemon's limits (docs/control.md, "Limits"). */
#define PSD_CTL_MAX_CLIENTS	16u
#define PSD_CTL_MAX_ADDS	4u		/* open ADD_BEGINs, daemon-wide */
#define PSD_CTL_PRESENT_MAX	(64u << 20)	/* present bitmap bytes per add */

_Static_assert(PSD_MANIFEST_MAX_LEN + 1024 <= PSD_CTL_FRAME_MAX,
	       "a manifest fits in one frame");
_Static_assert(PSD_INDEX_CHUNK_SIZE_MAX + 1024 <= PSD_CTL_FRAME_MAX,
	       "an index chunk fits in one frame");
_Static_assert(PSD_CTL_READ_MAX + 1024 <= PSD_CTL_FRAME_MAX,
	       "a READ batch fits in one frame");

/* Message types. A reply is the request's type | PSD_CTL_REPLY. */
enum psd_ctl_type {
	PSD_CTL_HELLO = 1,
	PSD_CTL_STATUS,
	PSD_CTL_LIST,
	PSD_CTL_GET_MANIFEST,
	PSD_CTL_GET_INDEX,
	PSD_CTL_ADD_BEGIN,
	PSD_CTL_ADD_INDEX,
	PSD_CTL_ADD_PRESENT,
	PSD_CTL_ADD_COMMIT,
	PSD_CTL_ADD_ABORT,
	PSD_CTL_ATTACHED,
	PSD_CTL_DETACHED,
	PSD_CTL_READ,
	PSD_CTL_PEERS,
	__PSD_CTL_TYPE_MAX,
	PSD_CTL_REPLY = 0x8000,
	PSD_CTL_ERROR = 0xffff,
};

/* Attribute types: one namespace, each with one wire type (docs). */
enum psd_ctl_attr_type {
	PSD_CTL_A_UNSPEC,
	PSD_CTL_A_VERSION,		/* u32 protocol version */
	PSD_CTL_A_DAEMON_VERSION,	/* string */
	PSD_CTL_A_ERRNO,		/* s32, negative errno */
	PSD_CTL_A_MESSAGE,		/* string, one line */
	PSD_CTL_A_ID,			/* 32 bytes: snapshot id */
	PSD_CTL_A_ID_PREFIX,		/* string: 8..64 hex digits */
	PSD_CTL_A_AFTER,		/* 32 bytes: LIST resumes after it */
	PSD_CTL_A_MORE,			/* u8 1: LIST has more */
	PSD_CTL_A_MANIFEST,		/* binary: signed manifest bytes */
	PSD_CTL_A_INDEX,		/* u32 index chunk number */
	PSD_CTL_A_INDEX_DATA,		/* binary: one index chunk */
	PSD_CTL_A_SOURCE_KIND,		/* u8 enum psd_ctl_source */
	PSD_CTL_A_PATH,			/* string: absolute path */
	PSD_CTL_A_FIRST_CHUNK,		/* u64 */
	PSD_CTL_A_COUNT,		/* u32 chunks */
	PSD_CTL_A_BITMAP,		/* binary: present bits, LSB first */
	PSD_CTL_A_DM_NAME,		/* string */
	PSD_CTL_A_DATA,			/* binary: chunk data */
	PSD_CTL_A_NAME,			/* string */
	PSD_CTL_A_SIZE,			/* u64 image bytes */
	PSD_CTL_A_CHUNK_SIZE,		/* u32 bytes */
	PSD_CTL_A_CHUNK_COUNT,		/* u64 */
	PSD_CTL_A_CREATED,		/* u64 seconds since the epoch */
	PSD_CTL_A_PARENT,		/* 32 bytes */
	PSD_CTL_A_PUBLISHER,		/* 32 bytes */
	PSD_CTL_A_HAS_ORIGIN,		/* u8 0/1 */
	PSD_CTL_A_SNAPSHOT,		/* nest, repeatable: LIST entry */
	PSD_CTL_A_COUNTER,		/* nest, repeatable: NAME + VALUE */
	PSD_CTL_A_VALUE,		/* u64 */
	PSD_CTL_A_UPTIME,		/* u64 seconds */
	PSD_CTL_A_PEER,			/* nest, repeatable (issue 6) */
	PSD_CTL_A_ADDRESS,		/* string */
	PSD_CTL_A_STATE,		/* string */
	PSD_CTL_A_INDEX_COUNT,		/* u32 */
	__PSD_CTL_A_MAX,
};

_Static_assert(__PSD_CTL_A_MAX <= 64, "attribute masks are 64 bits");

enum psd_ctl_source {
	PSD_CTL_SOURCE_ORIGIN = 1,	/* image file holding every chunk */
	PSD_CTL_SOURCE_CACHE = 2,	/* cache device + present bitmap */
};

/* ---- building ---------------------------------------------------------- */

/*
 * A growable frame. Errors are sticky: a failed put leaves err set and
 * every later call a no-op, so callers check once, at psd_ctl_finish().
 */
struct psd_ctl_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t nest;		/* offset of the open nest's header, or 0 */
	size_t last;		/* offset of the last attribute's header */
	int err;
};

/* Starts a frame in b (reusing its memory), dropping what it held. */
void psd_ctl_begin(struct psd_ctl_buf *b, uint16_t type, uint32_t seq);
void psd_ctl_put_u8(struct psd_ctl_buf *b, uint16_t type, uint8_t v);
void psd_ctl_put_u32(struct psd_ctl_buf *b, uint16_t type, uint32_t v);
void psd_ctl_put_u64(struct psd_ctl_buf *b, uint16_t type, uint64_t v);
void psd_ctl_put_s32(struct psd_ctl_buf *b, uint16_t type, int32_t v);
void psd_ctl_put_bytes(struct psd_ctl_buf *b, uint16_t type,
		       const void *v, size_t len);
/* A NUL-terminated string; the NUL goes on the wire too. */
void psd_ctl_put_str(struct psd_ctl_buf *b, uint16_t type, const char *s);
/*
 * Appends an attribute of len bytes and returns where its value goes (for
 * I/O straight into the frame), or NULL on error. The pointer is valid
 * until the next call on b.
 */
void *psd_ctl_put_reserve(struct psd_ctl_buf *b, uint16_t type, size_t len);
/*
 * Shortens the attribute put last (not a nest, nor one inside an open
 * nest) to len bytes, e.g. a reserved read buffer to what was read.
 * -EINVAL if len is larger or there is no such attribute (sticky).
 */
void psd_ctl_shrink_last(struct psd_ctl_buf *b, size_t len);
/* Nests do not nest: begin, puts, end. */
void psd_ctl_nest_begin(struct psd_ctl_buf *b, uint16_t type);
void psd_ctl_nest_end(struct psd_ctl_buf *b);
/*
 * Closes the frame: 0, or the sticky error (-ENOMEM; -E2BIG past
 * PSD_CTL_FRAME_MAX; -EINVAL for a misuse such as an open nest).
 */
int psd_ctl_finish(struct psd_ctl_buf *b);
/* An error reply: ERRNO = err (negative) and the formatted MESSAGE. */
int psd_ctl_build_error(struct psd_ctl_buf *b, uint32_t seq, int err,
			const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void psd_ctl_buf_free(struct psd_ctl_buf *b);

/* ---- parsing ----------------------------------------------------------- */

struct psd_ctl_attr {
	const uint8_t *val;	/* NULL: absent */
	uint32_t len;
};

/* Attributes by type: the first occurrence of each. */
struct psd_ctl_attrs {
	struct psd_ctl_attr a[__PSD_CTL_A_MAX];
};

struct psd_ctl_msg {
	uint16_t type;
	uint32_t seq;
	const uint8_t *body;	/* the attributes, for iterating nests */
	uint32_t body_len;
	struct psd_ctl_attrs at;
};

struct psd_ctl_err {
	char msg[160];
};

/*
 * From the first bytes of a stream: the whole frame's length, once avail
 * >= PSD_CTL_HDR_LEN. -EAGAIN: not enough bytes yet; -EBADMSG: bad magic
 * or flags; -EMSGSIZE: length outside PSD_CTL_HDR_LEN..PSD_CTL_FRAME_MAX.
 */
int psd_ctl_frame_len(const void *buf, size_t avail, uint32_t *ret_len,
		      struct psd_ctl_err *err);

/*
 * Validates one whole frame (len bytes) as described at the top. *ret
 * points into buf. -EBADMSG malformed, -EMSGSIZE bad length, -EOPNOTSUPP
 * a well-framed message of an unknown type (*ret->type and seq are set,
 * so the caller can answer it). err says why, quoting the bad value.
 */
int psd_ctl_parse(const void *buf, size_t len, struct psd_ctl_msg *ret,
		  struct psd_ctl_err *err);

/*
 * Walks the repeatable nest `type` of m: *pos starts at 0; returns 1 with
 * *ret filled (already validated by psd_ctl_parse()), 0 at the end.
 */
int psd_ctl_nest_next(const struct psd_ctl_msg *m, uint16_t type,
		      uint32_t *pos, struct psd_ctl_attrs *ret);

/* Accessors. The typed ones may only be used on attributes of that wire
 * type, which psd_ctl_parse() has checked for size: absent reads as 0. */
bool psd_ctl_has(const struct psd_ctl_attrs *at, uint16_t type);
uint8_t psd_ctl_u8(const struct psd_ctl_attrs *at, uint16_t type);
uint32_t psd_ctl_u32(const struct psd_ctl_attrs *at, uint16_t type);
uint64_t psd_ctl_u64(const struct psd_ctl_attrs *at, uint16_t type);
int32_t psd_ctl_s32(const struct psd_ctl_attrs *at, uint16_t type);
/* A string attribute (NUL-terminated on the wire), or NULL if absent. */
const char *psd_ctl_str(const struct psd_ctl_attrs *at, uint16_t type);
/* A binary or 32-byte attribute's bytes, or NULL if absent. */
const uint8_t *psd_ctl_bytes(const struct psd_ctl_attrs *at, uint16_t type,
			     uint32_t *ret_len);

/* "HELLO", "LIST reply", "ERROR", or "unknown"; "ID", "PATH", ... */
const char *psd_ctl_type_name(uint16_t type);
const char *psd_ctl_attr_name(uint16_t type);

#endif /* PSD_CTL_H */
