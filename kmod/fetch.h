/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fetch requests: the in-flight descriptor of an absent chunk, the bios it
 * holds, and the request's life with the agent (send, resend on REGISTER,
 * answer, timeout).
 */
#ifndef PEERSNAP_FETCH_H
#define PEERSNAP_FETCH_H

#include <linux/peersnap.h>
#include "peersnap.h"

/* What the kernel tells the agent: the body of PEERSNAP_CMD_FETCH. */
struct ps_fetch_msg {
	u64 id;
	u32 dev_id;
	u8 snapshot_id[PEERSNAP_SNAPSHOT_ID_LEN];
	u64 first_chunk;
	u32 chunk_count;
	u32 cache_dev;
	u32 chunk_sectors;
	u8 priority;
};

/* What the agent answers: the body of PEERSNAP_CMD_FETCH_DONE. */
struct ps_fetch_reply {
	u64 id;
	u32 dev_id;
	u64 first_chunk;
	u32 chunk_count;
	s32 status;
};

int ps_fetch_init(void);
void ps_fetch_exit(void);

int ps_fetch_dev_init(struct ps_dev *dev);
void ps_fetch_dev_exit(struct ps_dev *dev);

int ps_fetch_hold(struct ps_dev *dev, u64 chunk, struct bio *bio,
		  enum peersnap_priority prio);
bool ps_fetch_background(struct ps_dev *dev, u64 chunk);
struct ps_fetch *ps_fetch_begin_local(struct ps_dev *dev, u64 chunk);
void ps_fetch_end_local(struct ps_fetch *f, int status);
void ps_fetch_local_work(struct work_struct *work);
void ps_fetch_release_held(struct ps_dev *dev, blk_status_t status);

void ps_agent_register(u32 portid);
void ps_agent_release(u32 portid);
bool ps_agent_connected(void);
int ps_fetch_done(u32 portid, const struct ps_fetch_reply *reply);
void ps_fetch_count_orphan_reply(void);
void ps_fetch_kick_timeouts(void);

#endif /* PEERSNAP_FETCH_H */
