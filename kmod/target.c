// SPDX-License-Identifier: GPL-2.0
/*
 * The device-mapper target "peersnap": a snapshot that is readable at once.
 * Present chunks are remapped to the cache device; absent ones are held
 * while the agent fetches them (fetch.c).
 */
#include <linux/ctype.h>
#include <linux/module.h>

#include "fetch.h"
#include "genl.h"
#include "peersnap.h"

#define PS_MIN_CHUNK_SECTORS 8
#define PS_MAX_CHUNK_SECTORS 8192
#define PS_MAX_AGENT_TIMEOUT 86400
#define PS_BG_WINDOW 32

static atomic_t ps_next_dev_id = ATOMIC_INIT(0);

static unsigned int commit_period = 1;
module_param(commit_period, uint, 0644);
MODULE_PARM_DESC(commit_period, "Seconds between metadata commits (1-3600)");

static unsigned long ps_commit_delay(void)
{
	return clamp(READ_ONCE(commit_period), 1U, 3600U) * HZ;
}

static const char *const ps_feature_names[PS_NR_FEATURES] = {
	[PS_FEAT_FAIL_IF_NO_AGENT] = "fail_if_no_agent",
	[PS_FEAT_AGENT_TIMEOUT] = "agent_timeout",
	[PS_FEAT_NO_DISCARD_PASSDOWN] = "no_discard_passdown",
};

const char *ps_dev_name(struct ps_dev *dev)
{
	return dm_device_name(dm_table_get_md(dev->ti->table));
}

static void ps_mark_dirty_if_present(struct ps_dev *dev, struct bio *bio)
{
	u64 chunk = ps_chunk_of(dev, dm_target_offset(dev->ti,
						      bio->bi_iter.bi_sector));

	if (op_is_write(bio_op(bio)) && bio_sectors(bio) &&
	    ps_md_is_present(&dev->md, chunk))
		ps_md_set_dirty(&dev->md, chunk);
}

static void ps_remap(struct ps_dev *dev, struct bio *bio)
{
	sector_t offset = dm_target_offset(dev->ti, bio->bi_iter.bi_sector);

	if (op_is_write(bio_op(bio)) && bio_sectors(bio))
		ps_md_set_dirty(&dev->md, ps_chunk_of(dev, offset));
	bio_set_dev(bio, dev->cache_dev->bdev);
	bio->bi_iter.bi_sector = offset;
}

void ps_remap_and_submit(struct ps_dev *dev, struct bio *bio)
{
	ps_remap(dev, bio);
	submit_bio_noacct(bio);
}

static enum peersnap_priority ps_prio_of(struct bio *bio)
{
	return op_is_write(bio_op(bio)) ? PEERSNAP_PRIO_WRITE_HYDRATE :
					  PEERSNAP_PRIO_DEMAND;
}

/* Per-bio data: the descriptor of a whole-chunk write, for end_io. */
struct ps_bio_ctx {
	struct ps_fetch *local;
};

static struct ps_bio_ctx *ps_ctx(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct ps_bio_ctx));
}

static bool ps_is_whole_chunk(struct ps_dev *dev, struct bio *bio)
{
	sector_t offset = dm_target_offset(dev->ti, bio->bi_iter.bi_sector);

	return bio_sectors(bio) == dev->chunk_sectors &&
	       !(offset & (dev->chunk_sectors - 1));
}

/*
 * An absent chunk that a plain write covers whole is not fetched. A flush
 * or FUA write takes the fetch path instead: its completion must wait for
 * a commit that records the chunk present.
 */
static bool ps_write_whole_absent(struct ps_dev *dev, struct bio *bio,
				  u64 chunk)
{
	if (bio_data_dir(bio) != WRITE || !ps_is_whole_chunk(dev, bio) ||
	    (bio->bi_opf & (REQ_PREFLUSH | REQ_FUA)))
		return false;
	ps_ctx(bio)->local = ps_fetch_begin_local(dev, chunk);
	return ps_ctx(bio)->local;
}

