// SPDX-License-Identifier: GPL-2.0
/*
 * Fetch requests.
 *
 * A read of an absent chunk is held on that chunk's descriptor (struct
 * ps_fetch), found in the device's bucket-locked hash. The map path checks
 * the present bit, then takes the bucket lock and looks for a descriptor,
 * allocates one outside the lock if there is none, and re-checks both
 * under the lock; completion sets the present bit before it unhashes the
 * descriptor, so a bio either joins a live descriptor or sees the bit.
 *
 * Each descriptor is also a request to the agent, in the module-wide
 * table ps_req: a 64-bit id (never reused), the pending list (oldest
 * first, for timeouts) and two unsent queues (demand before background).
 * A request records the agent session it was last sent to; REGISTER
 * starts a new session and queues every pending request again, so a
 * reply counts only if it comes from the current agent for a request
 * sent in the current session.
 *
 * Lock order: bucket lock, then ps_req.lock. Neither is held across
 * netlink sends or bio submission.
 */
#include <linux/hashtable.h>
#include <linux/llist.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "fetch.h"
#include "genl.h"

#define PS_MIN_FETCHES 256
#define PS_SEND_BUDGET 256
#define PS_SEND_RETRY (HZ / 10)
#define PS_TIMEOUT_TICK (HZ / 4)

enum ps_queue { PS_Q_DEMAND, PS_Q_BACKGROUND, PS_NR_QUEUES };

struct ps_fetch {
	struct hlist_node chunk_node; /* dev->buckets[], bucket lock */
	struct hlist_node id_node; /* ps_req.by_id */
	struct list_head pending_node; /* ps_req.pending */
	struct list_head unsent_node; /* ps_req.unsent[], or empty */
	struct ps_dev *dev;
	u64 id;
	u64 chunk;
	u64 session; /* 0: not sent in this session */
	unsigned long created;
	enum peersnap_priority prio; /* raised when a bio joins */
	bool background; /* counted in dev->bg_inflight */
	bool local; /* a whole-chunk write, not a request */
	int local_status; /* that write's result */
	struct llist_node local_node; /* dev->local_done */
	struct bio_list bios; /* bucket lock */
};

static struct {
	spinlock_t lock; /* everything in this struct */
	DECLARE_HASHTABLE(by_id, 12);
	struct list_head pending;
	struct list_head unsent[PS_NR_QUEUES];
	u64 next_id;
	u64 session;
	u32 agent_portid; /* 0: no agent */
} ps_req;

static unsigned long rejected_replies;
module_param(rejected_replies, ulong, 0444);
MODULE_PARM_DESC(rejected_replies,
		 "Agent replies refused that named no live request");

static struct kmem_cache *ps_fetch_cache;
static mempool_t *ps_fetch_pool;
static struct delayed_work ps_send_work;
static struct delayed_work ps_timeout_work;

static struct ps_bucket *ps_bucket_of(struct ps_dev *dev, u64 chunk)
{
	return &dev->buckets[hash_64(chunk, 32) & dev->bucket_mask];
}

static struct ps_fetch *ps_bucket_find(struct ps_bucket *b, u64 chunk)
{
	struct ps_fetch *f;

	lockdep_assert_held(&b->lock);
	hlist_for_each_entry(f, &b->head, chunk_node)
		if (f->chunk == chunk)
			return f;
	return NULL;
}

static enum ps_queue ps_queue_of(struct ps_fetch *f)
{
	return READ_ONCE(f->prio) == PEERSNAP_PRIO_PREFETCH ? PS_Q_BACKGROUND :
							      PS_Q_DEMAND;
}

static struct ps_fetch *ps_req_find(u64 id)
{
	struct ps_fetch *f;

	lockdep_assert_held(&ps_req.lock);
	hash_for_each_possible(ps_req.by_id, f, id_node, id)
		if (f->id == id)
			return f;
	return NULL;
}

