// SPDX-License-Identifier: GPL-2.0
/*
 * The metadata device of a peersnap target.
 *
 * Layout, in 4 KiB blocks (docs/metadata-format.md):
 *   block 0                      superblock
 *   blocks 1 .. B                present bitmap (B = bitmap_blocks)
 *   blocks B + 1 .. 2B           dirty bitmap
 * Bit i of a bitmap (little-endian bit order) is chunk i.
 *
 * Commit protocol: copy every changed bitmap block into a staging page
 * under the lock, flush the cache device, then write the staged blocks
 * and flush the metadata device. Bits only move 0 -> 1 between commits,
 * and each one is set only after its data was written, so whichever mix
 * of old and new sectors a power cut leaves on the metadata device, no
 * chunk is recorded present or dirty before its data is durable.
 */
#include <linux/bitops.h>
#include <linux/crc32c.h>
#include <linux/device-mapper.h>
#include <linux/vmalloc.h>

#include "metadata.h"

#define DM_MSG_PREFIX "peersnap"

#define PS_MD_MAGIC 0x31444d50414e5350ULL /* "PSNAPMD1" */
#define PS_MD_VERSION 1
#define PS_MD_CSUM_SEED 0x9e3779b9

struct ps_disk_sb {
	__le32 csum; /* crc32c of the rest of the block */
	__le32 flags; /* must be 0 in version 1 */
	__le64 magic;
	__le32 version;
	__le32 chunk_sectors;
	__le64 nr_chunks;
	__le64 target_sectors;
	__le64 bitmap_blocks;
	__le64 present_start;
	__le64 dirty_start;
	u8 snapshot_id[PEERSNAP_SNAPSHOT_ID_LEN];
} __packed;

static int ps_md_io(struct block_device *bdev, blk_opf_t opf, u64 block,
		    void *page_buf)
{
	struct bio *bio;
	int r;

	bio = bio_alloc(bdev, 1, opf, GFP_NOIO);
	bio->bi_iter.bi_sector = block * PS_MD_BLOCK_SECTORS;
	__bio_add_page(bio, virt_to_page(page_buf), PS_MD_BLOCK_SIZE, 0);
	r = submit_bio_wait(bio);
	bio_put(bio);
	return r;
}

static u32 ps_sb_csum(const void *block)
{
	return crc32c(PS_MD_CSUM_SEED, block + sizeof(__le32),
		      PS_MD_BLOCK_SIZE - sizeof(__le32));
}

static u64 ps_md_bitmap_blocks(u64 nr_chunks)
{
	return DIV_ROUND_UP_ULL(nr_chunks, PS_MD_BITS_PER_BLOCK);
}

u64 ps_md_blocks_total(struct ps_metadata *md)
{
	return bdev_nr_sectors(md->md_bdev) / PS_MD_BLOCK_SECTORS;
}

u64 ps_md_blocks_used(struct ps_metadata *md)
{
	return 1 + 2 * md->bitmap_blocks;
}

static void ps_sb_fill(struct ps_metadata *md, struct ps_disk_sb *sb)
{
	memset(sb, 0, PS_MD_BLOCK_SIZE);
	sb->magic = cpu_to_le64(PS_MD_MAGIC);
	sb->version = cpu_to_le32(PS_MD_VERSION);
	sb->chunk_sectors = cpu_to_le32(md->geo.chunk_sectors);
	sb->nr_chunks = cpu_to_le64(md->geo.nr_chunks);
	sb->target_sectors = cpu_to_le64(md->geo.target_sectors);
	sb->bitmap_blocks = cpu_to_le64(md->bitmap_blocks);
	sb->present_start = cpu_to_le64(1);
	sb->dirty_start = cpu_to_le64(1 + md->bitmap_blocks);
	memcpy(sb->snapshot_id, md->geo.snapshot_id, PEERSNAP_SNAPSHOT_ID_LEN);
	sb->csum = cpu_to_le32(ps_sb_csum(sb));
}

