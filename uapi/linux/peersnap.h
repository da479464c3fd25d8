/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * peersnap: kernel <-> agent protocol over generic netlink.
 *
 * Family name: "peersnap" (PEERSNAP_GENL_NAME), version 1.
 * Multicast group: "events" (PEERSNAP_GENL_MCGRP_EVENTS).
 *
 * Every command needs CAP_NET_ADMIN in the caller's network namespace
 * (GENL_ADMIN_PERM); the family lives in the initial namespace only.
 * Attributes are validated strictly by the policy before any handler
 * runs: an unknown attribute or a wrong length is refused with -EINVAL, a
 * value outside its range (a non-zero PEERSNAP_A_FLAGS, a zero request id
 * or chunk count, a status above 0 or below -4095) with -ERANGE. Such
 * messages, and any without CAP_NET_ADMIN, never reach peersnap: generic
 * netlink answers them (with an extack message) and peersnap counts
 * nothing. A FETCH_DONE that passes the policy but is refused by peersnap
 * is counted once: in the device's "rejected" status field when it names
 * a request pending in the current session (a mismatch), else in the
 * module parameter "rejected_replies" (missing attribute, not the agent,
 * unknown or stale request id).
 *
 * Delivery: a FETCH the kernel could not deliver (socket full, agent gone)
 * stays queued and is sent again, at the latest on the next REGISTER; the
 * agent need not re-register to recover from its own receive overrun, but
 * may.
 *
 * PEERSNAP_CMD_REGISTER (agent -> kernel, doit)
 *   No attributes (PEERSNAP_A_FLAGS may be present and must be 0).
 *   The sending socket becomes the agent. Any previous agent is replaced.
 *   Every request still pending is sent again to the new agent, each with
 *   its original request id. The kernel drops the agent as soon as its
 *   socket is closed (NETLINK_URELEASE): pending requests then wait for a
 *   new agent, subject to each device's agent policy.
 *   Errors: -EBUSY if the sender is in another network namespace.
 *
 * PEERSNAP_CMD_FETCH (kernel -> agent, unicast to the registered agent)
 *   PEERSNAP_A_REQUEST_ID     u64  unique for the module's lifetime, never 0
 *   PEERSNAP_A_DEVICE_ID      u32  the target instance (see DEVICE dump)
 *   PEERSNAP_A_SNAPSHOT_ID    binary, PEERSNAP_SNAPSHOT_ID_LEN bytes
 *   PEERSNAP_A_FIRST_CHUNK    u64
 *   PEERSNAP_A_CHUNK_COUNT    u32  >= 1
 *   PEERSNAP_A_CACHE_DEV      u32  dev_t of the cache device (new_encode_dev)
 *   PEERSNAP_A_CHUNK_SECTORS  u32  512-byte sectors per chunk: a power of
 *                                  two from 8 to 8192 (4 KiB to 4 MiB)
 *   PEERSNAP_A_PRIORITY       u8   enum peersnap_priority: a lower value is
 *                                  more urgent
 *   The agent must write chunks [first, first + count) to the cache device
 *   at sector chunk * chunk_sectors, make them durable, then answer with
 *   FETCH_DONE. Data beyond the end of the snapshot image reads as zeros.
 *
 * PEERSNAP_CMD_FETCH_DONE (agent -> kernel, doit)
 *   PEERSNAP_A_REQUEST_ID     u64  (required)
 *   PEERSNAP_A_DEVICE_ID      u32  (required, must match the request)
 *   PEERSNAP_A_FIRST_CHUNK    u64  (required, must match the request)
 *   PEERSNAP_A_CHUNK_COUNT    u32  (required, must match the request)
 *   PEERSNAP_A_STATUS         s32  (required) 0, or a negative errno
 *   Errors: -EINVAL if an attribute is missing; -EPERM if the sender is
 *   not the registered agent; -ENOENT for an unknown or already answered
 *   request id, or one not (re)sent in the current agent session (late
 *   replies from an older agent included); -EINVAL if device, first chunk
 *   or count do not match the request. A refused reply changes nothing:
 *   the request stays pending.
 *   A status of 0 marks the chunks present and releases the held I/O; a
 *   negative status fails the held reads with -EIO.
 *
 * PEERSNAP_CMD_GET_DEVICE (dump, or doit with PEERSNAP_A_DEVICE_ID)
 *   Reply per device, nested in nothing:
 *   PEERSNAP_A_DEVICE_ID, PEERSNAP_A_DEVICE_NAME (string: the dm device's
 *   "major:minor", as dm_device_name() gives it, not the name dmsetup
 *   shows, which `dmsetup rename` may change),
 *   PEERSNAP_A_SNAPSHOT_ID, PEERSNAP_A_CACHE_DEV, PEERSNAP_A_CHUNK_SECTORS,
 *   PEERSNAP_A_CHUNKS_TOTAL, PEERSNAP_A_CHUNKS_PRESENT,
 *   PEERSNAP_A_CHUNKS_DIRTY, PEERSNAP_A_FETCHES_INFLIGHT,
 *   PEERSNAP_A_FETCHED, PEERSNAP_A_FAILED, PEERSNAP_A_REJECTED (u64 each,
 *   INFLIGHT u32).
 *
 * PEERSNAP_CMD_GET_BITMAP (dump)
 *   Request: PEERSNAP_A_DEVICE_ID (required), PEERSNAP_A_BITMAP_KIND
 *   (required, enum peersnap_bitmap_kind).
 *   Replies: PEERSNAP_A_DEVICE_ID, PEERSNAP_A_BITMAP_KIND,
 *   PEERSNAP_A_FIRST_CHUNK (chunk of bit 0 of this piece),
 *   PEERSNAP_A_CHUNK_COUNT (valid bits in this piece), PEERSNAP_A_BITMAP
 *   (binary, little-endian bit order: bit i of byte j is chunk
 *   first + 8 * j + i). Pieces come in order and cover every chunk.
 *   Errors: -ENODEV for an unknown device.
 *
 * PEERSNAP_CMD_DEVICE_ADDED / PEERSNAP_CMD_DEVICE_REMOVED (multicast "events")
 *   PEERSNAP_A_DEVICE_ID, PEERSNAP_A_DEVICE_NAME, PEERSNAP_A_SNAPSHOT_ID.
 */