static void ps_req_add(struct ps_fetch *f)
{
	unsigned long flags;

	spin_lock_irqsave(&ps_req.lock, flags);
	f->id = ++ps_req.next_id;
	f->created = jiffies;
	hash_add(ps_req.by_id, &f->id_node, f->id);
	list_add_tail(&f->pending_node, &ps_req.pending);
	list_add_tail(&f->unsent_node, &ps_req.unsent[ps_queue_of(f)]);
	spin_unlock_irqrestore(&ps_req.lock, flags);

	mod_delayed_work(ps_wq, &ps_send_work, 0);
	queue_delayed_work(ps_wq, &ps_timeout_work, PS_TIMEOUT_TICK);
}

/* Takes @f out of the request table; the caller then owns it. */
static void ps_req_unlink(struct ps_fetch *f)
{
	lockdep_assert_held(&ps_req.lock);
	hash_del(&f->id_node);
	list_del_init(&f->pending_node);
	list_del_init(&f->unsent_node);
	ps_dev_get(f->dev);
}

/*
 * A flush or FUA write that waited for its chunk goes back through the
 * commit path: the chunk's new present bit must be durable before it
 * completes.
 */
static void ps_release_bios(struct ps_dev *dev, struct bio_list *bios,
			    int status)
{
	struct bio *bio;

	while ((bio = bio_list_pop(bios))) {
		atomic_dec(&dev->held_bios);
		if (status) {
			bio->bi_status = BLK_STS_IOERR;
			bio_endio(bio);
		} else if (bio->bi_opf & (REQ_PREFLUSH | REQ_FUA)) {
			ps_defer(dev, bio);
		} else {
			ps_remap_and_submit(dev, bio);
		}
	}
}

/*
 * Ends a request that ps_req_unlink() took out of the table: mark the chunk
 * present (before unhashing, see the top comment), release its bios, and
 * drop the device reference the unlink took.
 */
static void ps_fetch_finish(struct ps_fetch *f, int status)
{
	struct ps_dev *dev = f->dev;
	struct ps_bucket *b = ps_bucket_of(dev, f->chunk);
	struct bio_list bios;
	unsigned long flags;

	if (!status)
		ps_md_set_present(&dev->md, f->chunk, 1);
	if (!f->local)
		atomic64_inc(status ? &dev->failed : &dev->fetched);

	spin_lock_irqsave(&b->lock, flags);
	hlist_del(&f->chunk_node);
	bios = f->bios;
	spin_unlock_irqrestore(&b->lock, flags);

	ps_release_bios(dev, &bios, status);
	if (f->background)
		atomic_dec(&dev->bg_inflight);
	atomic_dec(&dev->inflight);
	mempool_free(f, ps_fetch_pool);
	ps_bg_kick(dev);
	ps_dev_put(dev);
}

static struct ps_fetch *ps_fetch_alloc(struct ps_dev *dev, u64 chunk,
				       enum peersnap_priority prio)
{
	struct ps_fetch *f = mempool_alloc(ps_fetch_pool, GFP_NOIO);

	memset(f, 0, sizeof(*f));
	INIT_LIST_HEAD(&f->pending_node);
	INIT_LIST_HEAD(&f->unsent_node);
	bio_list_init(&f->bios);
	f->dev = dev;
	f->chunk = chunk;
	f->prio = prio;
	f->background = prio == PEERSNAP_PRIO_PREFETCH;
	return f;
}

static void ps_fetch_attach(struct ps_dev *dev, struct ps_fetch *f,
			    struct bio *bio)
{
	if (!bio)
		return;
	bio_list_add(&f->bios, bio);
	atomic_inc(&dev->held_bios);
	/* A waiting reader makes a background fetch a demand one. */
	if (f->prio == PEERSNAP_PRIO_PREFETCH)
		WRITE_ONCE(f->prio, bio_data_dir(bio) == WRITE ?
					    PEERSNAP_PRIO_WRITE_HYDRATE :
					    PEERSNAP_PRIO_DEMAND);
}

enum ps_lookup { PS_JOINED, PS_PRESENT, PS_INSERTED };