/* Zeroes both bitmaps on disk, then writes the superblock last (FUA). */
static int ps_md_format(struct ps_metadata *md, char **error)
{
	u64 b;
	int r;

	memset(md->bounce, 0, PS_MD_BLOCK_SIZE);
	for (b = 1; b < ps_md_blocks_used(md); b++) {
		r = ps_md_io(md->md_bdev, REQ_OP_WRITE, b, md->bounce);
		if (r)
			goto write_failed;
	}
	ps_sb_fill(md, md->bounce);
	r = ps_md_io(md->md_bdev, REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA, 0,
		     md->bounce);
	if (!r)
		return 0;
write_failed:
	*error = "Error formatting metadata device";
	return r;
}

static bool ps_block_is_zero(const void *block)
{
	return !memchr_inv(block, 0, PS_MD_BLOCK_SIZE);
}

/* Each mismatch has its own reason: they are what a user reads first. */
static int ps_sb_check(struct ps_metadata *md, const struct ps_disk_sb *sb,
		       char **error)
{
	if (le64_to_cpu(sb->magic) != PS_MD_MAGIC) {
		*error =
			"Metadata device holds something else (bad magic); zero it to format";
		return -EINVAL;
	}
	if (le32_to_cpu(sb->csum) != ps_sb_csum(sb)) {
		*error = "Metadata superblock checksum mismatch";
		return -EILSEQ;
	}
	if (le32_to_cpu(sb->version) != PS_MD_VERSION) {
		*error = "Unsupported metadata version";
		return -EINVAL;
	}
	if (sb->flags) {
		*error = "Unsupported metadata feature flags";
		return -EINVAL;
	}
	if (memcmp(sb->snapshot_id, md->geo.snapshot_id,
		   PEERSNAP_SNAPSHOT_ID_LEN)) {
		*error = "Metadata belongs to another snapshot";
		return -EINVAL;
	}
	if (le32_to_cpu(sb->chunk_sectors) != md->geo.chunk_sectors) {
		*error = "Metadata chunk size differs from the table's";
		return -EINVAL;
	}
	if (le64_to_cpu(sb->target_sectors) != md->geo.target_sectors ||
	    le64_to_cpu(sb->nr_chunks) != md->geo.nr_chunks) {
		*error = "Metadata device length differs from the table's";
		return -EINVAL;
	}
	if (le64_to_cpu(sb->bitmap_blocks) != md->bitmap_blocks ||
	    le64_to_cpu(sb->present_start) != 1 ||
	    le64_to_cpu(sb->dirty_start) != 1 + md->bitmap_blocks) {
		*error = "Metadata superblock layout is inconsistent";
		return -EINVAL;
	}
	return 0;
}

static int ps_md_read_bitmap(struct ps_metadata *md, u64 start,
			     unsigned long *bits, u64 *count)
{
	u64 b;
	int r;

	for (b = 0; b < md->bitmap_blocks; b++) {
		r = ps_md_io(md->md_bdev, REQ_OP_READ, start + b, md->bounce);
		if (r)
			return r;
		memcpy((u8 *)bits + b * PS_MD_BLOCK_SIZE, md->bounce,
		       PS_MD_BLOCK_SIZE);
	}
	/* Bits past the last chunk mean nothing: never let them count. */
	for (b = md->geo.nr_chunks;
	     b < md->bitmap_blocks * PS_MD_BITS_PER_BLOCK; b++)
		__clear_bit_le(b, bits);
	*count = 0;
	for (b = 0; b < md->geo.nr_chunks; b++)
		*count += test_bit_le(b, bits);
	return 0;
}

/*
 * Constructor side: format an all-zero device, or check the superblock.
 * The bitmaps are read later, by ps_md_load_bitmaps() at first resume:
 * until then an older table on the same metadata may still commit.
 */
static int ps_md_check_or_format(struct ps_metadata *md, char **error)
{
	int r;

	r = ps_md_io(md->md_bdev, REQ_OP_READ, 0, md->bounce);
	if (r) {
		*error = "Error reading metadata superblock";
		return r;
	}
	if (ps_block_is_zero(md->bounce)) {
		r = ps_md_format(md, error);
		md->loaded = !r;
		return r;
	}
	return ps_sb_check(md, md->bounce, error);
}

