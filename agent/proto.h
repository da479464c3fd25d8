/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's side of uapi/linux/peersnap.h: FETCH decoding and validation,
 * REGISTER and FETCH_DONE encoding. No I/O here, so the unit tests and the
 * fuzzer drive it with messages they build themselves.
 *
 * A FETCH is checked against the protocol and the agent's limits:
 *   every attribute it uses has its exact size (else the message is
 *   malformed), REQUEST_ID != 0, CHUNK_COUNT >= 1, CHUNK_SECTORS a power of
 *   two from 8 to 8192 (4 KiB .. 4 MiB chunks, design brief 1), PRIORITY
 *   known, CACHE_DEV != 0, the byte range of the request fits in an off_t
 *   and is at most PSD_FETCH_MAX_BYTES long.
 * Unknown attribute types are ignored: the kernel is the trusted side of
 * this socket, and a newer kernel may add optional attributes.
 */
#ifndef PSD_PROTO_H
#define PSD_PROTO_H

#include <stdint.h>

#include <netlink/genl/genl.h>
#include <linux/peersnap.h>

#define PSD_FETCH_MAX_BYTES	(64u << 20)
#define PSD_CHUNK_SECTORS_MIN	8u		/* 4 KiB */
#define PSD_CHUNK_SECTORS_MAX	8192u		/* 4 MiB */
#define PSD_SECTOR_SHIFT	9

struct psd_fetch_msg {
	uint64_t request_id;
	uint32_t device_id;
	uint8_t snapshot_id[PEERSNAP_SNAPSHOT_ID_LEN];
	uint64_t first_chunk;
	uint32_t chunk_count;
	uint32_t cache_dev;	/* new_encode_dev() */
	uint32_t chunk_sectors;
	uint8_t priority;	/* enum peersnap_priority */
};

struct psd_fetch_done {
	uint64_t request_id;
	uint32_t device_id;
	uint64_t first_chunk;
	uint32_t chunk_count;
	int32_t status;		/* 0 or -errno */
};

/*
 * Decodes and validates a FETCH (nlh points at the netlink header).
 * Returns:
 *   0        *ret is a valid request;
 *   -EINVAL  the request is invalid but names itself: *ret holds at least
 *            the four fields FETCH_DONE echoes, so the caller answers
 *            -EINVAL and the kernel fails the I/O instead of holding it;
 *   -EBADMSG the message cannot be answered (broken header, an attribute
 *            of the wrong size, an echo field missing, request id 0);
 *            *ret is untouched.
 * *ret_why names the reason for a non-zero return.
 */
int psd_proto_fetch_parse(struct nlmsghdr *nlh, struct psd_fetch_msg *ret,
			  const char **ret_why);

/* Fills an allocated message; -ENOMEM (-NLE_NOMEM) if it does not fit. */
int psd_proto_register_build(struct nl_msg *msg, int family);
int psd_proto_done_build(struct nl_msg *msg, int family,
			 const struct psd_fetch_done *done);

/* The FETCH_DONE that answers m with status. */
struct psd_fetch_done psd_proto_done_for(const struct psd_fetch_msg *m,
					 int32_t status);

/* Byte length of the request; valid after a successful parse. */
static inline uint64_t psd_fetch_bytes(const struct psd_fetch_msg *m)
{
	return (uint64_t)m->chunk_count * m->chunk_sectors << PSD_SECTOR_SHIFT;
}

#endif /* PSD_PROTO_H */
