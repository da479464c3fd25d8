/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Persistent state of a peersnap device: a superblock and two bitmaps
 * (present, dirty) on the metadata device. The on-disk format is described
 * in docs/metadata-format.md.
 *
 * Bits are set in core under a spinlock and written out by
 * ps_md_commit(), which flushes the cache device before it writes any
 * bitmap block, so a chunk is never recorded present before its data is
 * on stable storage.
 */
#ifndef PEERSNAP_METADATA_H
#define PEERSNAP_METADATA_H

#include <linux/blkdev.h>
#include <linux/types.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/peersnap.h>

#define PS_MD_BLOCK_SIZE 4096
#define PS_MD_BLOCK_SECTORS (PS_MD_BLOCK_SIZE >> SECTOR_SHIFT)
#define PS_MD_BITS_PER_BLOCK (PS_MD_BLOCK_SIZE * 8)

enum ps_md_mode {
	PS_MD_WRITE, /* normal operation */
	PS_MD_READ_ONLY, /* a metadata write failed: no new state */
	PS_MD_FAIL, /* metadata unreadable: fail all I/O */
};

struct ps_md_geometry {
	u8 snapshot_id[PEERSNAP_SNAPSHOT_ID_LEN];
	u32 chunk_sectors;
	u64 nr_chunks;
	u64 target_sectors;
};

struct ps_metadata {
	struct block_device *md_bdev;
	struct block_device *cache_bdev;
	struct ps_md_geometry geo;
	u64 bitmap_blocks; /* blocks per bitmap */

	spinlock_t lock; /* bits, counters, changed-block maps */
	unsigned long *present;
	unsigned long *dirty;
	unsigned long *present_changed; /* bitmap blocks to write */
	unsigned long *dirty_changed;
	u64 nr_present;
	u64 nr_dirty;
	enum ps_md_mode mode;
	bool writing; /* a commit's staged blocks are not yet on disk */

	struct mutex commit_lock; /* one commit at a time; frozen */
	bool frozen; /* suspended: commits are no-ops */
	bool loaded; /* bitmaps read (or freshly formatted) */
	void *bounce; /* one block, for open and format */
};

int ps_md_open(struct ps_metadata *md, struct block_device *md_bdev,
	       struct block_device *cache_bdev,
	       const struct ps_md_geometry *geo, char **error);
void ps_md_close(struct ps_metadata *md);

int ps_md_load_bitmaps(struct ps_metadata *md);
int ps_md_commit(struct ps_metadata *md);
void ps_md_freeze(struct ps_metadata *md);
void ps_md_thaw(struct ps_metadata *md);
bool ps_md_needs_commit(struct ps_metadata *md);
bool ps_md_is_durable(struct ps_metadata *md);

bool ps_md_is_present(struct ps_metadata *md, u64 chunk);
void ps_md_set_present(struct ps_metadata *md, u64 chunk, u32 count);
void ps_md_set_dirty(struct ps_metadata *md, u64 chunk);
u64 ps_md_next_absent(struct ps_metadata *md, u64 from, u64 end);
void ps_md_counts(struct ps_metadata *md, u64 *present, u64 *dirty);
u64 ps_md_blocks_used(struct ps_metadata *md);
u64 ps_md_blocks_total(struct ps_metadata *md);
enum ps_md_mode ps_md_mode(struct ps_metadata *md);

/* Copies @nbits bits of @kind from chunk @first (a multiple of 8), LE. */
void ps_md_copy_bits(struct ps_metadata *md, enum peersnap_bitmap_kind kind,
		     u64 first, u32 nbits, u8 *buf);

#endif /* PEERSNAP_METADATA_H */