/* Reads both bitmaps, once: this instance then owns the metadata. */
int ps_md_load_bitmaps(struct ps_metadata *md)
{
	int r;

	if (md->loaded)
		return 0;
	r = ps_md_read_bitmap(md, 1, md->present, &md->nr_present);
	if (!r)
		r = ps_md_read_bitmap(md, 1 + md->bitmap_blocks, md->dirty,
				      &md->nr_dirty);
	if (r) {
		DMERR("cannot read the metadata bitmaps (%d)", r);
		WRITE_ONCE(md->mode, PS_MD_FAIL);
		return r;
	}
	/* A resume retried once the device reads again leaves fail mode. */
	WRITE_ONCE(md->mode, PS_MD_WRITE);
	md->loaded = true;
	return 0;
}

static int ps_md_alloc(struct ps_metadata *md, char **error)
{
	size_t bytes = md->bitmap_blocks * PS_MD_BLOCK_SIZE;
	size_t changed = BITS_TO_LONGS(md->bitmap_blocks) * sizeof(long);

	md->present = vzalloc(bytes);
	md->dirty = vzalloc(bytes);
	md->present_changed = kvzalloc(changed, GFP_KERNEL);
	md->dirty_changed = kvzalloc(changed, GFP_KERNEL);
	md->bounce = (void *)__get_free_page(GFP_KERNEL | __GFP_ZERO);
	if (md->present && md->dirty && md->present_changed &&
	    md->dirty_changed && md->bounce)
		return 0;
	*error = "Cannot allocate metadata bitmaps";
	return -ENOMEM;
}

void ps_md_close(struct ps_metadata *md)
{
	vfree(md->present);
	vfree(md->dirty);
	kvfree(md->present_changed);
	kvfree(md->dirty_changed);
	free_page((unsigned long)md->bounce);
	memset(md, 0, sizeof(*md));
}

int ps_md_open(struct ps_metadata *md, struct block_device *md_bdev,
	       struct block_device *cache_bdev,
	       const struct ps_md_geometry *geo, char **error)
{
	int r;

	memset(md, 0, sizeof(*md));
	spin_lock_init(&md->lock);
	mutex_init(&md->commit_lock);
	md->md_bdev = md_bdev;
	md->cache_bdev = cache_bdev;
	md->geo = *geo;
	md->bitmap_blocks = ps_md_bitmap_blocks(geo->nr_chunks);
	md->mode = PS_MD_WRITE;

	if (ps_md_blocks_total(md) < ps_md_blocks_used(md)) {
		*error = "Metadata device too small for this many chunks";
		return -ENOSPC;
	}
	r = ps_md_alloc(md, error);
	if (!r)
		r = ps_md_check_or_format(md, error);
	if (r)
		ps_md_close(md);
	return r;
}

bool ps_md_is_present(struct ps_metadata *md, u64 chunk)
{
	return test_bit_le(chunk, md->present);
}

static u64 ps_md_mark(struct ps_metadata *md, unsigned long *bits,
		      unsigned long *changed, u64 chunk, u32 count)
{
	u64 newly = 0;
	u64 c;

	lockdep_assert_held(&md->lock);
	for (c = chunk; c < chunk + count; c++) {
		if (__test_and_set_bit_le(c, bits))
			continue;
		__set_bit(c / PS_MD_BITS_PER_BLOCK, changed);
		newly++;
	}
	return newly;
}

void ps_md_set_present(struct ps_metadata *md, u64 chunk, u32 count)
{
	unsigned long flags;

	spin_lock_irqsave(&md->lock, flags);
	md->nr_present +=
		ps_md_mark(md, md->present, md->present_changed, chunk, count);
	spin_unlock_irqrestore(&md->lock, flags);
}

void ps_md_set_dirty(struct ps_metadata *md, u64 chunk)
{
	unsigned long flags;

	/*
	 * Bits are only ever set, each under the lock together with its
	 * block's changed mark: one seen set needs nothing more. This keeps
	 * the lock off the path of every write to an already dirty chunk.
	 */
	if (test_bit_le(chunk, md->dirty))
		return;
	spin_lock_irqsave(&md->lock, flags);
	md->nr_dirty += ps_md_mark(md, md->dirty, md->dirty_changed, chunk, 1);
	spin_unlock_irqrestore(&md->lock, flags);
}