/* The data path proper: returns a DM_MAPIO_* verdict for @bio. */
static int ps_map_data(struct ps_dev *dev, struct bio *bio)
{
	u64 chunk = ps_chunk_of(dev, dm_target_offset(dev->ti,
						      bio->bi_iter.bi_sector));

	if (ps_md_mode(&dev->md) == PS_MD_FAIL)
		return DM_MAPIO_KILL;
	if (dev->read_only && op_is_write(bio_op(bio)) && bio_sectors(bio))
		return DM_MAPIO_KILL;
	if (!bio_sectors(bio) || ps_md_is_present(&dev->md, chunk))
		return DM_MAPIO_REMAPPED;
	if (READ_ONCE(dev->suspending) && READ_ONCE(dev->noflush))
		return DM_MAPIO_REQUEUE;
	if (ps_write_whole_absent(dev, bio, chunk))
		return DM_MAPIO_REMAPPED;
	return ps_fetch_hold(dev, chunk, bio, ps_prio_of(bio));
}

static void ps_dispatch(struct ps_dev *dev, struct bio *bio, int verdict)
{
	switch (verdict) {
	case DM_MAPIO_REMAPPED:
		ps_remap_and_submit(dev, bio);
		break;
	case DM_MAPIO_KILL:
		bio_io_error(bio);
		break;
	case DM_MAPIO_REQUEUE:
		bio->bi_status = BLK_STS_DM_REQUEUE;
		bio_endio(bio);
		break;
	}
}

/* A commit that changes the metadata mode (rw -> ro) raises a dm event. */
static int ps_commit(struct ps_dev *dev)
{
	enum ps_md_mode before = ps_md_mode(&dev->md);
	int r = ps_md_commit(&dev->md);

	if (ps_md_mode(&dev->md) != before)
		dm_table_event(dev->ti->table);
	return r;
}

/*
 * Flushes and FUA writes wait for a metadata commit: the device acts like
 * a disk with a volatile write cache, and its cache includes our bitmaps.
 */
static void ps_commit_worker(struct work_struct *work)
{
	struct ps_dev *dev = container_of(work, struct ps_dev, commit_work);
	struct bio_list bios;
	struct bio *bio;
	int r;

	spin_lock_irq(&dev->deferred_lock);
	bios = dev->deferred;
	bio_list_init(&dev->deferred);
	spin_unlock_irq(&dev->deferred_lock);

	/* A FUA write's dirty bit is part of what it makes durable. */
	bio_list_for_each(bio, &bios)
		ps_mark_dirty_if_present(dev, bio);
	r = ps_commit(dev);
	if (r == -EROFS && bio_list_empty(&bios))
		r = 0;
	while ((bio = bio_list_pop(&bios))) {
		if (r)
			bio_io_error(bio);
		else
			ps_dispatch(dev, bio, ps_map_data(dev, bio));
	}
}

static void ps_periodic_commit(struct work_struct *work)
{
	struct ps_dev *dev = container_of(to_delayed_work(work), struct ps_dev,
					  periodic_commit);

	if (ps_md_needs_commit(&dev->md))
		queue_work(ps_wq, &dev->commit_work);
	queue_delayed_work(ps_wq, &dev->periodic_commit, ps_commit_delay());
}

void ps_defer(struct ps_dev *dev, struct bio *bio)
{
	spin_lock_irq(&dev->deferred_lock);
	bio_list_add(&dev->deferred, bio);
	spin_unlock_irq(&dev->deferred_lock);
	queue_work(ps_wq, &dev->commit_work);
}

/*
 * Discards: the block layer splits them at chunk boundaries (io_hints);
 * only whole chunks count. A whole present chunk is marked dirty and the
 * discard passed down (unless no_discard_passdown); an absent one needs no
 * fetch and keeps reading as the snapshot; a partial chunk is left alone.
 */