/* Under the bucket lock: join a descriptor, see the bit, or insert @new. */
static enum ps_lookup ps_bucket_join(struct ps_dev *dev, struct ps_bucket *b,
				     u64 chunk, struct bio *bio,
				     struct ps_fetch *new)
{
	struct ps_fetch *f;

	lockdep_assert_held(&b->lock);
	f = ps_bucket_find(b, chunk);
	if (f) {
		ps_fetch_attach(dev, f, bio);
		return PS_JOINED;
	}
	if (ps_md_is_present(&dev->md, chunk))
		return PS_PRESENT;
	if (!new)
		return PS_INSERTED; /* caller must allocate and retry */
	hlist_add_head(&new->chunk_node, &b->head);
	ps_fetch_attach(dev, new, bio);
	atomic_inc(&dev->inflight);
	if (new->background)
		atomic_inc(&dev->bg_inflight);
	return PS_INSERTED;
}

static enum ps_lookup ps_fetch_get(struct ps_dev *dev, u64 chunk,
				   struct bio *bio, enum peersnap_priority prio)
{
	struct ps_bucket *b = ps_bucket_of(dev, chunk);
	struct ps_fetch *new = NULL;
	enum ps_lookup res;
	unsigned long flags;

	spin_lock_irqsave(&b->lock, flags);
	res = ps_bucket_join(dev, b, chunk, bio, NULL);
	spin_unlock_irqrestore(&b->lock, flags);
	if (res != PS_INSERTED)
		return res;

	new = ps_fetch_alloc(dev, chunk, prio);
	spin_lock_irqsave(&b->lock, flags);
	res = ps_bucket_join(dev, b, chunk, bio, new);
	spin_unlock_irqrestore(&b->lock, flags);
	if (res == PS_INSERTED)
		ps_req_add(new);
	else
		mempool_free(new, ps_fetch_pool);
	return res;
}

/* Holds @bio until @chunk is present; DM_MAPIO_REMAPPED if it already is. */
int ps_fetch_hold(struct ps_dev *dev, u64 chunk, struct bio *bio,
		  enum peersnap_priority prio)
{
	if (dev->fail_if_no_agent && !ps_agent_connected())
		return DM_MAPIO_KILL;
	if (ps_fetch_get(dev, chunk, bio, prio) == PS_PRESENT)
		return DM_MAPIO_REMAPPED;
	return DM_MAPIO_SUBMITTED;
}

/* Starts a background fetch of @chunk; false if none was needed. */
bool ps_fetch_background(struct ps_dev *dev, u64 chunk)
{
	return ps_fetch_get(dev, chunk, NULL, PEERSNAP_PRIO_PREFETCH) ==
	       PS_INSERTED;
}

/*
 * A write of a whole absent chunk needs no fetch: the write itself makes
 * the chunk present. Its descriptor holds every other bio of the chunk
 * until the write completes, so no fetch can land on top of it. Returns
 * NULL when the chunk is present or in flight: use the ordinary path.
 */
struct ps_fetch *ps_fetch_begin_local(struct ps_dev *dev, u64 chunk)
{
	struct ps_bucket *b = ps_bucket_of(dev, chunk);
	struct ps_fetch *f;
	unsigned long flags;

	f = ps_fetch_alloc(dev, chunk, PEERSNAP_PRIO_WRITE_HYDRATE);
	f->local = true;
	spin_lock_irqsave(&b->lock, flags);
	if (ps_bucket_find(b, chunk) || ps_md_is_present(&dev->md, chunk)) {
		spin_unlock_irqrestore(&b->lock, flags);
		mempool_free(f, ps_fetch_pool);
		return NULL;
	}
	hlist_add_head(&f->chunk_node, &b->head);
	atomic_inc(&dev->inflight);
	spin_unlock_irqrestore(&b->lock, flags);
	ps_dev_get(dev);
	return f;
}

/*
 * Called from the write's completion, maybe in interrupt context: the
 * bios it held are resubmitted from process context (ps_fetch_local_work).
 */