u64 ps_md_next_absent(struct ps_metadata *md, u64 from, u64 end)
{
	unsigned long flags;
	u64 next;

	spin_lock_irqsave(&md->lock, flags);
	next = find_next_zero_bit_le(md->present, end, from);
	spin_unlock_irqrestore(&md->lock, flags);
	return next;
}

void ps_md_counts(struct ps_metadata *md, u64 *present, u64 *dirty)
{
	unsigned long flags;

	spin_lock_irqsave(&md->lock, flags);
	*present = md->nr_present;
	*dirty = md->nr_dirty;
	spin_unlock_irqrestore(&md->lock, flags);
}

enum ps_md_mode ps_md_mode(struct ps_metadata *md)
{
	return READ_ONCE(md->mode);
}

/* Copies bits [first, first + nbits) (first a multiple of 8) into @buf. */
void ps_md_copy_bits(struct ps_metadata *md, enum peersnap_bitmap_kind kind,
		     u64 first, u32 nbits, u8 *buf)
{
	unsigned long *bits = kind == PEERSNAP_BITMAP_DIRTY ? md->dirty :
							      md->present;
	unsigned long flags;

	if (WARN_ON_ONCE(first % 8 || first + nbits > md->geo.nr_chunks))
		return;
	spin_lock_irqsave(&md->lock, flags);
	memcpy(buf, (u8 *)bits + first / 8, DIV_ROUND_UP(nbits, 8));
	spin_unlock_irqrestore(&md->lock, flags);
}

static bool ps_md_changed(struct ps_metadata *md)
{
	lockdep_assert_held(&md->lock);
	return !bitmap_empty(md->present_changed, md->bitmap_blocks) ||
	       !bitmap_empty(md->dirty_changed, md->bitmap_blocks);
}

bool ps_md_needs_commit(struct ps_metadata *md)
{
	unsigned long flags;
	bool changed;

	spin_lock_irqsave(&md->lock, flags);
	changed = ps_md_changed(md);
	spin_unlock_irqrestore(&md->lock, flags);
	return changed;
}

/*
 * True if every bit set so far is on disk: writable, nothing changed since
 * the last commit and no commit half done. A flush then needs only the
 * cache device's own.
 */
bool ps_md_is_durable(struct ps_metadata *md)
{
	unsigned long flags;
	bool durable;

	spin_lock_irqsave(&md->lock, flags);
	durable = md->loaded && md->mode == PS_MD_WRITE && !md->writing &&
		  !ps_md_changed(md);
	spin_unlock_irqrestore(&md->lock, flags);
	return durable;
}

/* A bitmap block copied under the lock, to be written after the flush. */
struct ps_md_staged {
	unsigned long *changed; /* where to re-mark it if the write fails */
	u64 index; /* block within its bitmap */
	u64 disk_block;
	void *page;
};

static unsigned int ps_md_count_changed(struct ps_metadata *md)
{
	unsigned long flags;
	unsigned int n;

	spin_lock_irqsave(&md->lock, flags);
	n = bitmap_weight(md->present_changed, md->bitmap_blocks) +
	    bitmap_weight(md->dirty_changed, md->bitmap_blocks);
	spin_unlock_irqrestore(&md->lock, flags);
	return n;
}

static unsigned int ps_md_stage_bitmap(struct ps_metadata *md,
				       unsigned long *bits,
				       unsigned long *changed, u64 start,
				       struct ps_md_staged *st,
				       unsigned int room)
{
	unsigned int n = 0;
	u64 b;

	lockdep_assert_held(&md->lock);
	for_each_set_bit(b, changed, md->bitmap_blocks) {
		if (n == room)
			break;
		__clear_bit(b, changed);
		memcpy(st[n].page, (u8 *)bits + b * PS_MD_BLOCK_SIZE,
		       PS_MD_BLOCK_SIZE);
		st[n].changed = changed;
		st[n].index = b;
		st[n].disk_block = start + b;
		n++;
	}
	return n;
}

