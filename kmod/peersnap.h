/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A peersnap target instance and what the module's files share about it.
 *
 * Lifetimes: a struct ps_dev lives from the constructor to the end of the
 * destructor. Code that reaches a device through a request (netlink
 * replies, timeouts) holds dev->users for as long as it touches it; the
 * destructor unlinks the device's requests and then waits for users to
 * reach zero before freeing.
 */
#ifndef PEERSNAP_H
#define PEERSNAP_H

#include <linux/atomic.h>
#include <linux/bio.h>
#include <linux/device-mapper.h>
#include <linux/list.h>
#include <linux/llist.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "metadata.h"

#define DM_MSG_PREFIX "peersnap"

enum ps_feature {
	PS_FEAT_FAIL_IF_NO_AGENT,
	PS_FEAT_AGENT_TIMEOUT,
	PS_FEAT_NO_DISCARD_PASSDOWN,
	PS_NR_FEATURES,
};

/* One bucket of the in-flight chunk hash: dm-clone's bucket-lock scheme. */
struct ps_bucket {
	spinlock_t lock; /* head, and the bios of its descriptors */
	struct hlist_head head;
};

struct ps_dev {
	struct dm_target *ti;
	struct dm_dev *metadata_dev;
	struct dm_dev *cache_dev;
	struct ps_metadata md;
	u32 id; /* never reused while loaded */
	u8 snapshot_id[PEERSNAP_SNAPSHOT_ID_LEN];
	u32 chunk_sectors;
	unsigned int chunk_shift;
	u64 nr_chunks;

	/* Feature args, kept in the order given so the table round-trips. */
	enum ps_feature features[PS_NR_FEATURES];
	unsigned int nr_features;
	bool read_only; /* a table without write access */
	bool fail_if_no_agent;
	bool discard_passdown;
	unsigned int agent_timeout; /* seconds, 0 = wait for ever */

	struct ps_bucket *buckets;
	unsigned int bucket_mask;

	atomic_t held_bios; /* demand bios waiting on fetches */
	atomic_t inflight; /* fetch descriptors alive */
	atomic64_t fetched; /* chunks made present by the agent */
	atomic64_t failed; /* fetches answered with an error */
	atomic64_t rejected; /* replies refused for this device */

	/* Background hydration / prefetch of [bg_next, bg_end). */
	spinlock_t bg_lock;
	u64 bg_next;
	u64 bg_end;
	bool bg_active;
	atomic_t bg_inflight;
	struct work_struct bg_work;

	/* Whole-chunk writes that made their chunk present (fetch.c). */
	struct llist_head local_done;
	struct work_struct local_work;

	/* Flush / FUA bios wait here for a metadata commit. */
	spinlock_t deferred_lock;
	struct bio_list deferred;
	struct work_struct commit_work;
	struct delayed_work periodic_commit;

	bool suspending; /* between presuspend and resume */
	bool noflush; /* that suspend is a noflush one */

	struct list_head node; /* ps_devices, under ps_devices_lock */
	atomic_t users;
	wait_queue_head_t users_wq;
};

extern struct workqueue_struct *ps_wq;

static inline u64 ps_chunk_of(struct ps_dev *dev, sector_t sector)
{
	return sector >> dev->chunk_shift;
}

static inline void ps_dev_get(struct ps_dev *dev)
{
	atomic_inc(&dev->users);
}

static inline void ps_dev_put(struct ps_dev *dev)
{
	if (atomic_dec_and_test(&dev->users))
		wake_up(&dev->users_wq);
}

const char *ps_dev_name(struct ps_dev *dev);
void ps_remap_and_submit(struct ps_dev *dev, struct bio *bio);
void ps_defer(struct ps_dev *dev, struct bio *bio);
void ps_bg_kick(struct ps_dev *dev);

int ps_target_init(void);
void ps_target_exit(void);

#endif /* PEERSNAP_H */