static int ps_map_discard(struct ps_dev *dev, struct bio *bio)
{
	sector_t offset = dm_target_offset(dev->ti, bio->bi_iter.bi_sector);
	sector_t to_end =
		dev->chunk_sectors - (offset & (dev->chunk_sectors - 1));
	u64 chunk = ps_chunk_of(dev, offset);

	if (dev->read_only)
		return DM_MAPIO_KILL;
	if (bio_sectors(bio) > to_end)
		dm_accept_partial_bio(bio, to_end);
	if (!ps_is_whole_chunk(dev, bio) ||
	    !ps_md_is_present(&dev->md, chunk)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	ps_md_set_dirty(&dev->md, chunk);
	if (!dev->discard_passdown ||
	    !bdev_max_discard_sectors(dev->cache_dev->bdev)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	bio_set_dev(bio, dev->cache_dev->bdev);
	bio->bi_iter.bi_sector = offset;
	return DM_MAPIO_REMAPPED;
}

/*
 * An empty flush when every metadata bit is already on disk (an fsync
 * after writes to chunks that were dirty already) needs no commit: the
 * cache device's flush covers the data, so it goes straight there.
 */
static bool ps_flush_passes_down(struct ps_dev *dev, struct bio *bio)
{
	return (bio->bi_opf & REQ_PREFLUSH) && !bio_sectors(bio) &&
	       ps_md_is_durable(&dev->md);
}

static int ps_map(struct dm_target *ti, struct bio *bio)
{
	struct ps_dev *dev = ti->private;
	int verdict;

	ps_ctx(bio)->local = NULL;
	if (bio_op(bio) == REQ_OP_DISCARD)
		return ps_map_discard(dev, bio);
	if (ps_flush_passes_down(dev, bio)) {
		ps_remap(dev, bio);
		return DM_MAPIO_REMAPPED;
	}
	if (bio->bi_opf & (REQ_PREFLUSH | REQ_FUA)) {
		ps_defer(dev, bio);
		return DM_MAPIO_SUBMITTED;
	}
	verdict = ps_map_data(dev, bio);
	if (verdict == DM_MAPIO_REMAPPED)
		ps_remap(dev, bio);
	return verdict;
}

/* A whole-chunk write ended: the chunk is present if it succeeded. */
static int ps_end_io(struct dm_target *ti, struct bio *bio, blk_status_t *error)
{
	struct ps_bio_ctx *ctx = ps_ctx(bio);

	if (ctx->local) {
		ps_fetch_end_local(ctx->local, *error ? -EIO : 0);
		ctx->local = NULL;
	}
	return DM_ENDIO_DONE;
}

/* Background hydration: a window of fetches, paused while reads wait. */
static void ps_bg_worker(struct work_struct *work)
{
	struct ps_dev *dev = container_of(work, struct ps_dev, bg_work);
	u64 next;

	while (!READ_ONCE(dev->suspending) && !atomic_read(&dev->held_bios) &&
	       atomic_read(&dev->bg_inflight) < PS_BG_WINDOW) {
		spin_lock_irq(&dev->bg_lock);
		if (!dev->bg_active) {
			spin_unlock_irq(&dev->bg_lock);
			return;
		}
		next = ps_md_next_absent(&dev->md, dev->bg_next, dev->bg_end);
		if (next >= dev->bg_end) {
			if (!atomic_read(&dev->bg_inflight))
				dev->bg_active = false;
			spin_unlock_irq(&dev->bg_lock);
			return;
		}
		dev->bg_next = next + 1;
		spin_unlock_irq(&dev->bg_lock);
		ps_fetch_background(dev, next);
	}
}

void ps_bg_kick(struct ps_dev *dev)
{
	if (READ_ONCE(dev->bg_active))
		queue_work(ps_wq, &dev->bg_work);
}

static int ps_bg_start(struct ps_dev *dev, u64 first, u64 count)
{
	spin_lock_irq(&dev->bg_lock);
	if (dev->bg_active) {
		spin_unlock_irq(&dev->bg_lock);
		return -EBUSY;
	}
	dev->bg_next = first;
	dev->bg_end = first + count;
	dev->bg_active = true;
	spin_unlock_irq(&dev->bg_lock);
	ps_bg_kick(dev);
	return 0;
}

static void ps_bg_stop(struct ps_dev *dev)
{
	spin_lock_irq(&dev->bg_lock);
	dev->bg_active = false;
	spin_unlock_irq(&dev->bg_lock);
}

static int ps_parse_u64(const char *arg, u64 *v)
{
	char dummy;

	return sscanf(arg, "%llu%c", v, &dummy) == 1 ? 0 : -EINVAL;
}

static int ps_parse_chunk_size(struct ps_dev *dev, const char *arg,
			       char **error)
{
	u64 v;

	if (ps_parse_u64(arg, &v)) {
		*error = "Invalid chunk size: not a number";
		return -EINVAL;
	}
	if (v < PS_MIN_CHUNK_SECTORS || v > PS_MAX_CHUNK_SECTORS) {
		*error = "Chunk size out of range (8 to 8192 sectors)";
		return -EINVAL;
	}
	if (!is_power_of_2(v)) {
		*error = "Chunk size is not a power of two";
		return -EINVAL;
	}
	dev->chunk_sectors = v;
	dev->chunk_shift = __ffs(v);
	return 0;
}

/* Lowercase only, so that the table line round-trips byte for byte. */
static int ps_parse_snapshot_id(struct ps_dev *dev, const char *arg,
				char **error)
{
	size_t i;

	if (strlen(arg) != 2 * PEERSNAP_SNAPSHOT_ID_LEN) {
		*error = "Snapshot id must be 64 hex characters";
		return -EINVAL;
	}
	for (i = 0; i < 2 * PEERSNAP_SNAPSHOT_ID_LEN; i++) {
		if (!isdigit(arg[i]) && !(arg[i] >= 'a' && arg[i] <= 'f')) {
			*error = "Snapshot id is not lowercase hexadecimal";
			return -EINVAL;
		}
	}
	return hex2bin(dev->snapshot_id, arg, PEERSNAP_SNAPSHOT_ID_LEN);
}

static bool ps_has_feature(struct ps_dev *dev, enum ps_feature f)
{
	unsigned int i;

	for (i = 0; i < dev->nr_features; i++)
		if (dev->features[i] == f)
			return true;
	return false;
}

static int ps_add_feature(struct ps_dev *dev, enum ps_feature f, char **error)
{
	if (ps_has_feature(dev, f)) {
		*error = "Feature argument given twice";
		return -EINVAL;
	}
	dev->features[dev->nr_features++] = f;
	return 0;
}

static int ps_parse_agent_timeout(struct ps_dev *dev, struct dm_arg_set *as,
				  char **error)
{
	u64 v;

	if (!as->argc) {
		*error = "agent_timeout needs a number of seconds";
		return -EINVAL;
	}
	if (ps_parse_u64(dm_shift_arg(as), &v) || v > PS_MAX_AGENT_TIMEOUT) {
		*error = "Invalid agent_timeout (0 to 86400 seconds)";
		return -EINVAL;
	}
	dev->agent_timeout = v;
	return 0;
}

static int ps_parse_feature(struct ps_dev *dev, struct dm_arg_set *as,
			    char **error)
{
	const char *name = dm_shift_arg(as);
	enum ps_feature f;

	for (f = 0; f < PS_NR_FEATURES; f++)
		if (!strcasecmp(name, ps_feature_names[f]))
			break;
	if (f == PS_NR_FEATURES) {
		*error = "Unknown feature argument";
		return -EINVAL;
	}
	if (ps_add_feature(dev, f, error))
		return -EINVAL;
	switch (f) {
	case PS_FEAT_FAIL_IF_NO_AGENT:
		dev->fail_if_no_agent = true;
		return 0;
	case PS_FEAT_NO_DISCARD_PASSDOWN:
		dev->discard_passdown = false;
		return 0;
	default:
		return ps_parse_agent_timeout(dev, as, error);
	}
}

static int ps_parse_features(struct ps_dev *dev, struct dm_arg_set *as,
			     char **error)
{
	static const struct dm_arg count = {
		0, 4, "Invalid number of feature arguments"
	};
	unsigned int argc;
	int r;

	if (!as->argc)
		return 0;
	r = dm_read_arg_group(&count, as, &argc, error);
	if (r)
		return r;
	if (argc < as->argc) {
		*error = "Too many arguments after the feature arguments";
		return -EINVAL;
	}
	while (as->argc) {
		r = ps_parse_feature(dev, as, error);
		if (r)
			return r;
	}
	return 0;
}

static int ps_get_devices(struct dm_target *ti, struct ps_dev *dev,
			  struct dm_arg_set *as)
{
	fmode_t mode = FMODE_READ | FMODE_WRITE;

	if (dm_get_device(ti, dm_shift_arg(as), mode, &dev->metadata_dev)) {
		ti->error = "Error opening metadata device";
		return -EINVAL;
	}
	if (dm_get_device(ti, dm_shift_arg(as), mode, &dev->cache_dev)) {
		ti->error = "Error opening cache device";
		return -EINVAL;
	}
	if (dev->metadata_dev->bdev == dev->cache_dev->bdev) {
		ti->error = "Metadata and cache devices must differ";
		return -EINVAL;
	}
	if (bdev_logical_block_size(dev->metadata_dev->bdev) >
	    PS_MD_BLOCK_SIZE) {
		ti->error = "Metadata device block size above 4 KiB";
		return -EINVAL;
	}
	return 0;
}

static int ps_check_geometry(struct dm_target *ti, struct ps_dev *dev)
{
	if (ti->len & (dev->chunk_sectors - 1)) {
		ti->error = "Target length is not a multiple of the chunk size";
		return -EINVAL;
	}
	if (bdev_nr_sectors(dev->cache_dev->bdev) < ti->len) {
		ti->error = "Cache device is smaller than the target";
		return -EINVAL;
	}
	dev->nr_chunks = ti->len >> dev->chunk_shift;
	return 0;
}

static int ps_open_metadata(struct dm_target *ti, struct ps_dev *dev)
{
	struct ps_md_geometry geo = {
		.chunk_sectors = dev->chunk_sectors,
		.nr_chunks = dev->nr_chunks,
		.target_sectors = ti->len,
	};

	memcpy(geo.snapshot_id, dev->snapshot_id, sizeof(geo.snapshot_id));
	return ps_md_open(&dev->md, dev->metadata_dev->bdev,
			  dev->cache_dev->bdev, &geo, &ti->error);
}

static struct ps_dev *ps_dev_alloc(struct dm_target *ti)
{
	struct ps_dev *dev = kzalloc(sizeof(*dev), GFP_KERNEL);

	if (!dev)
		return NULL;
	dev->ti = ti;
	dev->discard_passdown = true;
	spin_lock_init(&dev->bg_lock);
	spin_lock_init(&dev->deferred_lock);
	bio_list_init(&dev->deferred);
	INIT_WORK(&dev->bg_work, ps_bg_worker);
	INIT_WORK(&dev->commit_work, ps_commit_worker);
	INIT_WORK(&dev->local_work, ps_fetch_local_work);
	init_llist_head(&dev->local_done);
	INIT_DELAYED_WORK(&dev->periodic_commit, ps_periodic_commit);
	INIT_LIST_HEAD(&dev->node);
	init_waitqueue_head(&dev->users_wq);
	return dev;
}

/*
 * Accepts a half-built device, so the constructor's error path is just
 * this function (as in dm-delay). Held I/O was released in presuspend;
 * whatever request is still pending fails here, before anything is freed.
 */
static void ps_dtr(struct dm_target *ti)
{
	struct ps_dev *dev = ti->private;

	if (!list_empty(&dev->node))
		ps_genl_dev_remove(dev);
	ps_bg_stop(dev);
	cancel_work_sync(&dev->bg_work);
	ps_fetch_dev_exit(dev);
	cancel_work_sync(&dev->local_work);
	cancel_delayed_work_sync(&dev->periodic_commit);
	flush_work(&dev->commit_work);
	if (dev->md.present) {
		ps_md_commit(&dev->md);
		ps_md_close(&dev->md);
	}
	if (dev->cache_dev)
		dm_put_device(ti, dev->cache_dev);
	if (dev->metadata_dev)
		dm_put_device(ti, dev->metadata_dev);
	kfree(dev);
}

/*
 * <metadata_dev> <cache_dev> <chunk_sectors> <snapshot_id>
 *	[<#feature_args> [<feature_arg>]*]
 *
 * chunk_sectors: a power of two, 8 to 8192; the target length must be a
 * multiple of it, and the cache device at least as long as the target.
 * snapshot_id: 64 lowercase hex characters.
 * feature args: fail_if_no_agent, agent_timeout <seconds>,
 * no_discard_passdown; each at most once, in any order.
 */
static int ps_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct ps_dev *dev;
	int r;

	if (argc < 4) {
		ti->error = "Not enough arguments (need 4 and feature args)";
		return -EINVAL;
	}
	dev = ps_dev_alloc(ti);
	if (!dev) {
		ti->error = "Cannot allocate peersnap device";
		return -ENOMEM;
	}
	ti->private = dev;
	r = ps_get_devices(ti, dev, &as);
	if (!r)
		r = ps_parse_chunk_size(dev, dm_shift_arg(&as), &ti->error);
	if (!r)
		r = ps_parse_snapshot_id(dev, dm_shift_arg(&as), &ti->error);
	if (!r)
		r = ps_parse_features(dev, &as, &ti->error);
	if (!r)
		r = ps_check_geometry(ti, dev);
	if (!r)
		r = ps_open_metadata(ti, dev);
	if (!r)
		r = ps_fetch_dev_init(dev);
	if (!r)
		r = dm_set_target_max_io_len(ti, dev->chunk_sectors);
	if (r)
		goto bad;

	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	ti->num_discard_bios = 1;
	ti->discards_supported = true;
	ti->per_io_data_size = sizeof(struct ps_bio_ctx);
	dev->read_only = !(dm_table_get_mode(ti->table) & FMODE_WRITE);
	dev->id = atomic_inc_return(&ps_next_dev_id);
	ps_genl_dev_add(dev);
	return 0;
bad:
	ps_dtr(ti);
	return r;
}

static void ps_emit_features(struct ps_dev *dev, char *result,
			     unsigned int maxlen, unsigned int *psz)
{
	unsigned int sz = *psz;
	unsigned int i, n = dev->nr_features;

	for (i = 0; i < dev->nr_features; i++)
		n += dev->features[i] == PS_FEAT_AGENT_TIMEOUT;
	if (!n)
		goto out;
	DMEMIT(" %u", n);
	for (i = 0; i < dev->nr_features; i++) {
		DMEMIT(" %s", ps_feature_names[dev->features[i]]);
		if (dev->features[i] == PS_FEAT_AGENT_TIMEOUT)
			DMEMIT(" %u", READ_ONCE(dev->agent_timeout));
	}
out:
	*psz = sz;
}

static const char *ps_mode_name(struct ps_dev *dev)
{
	switch (ps_md_mode(&dev->md)) {
	case PS_MD_WRITE:
		return "rw";
	case PS_MD_READ_ONLY:
		return "ro";
	default:
		return "fail";
	}
}

/*
 * INFO: <md used>/<md total> (4 KiB blocks) <chunk_sectors>
 *	<present>/<total> <dirty> <inflight> <fetched> <failed> <rejected>
 *	<connected|disconnected> <idle|hydrating> <#features> <features>*
 *	<rw|ro|fail>
 */
static void ps_status(struct dm_target *ti, status_type_t type,
		      unsigned int status_flags, char *result,
		      unsigned int maxlen)
{
	struct ps_dev *dev = ti->private;
	unsigned int sz = 0;
	u64 present, dirty;

	switch (type) {
	case STATUSTYPE_INFO:
		ps_md_counts(&dev->md, &present, &dirty);
		DMEMIT("%llu/%llu %u %llu/%llu %llu %d %lld %lld %lld %s %s",
		       ps_md_blocks_used(&dev->md),
		       ps_md_blocks_total(&dev->md), dev->chunk_sectors,
		       present, dev->nr_chunks, dirty,
		       atomic_read(&dev->inflight),
		       atomic64_read(&dev->fetched),
		       atomic64_read(&dev->failed),
		       atomic64_read(&dev->rejected),
		       ps_agent_connected() ? "connected" : "disconnected",
		       READ_ONCE(dev->bg_active) ? "hydrating" : "idle");
		if (!dev->nr_features)
			DMEMIT(" 0");
		ps_emit_features(dev, result, maxlen, &sz);
		DMEMIT(" %s", ps_mode_name(dev));
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %u %*phN", dev->metadata_dev->name,
		       dev->cache_dev->name, dev->chunk_sectors,
		       PEERSNAP_SNAPSHOT_ID_LEN, dev->snapshot_id);
		ps_emit_features(dev, result, maxlen, &sz);
		break;
	case STATUSTYPE_IMA:
		*result = '\0';
		break;
	}
}