/* Copies up to @room changed blocks, all under one hold of the lock. */
static unsigned int ps_md_stage(struct ps_metadata *md, struct ps_md_staged *st,
				unsigned int room)
{
	unsigned long flags;
	unsigned int n;

	spin_lock_irqsave(&md->lock, flags);
	md->writing = true;
	n = ps_md_stage_bitmap(md, md->present, md->present_changed, 1, st,
			       room);
	n += ps_md_stage_bitmap(md, md->dirty, md->dirty_changed,
				1 + md->bitmap_blocks, st + n, room - n);
	spin_unlock_irqrestore(&md->lock, flags);
	return n;
}

static void ps_md_unstage(struct ps_metadata *md, struct ps_md_staged *st,
			  unsigned int staged, unsigned int allocated,
			  bool failed)
{
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&md->lock, flags);
	for (i = 0; i < staged && failed; i++)
		__set_bit(st[i].index, st[i].changed);
	md->writing = false;
	spin_unlock_irqrestore(&md->lock, flags);
	for (i = 0; i < allocated; i++)
		free_page((unsigned long)st[i].page);
	kvfree(st);
}

static struct ps_md_staged *ps_md_alloc_staged(unsigned int n)
{
	struct ps_md_staged *st;
	unsigned int i;

	st = kvcalloc(n, sizeof(*st), GFP_NOIO);
	if (!st)
		return NULL;
	for (i = 0; i < n; i++) {
		st[i].page = (void *)__get_free_page(GFP_NOIO);
		if (!st[i].page)
			goto free_pages;
	}
	return st;
free_pages:
	while (i--)
		free_page((unsigned long)st[i].page);
	kvfree(st);
	return NULL;
}

/*
 * Snapshot, flush, write: the blocks are copied before the cache device
 * is flushed, so every bit they hold belongs to data the flush covers.
 * Bits set after the copy stay marked for the next commit.
 */
static int ps_md_write_changed(struct ps_metadata *md)
{
	unsigned int room = ps_md_count_changed(md);
	struct ps_md_staged *st;
	unsigned int n, i;
	int r;

	if (!room)
		return 0;
	st = ps_md_alloc_staged(room);
	if (!st)
		return -ENOMEM;
	n = ps_md_stage(md, st, room);
	r = blkdev_issue_flush(md->cache_bdev);
	for (i = 0; i < n && !r; i++)
		r = ps_md_io(md->md_bdev, REQ_OP_WRITE, st[i].disk_block,
			     st[i].page);
	if (!r)
		r = blkdev_issue_flush(md->md_bdev);
	ps_md_unstage(md, st, n, room, r != 0);
	return r;
}

/*
 * After the last commit of a suspend: no more metadata writes until
 * resume. A reload's new table loads the bitmaps once this instance is
 * frozen, and this instance must never write a stale block after that.
 */
void ps_md_freeze(struct ps_metadata *md)
{
	mutex_lock(&md->commit_lock);
	md->frozen = true;
	mutex_unlock(&md->commit_lock);
}

void ps_md_thaw(struct ps_metadata *md)
{
	mutex_lock(&md->commit_lock);
	md->frozen = false;
	mutex_unlock(&md->commit_lock);
}

static void ps_md_degrade(struct ps_metadata *md, int r)
{
	DMERR("metadata commit failed (%d): metadata is now read-only", r);
	WRITE_ONCE(md->mode, PS_MD_READ_ONLY);
}

/*
 * Makes every bit set before this call durable, flushing the cache device
 * first. -ENOMEM leaves the state as it was; an I/O error degrades the
 * metadata to read-only, as dm-clone does.
 */
int ps_md_commit(struct ps_metadata *md)
{
	int r;

	mutex_lock(&md->commit_lock);
	if (md->frozen || !md->loaded) {
		r = 0;
	} else if (ps_md_mode(md) != PS_MD_WRITE) {
		r = -EROFS;
	} else {
		r = ps_md_write_changed(md);
		if (r && r != -ENOMEM)
			ps_md_degrade(md, r);
	}
	mutex_unlock(&md->commit_lock);
	return r;
}