void ps_fetch_end_local(struct ps_fetch *f, int status)
{
	struct ps_dev *dev = f->dev;

	f->local_status = status;
	llist_add(&f->local_node, &dev->local_done);
	queue_work(ps_wq, &dev->local_work);
}

void ps_fetch_local_work(struct work_struct *work)
{
	struct ps_dev *dev = container_of(work, struct ps_dev, local_work);
	struct llist_node *done = llist_del_all(&dev->local_done);
	struct ps_fetch *f, *tmp;

	llist_for_each_entry_safe(f, tmp, done, local_node)
		ps_fetch_finish(f, f->local_status);
}

/* Presuspend: give every held bio back to dm core with @status. */
void ps_fetch_release_held(struct ps_dev *dev, blk_status_t status)
{
	struct bio_list bios = BIO_EMPTY_LIST;
	struct ps_fetch *f;
	unsigned long flags;
	struct bio *bio;
	unsigned int i;

	for (i = 0; i <= dev->bucket_mask; i++) {
		struct ps_bucket *b = &dev->buckets[i];

		spin_lock_irqsave(&b->lock, flags);
		hlist_for_each_entry(f, &b->head, chunk_node) {
			bio_list_merge(&bios, &f->bios);
			bio_list_init(&f->bios);
		}
		spin_unlock_irqrestore(&b->lock, flags);
	}
	while ((bio = bio_list_pop(&bios))) {
		atomic_dec(&dev->held_bios);
		bio->bi_status = status;
		bio_endio(bio);
	}
}

static bool ps_next_unsent(struct ps_fetch_msg *msg, u32 *portid)
{
	struct ps_fetch *f = NULL;
	struct ps_dev *dev;
	int q;

	lockdep_assert_held(&ps_req.lock);
	if (!ps_req.agent_portid)
		return false;
	for (q = 0; q < PS_NR_QUEUES && !f; q++)
		f = list_first_entry_or_null(&ps_req.unsent[q], struct ps_fetch,
					     unsent_node);
	if (!f)
		return false;
	list_del_init(&f->unsent_node);
	f->session = ps_req.session;
	dev = f->dev;
	msg->id = f->id;
	msg->dev_id = dev->id;
	memcpy(msg->snapshot_id, dev->snapshot_id, sizeof(msg->snapshot_id));
	msg->first_chunk = f->chunk;
	msg->chunk_count = 1;
	msg->cache_dev = new_encode_dev(dev->cache_dev->bdev->bd_dev);
	msg->chunk_sectors = dev->chunk_sectors;
	msg->priority = READ_ONCE(f->prio);
	*portid = ps_req.agent_portid;
	return true;
}

/* A send failed: put the request back at the head of its queue. */
static void ps_req_unsend(u64 id)
{
	struct ps_fetch *f;
	unsigned long flags;

	spin_lock_irqsave(&ps_req.lock, flags);
	f = ps_req_find(id);
	if (f && list_empty(&f->unsent_node)) {
		f->session = 0;
		list_add(&f->unsent_node, &ps_req.unsent[ps_queue_of(f)]);
	}
	spin_unlock_irqrestore(&ps_req.lock, flags);
}

/*
 * Sends queued requests to the agent. A full or vanished socket (-EAGAIN,
 * -ENOBUFS, -ECONNREFUSED) leaves the request queued and retries later:
 * a request is never lost, only delayed.
 */
static void ps_send_worker(struct work_struct *work)
{
	struct ps_fetch_msg msg;
	unsigned long flags;
	unsigned int budget;
	u32 portid;
	bool more;
	int r;

	for (budget = PS_SEND_BUDGET; budget; budget--) {
		spin_lock_irqsave(&ps_req.lock, flags);
		more = ps_next_unsent(&msg, &portid);
		spin_unlock_irqrestore(&ps_req.lock, flags);
		if (!more)
			return;
		r = ps_genl_send_fetch(portid, &msg);
		if (r) {
			ps_req_unsend(msg.id);
			queue_delayed_work(ps_wq, &ps_send_work, PS_SEND_RETRY);
			return;
		}
	}
	queue_delayed_work(ps_wq, &ps_send_work, 0);
}