static int ps_msg_prefetch(struct ps_dev *dev, unsigned int argc, char **argv)
{
	u64 first, count;

	if (argc != 3 || ps_parse_u64(argv[1], &first) ||
	    ps_parse_u64(argv[2], &count) || !count) {
		DMERR("%s: usage: prefetch <first_chunk> <count>",
		      ps_dev_name(dev));
		return -EINVAL;
	}
	if (first >= dev->nr_chunks || count > dev->nr_chunks - first) {
		DMERR("%s: prefetch range beyond the last chunk (%llu)",
		      ps_dev_name(dev), dev->nr_chunks - 1);
		return -EINVAL;
	}
	return ps_bg_start(dev, first, count);
}

static int ps_msg_agent_timeout(struct ps_dev *dev, unsigned int argc,
				char **argv)
{
	u64 v;

	if (argc != 2 || ps_parse_u64(argv[1], &v) ||
	    v > PS_MAX_AGENT_TIMEOUT) {
		DMERR("%s: usage: agent_timeout <0..86400 seconds>",
		      ps_dev_name(dev));
		return -EINVAL;
	}
	WRITE_ONCE(dev->agent_timeout, v);
	ps_fetch_kick_timeouts();
	return 0;
}

/*
 * Messages: prefetch <first_chunk> <count> | hydrate | stop_hydration |
 * agent_timeout <seconds>. A new background range is refused with -EBUSY
 * while another one runs.
 */