#ifndef _UAPI_LINUX_PEERSNAP_H
#define _UAPI_LINUX_PEERSNAP_H

#define PEERSNAP_GENL_NAME "peersnap"
#define PEERSNAP_GENL_VERSION 1
#define PEERSNAP_GENL_MCGRP_EVENTS "events"

#define PEERSNAP_SNAPSHOT_ID_LEN 32
#define PEERSNAP_DEVICE_NAME_MAX 128

enum peersnap_cmd {
	PEERSNAP_CMD_UNSPEC,
	PEERSNAP_CMD_REGISTER,
	PEERSNAP_CMD_FETCH,
	PEERSNAP_CMD_FETCH_DONE,
	PEERSNAP_CMD_GET_DEVICE,
	PEERSNAP_CMD_GET_BITMAP,
	PEERSNAP_CMD_DEVICE_ADDED,
	PEERSNAP_CMD_DEVICE_REMOVED,
	__PEERSNAP_CMD_MAX
};

#define PEERSNAP_CMD_MAX (__PEERSNAP_CMD_MAX - 1)

enum peersnap_attr {
	PEERSNAP_A_UNSPEC,
	PEERSNAP_A_PAD,
	PEERSNAP_A_FLAGS,
	PEERSNAP_A_REQUEST_ID,
	PEERSNAP_A_DEVICE_ID,
	PEERSNAP_A_DEVICE_NAME,
	PEERSNAP_A_SNAPSHOT_ID,
	PEERSNAP_A_FIRST_CHUNK,
	PEERSNAP_A_CHUNK_COUNT,
	PEERSNAP_A_CACHE_DEV,
	PEERSNAP_A_CHUNK_SECTORS,
	PEERSNAP_A_PRIORITY,
	PEERSNAP_A_STATUS,
	PEERSNAP_A_CHUNKS_TOTAL,
	PEERSNAP_A_CHUNKS_PRESENT,
	PEERSNAP_A_CHUNKS_DIRTY,
	PEERSNAP_A_FETCHES_INFLIGHT,
	PEERSNAP_A_FETCHED,
	PEERSNAP_A_FAILED,
	PEERSNAP_A_REJECTED,
	PEERSNAP_A_BITMAP_KIND,
	PEERSNAP_A_BITMAP,
	__PEERSNAP_A_MAX
};

#define PEERSNAP_A_MAX (__PEERSNAP_A_MAX - 1)

enum peersnap_priority {
	PEERSNAP_PRIO_DEMAND, /* a read is waiting */
	PEERSNAP_PRIO_WRITE_HYDRATE, /* a partial write is waiting */
	PEERSNAP_PRIO_PREFETCH, /* prefetch / hydrate: background */
	__PEERSNAP_PRIO_MAX
};

enum peersnap_bitmap_kind {
	PEERSNAP_BITMAP_PRESENT,
	PEERSNAP_BITMAP_DIRTY,
	__PEERSNAP_BITMAP_MAX
};

#endif /* _UAPI_LINUX_PEERSNAP_H */