/*
 * Without an agent, a request fails at once if its device says so, or if
 * a flushing suspend is waiting for it: a suspend must never hang.
 */
static bool ps_req_expired(struct ps_fetch *f, bool agent)
{
	struct ps_dev *dev = f->dev;
	unsigned int timeout = READ_ONCE(dev->agent_timeout);

	if (!agent && (dev->fail_if_no_agent || (READ_ONCE(dev->suspending) &&
						 !READ_ONCE(dev->noflush))))
		return true;
	return timeout && time_after(jiffies, f->created + timeout * HZ);
}

/* Fails requests past their device's agent_timeout, or agentless ones. */
static void ps_timeout_worker(struct work_struct *work)
{
	struct ps_fetch *f, *tmp;
	LIST_HEAD(expired);
	unsigned long flags;
	bool again;

	spin_lock_irqsave(&ps_req.lock, flags);
	list_for_each_entry_safe(f, tmp, &ps_req.pending, pending_node) {
		if (!ps_req_expired(f, ps_req.agent_portid))
			continue;
		ps_req_unlink(f);
		list_add_tail(&f->pending_node, &expired);
	}
	again = !list_empty(&ps_req.pending);
	spin_unlock_irqrestore(&ps_req.lock, flags);

	list_for_each_entry_safe(f, tmp, &expired, pending_node) {
		list_del(&f->pending_node);
		DMWARN_LIMIT("%s: no answer for chunk %llu, failing its I/O",
			     ps_dev_name(f->dev), f->chunk);
		ps_fetch_finish(f, -ETIMEDOUT);
	}
	if (again)
		queue_delayed_work(ps_wq, &ps_timeout_work, PS_TIMEOUT_TICK);
}

void ps_fetch_kick_timeouts(void)
{
	mod_delayed_work(ps_wq, &ps_timeout_work, 0);
}

bool ps_agent_connected(void)
{
	return READ_ONCE(ps_req.agent_portid) != 0;
}

/* A new agent: it gets every pending request again, oldest first. */
void ps_agent_register(u32 portid)
{
	struct ps_fetch *f;
	unsigned long flags;

	spin_lock_irqsave(&ps_req.lock, flags);
	ps_req.agent_portid = portid;
	ps_req.session++;
	list_for_each_entry(f, &ps_req.pending, pending_node) {
		f->session = 0;
		list_del(&f->unsent_node);
		list_add_tail(&f->unsent_node, &ps_req.unsent[ps_queue_of(f)]);
	}
	spin_unlock_irqrestore(&ps_req.lock, flags);
	mod_delayed_work(ps_wq, &ps_send_work, 0);
}

void ps_agent_release(u32 portid)
{
	unsigned long flags;
	bool was_agent;

	spin_lock_irqsave(&ps_req.lock, flags);
	was_agent = portid && portid == ps_req.agent_portid;
	if (was_agent)
		ps_req.agent_portid = 0;
	spin_unlock_irqrestore(&ps_req.lock, flags);
	if (was_agent) {
		DMINFO("agent (port %u) went away", portid);
		ps_fetch_kick_timeouts();
	}
}

/* The policy already bounded the status; the request must match. */
static int ps_reply_check(struct ps_fetch *f, const struct ps_fetch_reply *rep)
{
	if (f->dev->id != rep->dev_id || f->chunk != rep->first_chunk ||
	    rep->chunk_count != 1)
		return -EINVAL;
	return 0;
}

/*
 * An answer from userspace: trusted only if it comes from the current
 * agent, names a request sent in this session, and matches it exactly.
 * A refused answer changes nothing but a counter.
 */