static int ps_message(struct dm_target *ti, unsigned int argc, char **argv,
		      char *result, unsigned int maxlen)
{
	struct ps_dev *dev = ti->private;

	if (!strcasecmp(argv[0], "prefetch"))
		return ps_msg_prefetch(dev, argc, argv);
	if (!strcasecmp(argv[0], "agent_timeout"))
		return ps_msg_agent_timeout(dev, argc, argv);
	if (argc == 1 && !strcasecmp(argv[0], "hydrate"))
		return ps_bg_start(dev, 0, dev->nr_chunks);
	if (argc == 1 && !strcasecmp(argv[0], "stop_hydration")) {
		ps_bg_stop(dev);
		return 0;
	}
	DMERR("%s: unsupported message \"%s\" with %u argument(s)",
	      ps_dev_name(dev), argv[0], argc - 1);
	return -EINVAL;
}

/*
 * Held bios must not keep a suspend waiting for ever: a noflush suspend
 * hands them back to dm core for requeueing after resume; a flush suspend
 * lets the agent finish them, or fails them if there is no agent.
 */
static void ps_presuspend(struct dm_target *ti)
{
	struct ps_dev *dev = ti->private;
	bool noflush = dm_noflush_suspending(ti);

	WRITE_ONCE(dev->noflush, noflush);
	WRITE_ONCE(dev->suspending, true);
	if (noflush)
		ps_fetch_release_held(dev, BLK_STS_DM_REQUEUE);
	else if (!ps_agent_connected())
		ps_fetch_release_held(dev, BLK_STS_IOERR);
}

/*
 * Order: no more background fetches, no more periodic commits, commit,
 * freeze. Fetches answered while suspended set bits in core that a frozen
 * instance never writes; at worst those chunks are fetched again.
 */
static void ps_postsuspend(struct dm_target *ti)
{
	struct ps_dev *dev = ti->private;

	cancel_work_sync(&dev->bg_work);
	cancel_delayed_work_sync(&dev->periodic_commit);
	flush_work(&dev->commit_work);
	ps_commit(dev);
	ps_md_freeze(&dev->md);
}

/* The first resume reads the bitmaps: the previous table has let go. */
static int ps_preresume(struct dm_target *ti)
{
	struct ps_dev *dev = ti->private;

	return ps_md_load_bitmaps(&dev->md);
}

static void ps_resume(struct dm_target *ti)
{
	struct ps_dev *dev = ti->private;

	WRITE_ONCE(dev->suspending, false);
	WRITE_ONCE(dev->noflush, false);
	ps_md_thaw(&dev->md);
	queue_delayed_work(ps_wq, &dev->periodic_commit, ps_commit_delay());
	ps_bg_kick(dev);
}

static int ps_iterate_devices(struct dm_target *ti,
			      iterate_devices_callout_fn fn, void *data)
{
	struct ps_dev *dev = ti->private;

	return fn(ti, dev->cache_dev, 0, ti->len, data);
}

/* Discards arrive one chunk at a time, aligned: only whole chunks count. */
static void ps_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct ps_dev *dev = ti->private;

	limits->discard_granularity = dev->chunk_sectors << SECTOR_SHIFT;
	limits->max_discard_sectors = dev->chunk_sectors;
}

static struct target_type ps_target = {
	.name = "peersnap",
	.version = { 1, 0, 0 },
	.module = THIS_MODULE,
	.ctr = ps_ctr,
	.dtr = ps_dtr,
	.map = ps_map,
	.end_io = ps_end_io,
	.presuspend = ps_presuspend,
	.postsuspend = ps_postsuspend,
	.preresume = ps_preresume,
	.resume = ps_resume,
	.status = ps_status,
	.message = ps_message,
	.iterate_devices = ps_iterate_devices,
	.io_hints = ps_io_hints,
};

int ps_target_init(void)
{
	return dm_register_target(&ps_target);
}

void ps_target_exit(void)
{
	dm_unregister_target(&ps_target);
}