int ps_fetch_done(u32 portid, const struct ps_fetch_reply *rep)
{
	struct ps_fetch *f = NULL;
	unsigned long flags;
	int r;

	spin_lock_irqsave(&ps_req.lock, flags);
	r = -EPERM;
	if (portid != ps_req.agent_portid)
		goto reject;
	f = ps_req_find(rep->id);
	r = -ENOENT;
	if (!f || f->session != ps_req.session) {
		f = NULL;
		goto reject;
	}
	r = ps_reply_check(f, rep);
	if (r)
		goto reject;
	ps_req_unlink(f);
	spin_unlock_irqrestore(&ps_req.lock, flags);
	ps_fetch_finish(f, rep->status);
	return 0;

reject:
	if (f)
		atomic64_inc(&f->dev->rejected);
	else
		rejected_replies++;
	spin_unlock_irqrestore(&ps_req.lock, flags);
	return r;
}

/* A reply too incomplete to name a request (a required attribute missing). */
void ps_fetch_count_orphan_reply(void)
{
	unsigned long flags;

	spin_lock_irqsave(&ps_req.lock, flags);
	rejected_replies++;
	spin_unlock_irqrestore(&ps_req.lock, flags);
}

int ps_fetch_dev_init(struct ps_dev *dev)
{
	unsigned int i, n;

	n = roundup_pow_of_two(clamp_t(u64, dev->nr_chunks / 64, 64, 65536));
	dev->buckets = kvmalloc_array(n, sizeof(*dev->buckets), GFP_KERNEL);
	if (!dev->buckets)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		spin_lock_init(&dev->buckets[i].lock);
		INIT_HLIST_HEAD(&dev->buckets[i].head);
	}
	dev->bucket_mask = n - 1;
	return 0;
}

/*
 * Destructor side: every request of @dev still in the table fails, and
 * the wait for dev->users covers replies being processed right now.
 */
void ps_fetch_dev_exit(struct ps_dev *dev)
{
	struct ps_fetch *f, *tmp;
	LIST_HEAD(mine);
	unsigned long flags;

	if (!dev->buckets)
		return;
	spin_lock_irqsave(&ps_req.lock, flags);
	list_for_each_entry_safe(f, tmp, &ps_req.pending, pending_node) {
		if (f->dev != dev)
			continue;
		ps_req_unlink(f);
		list_add_tail(&f->pending_node, &mine);
	}
	spin_unlock_irqrestore(&ps_req.lock, flags);

	list_for_each_entry_safe(f, tmp, &mine, pending_node) {
		list_del(&f->pending_node);
		ps_fetch_finish(f, -EIO);
	}
	wait_event(dev->users_wq, !atomic_read(&dev->users));
	WARN_ON(atomic_read(&dev->inflight));
	kvfree(dev->buckets);
	dev->buckets = NULL;
}

int ps_fetch_init(void)
{
	int q;

	spin_lock_init(&ps_req.lock);
	hash_init(ps_req.by_id);
	INIT_LIST_HEAD(&ps_req.pending);
	for (q = 0; q < PS_NR_QUEUES; q++)
		INIT_LIST_HEAD(&ps_req.unsent[q]);
	INIT_DELAYED_WORK(&ps_send_work, ps_send_worker);
	INIT_DELAYED_WORK(&ps_timeout_work, ps_timeout_worker);

	ps_fetch_cache = KMEM_CACHE(ps_fetch, 0);
	if (!ps_fetch_cache)
		return -ENOMEM;
	ps_fetch_pool =
		mempool_create_slab_pool(PS_MIN_FETCHES, ps_fetch_cache);
	if (!ps_fetch_pool) {
		kmem_cache_destroy(ps_fetch_cache);
		return -ENOMEM;
	}
	return 0;
}

/* Called after every device is gone, so the table is empty. */
void ps_fetch_exit(void)
{
	cancel_delayed_work_sync(&ps_send_work);
	cancel_delayed_work_sync(&ps_timeout_work);
	WARN_ON(!list_empty(&ps_req.pending));
	mempool_destroy(ps_fetch_pool);
	kmem_cache_destroy(ps_fetch_cache);
}
