// SPDX-License-Identifier: GPL-2.0
/*
 * The generic netlink family "peersnap": the agent's REGISTER and
 * FETCH_DONE, the kernel's FETCH, device and bitmap dumps, and the
 * "events" multicast group. The protocol is specified in the top comment
 * of uapi/linux/peersnap.h; this file only parses and builds messages.
 */
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>

#include "genl.h"

#define PS_BITMAP_PIECE_BYTES 2048

static LIST_HEAD(ps_devices);
static DEFINE_MUTEX(ps_devices_lock);

static const struct nla_policy ps_policy[PEERSNAP_A_MAX + 1] = {
	[PEERSNAP_A_FLAGS] = NLA_POLICY_MAX(NLA_U32, 0),
	[PEERSNAP_A_REQUEST_ID] = NLA_POLICY_MIN(NLA_U64, 1),
	[PEERSNAP_A_DEVICE_ID] = { .type = NLA_U32 },
	[PEERSNAP_A_FIRST_CHUNK] = { .type = NLA_U64 },
	[PEERSNAP_A_CHUNK_COUNT] = NLA_POLICY_MIN(NLA_U32, 1),
	[PEERSNAP_A_STATUS] = NLA_POLICY_RANGE(NLA_S32, -MAX_ERRNO, 0),
	[PEERSNAP_A_BITMAP_KIND] =
		NLA_POLICY_MAX(NLA_U8, __PEERSNAP_BITMAP_MAX - 1),
};

static struct genl_family ps_genl_family;

enum ps_mcgrp { PS_MCGRP_EVENTS };

static const struct genl_multicast_group ps_mcgrps[] = {
	[PS_MCGRP_EVENTS] = { .name = PEERSNAP_GENL_MCGRP_EVENTS },
};

static struct ps_dev *ps_dev_find_locked(u32 id)
{
	struct ps_dev *dev;

	lockdep_assert_held(&ps_devices_lock);
	list_for_each_entry(dev, &ps_devices, node)
		if (dev->id == id)
			return dev;
	return NULL;
}

static int ps_nl_register(struct sk_buff *skb, struct genl_info *info)
{
	if (!net_eq(genl_info_net(info), &init_net)) {
		GENL_SET_ERR_MSG(info,
				 "the agent must run in the initial netns");
		return -EBUSY;
	}
	ps_agent_register(info->snd_portid);
	DMINFO("agent registered (port %u)", info->snd_portid);
	return 0;
}

static int ps_nl_fetch_done(struct sk_buff *skb, struct genl_info *info)
{
	static const int required[] = {
		PEERSNAP_A_REQUEST_ID,	PEERSNAP_A_DEVICE_ID,
		PEERSNAP_A_FIRST_CHUNK, PEERSNAP_A_CHUNK_COUNT,
		PEERSNAP_A_STATUS,
	};
	struct ps_fetch_reply rep;
	unsigned int i;
	int r;

	for (i = 0; i < ARRAY_SIZE(required); i++) {
		if (GENL_REQ_ATTR_CHECK(info, required[i])) {
			ps_fetch_count_orphan_reply();
			return -EINVAL;
		}
	}
	rep.id = nla_get_u64(info->attrs[PEERSNAP_A_REQUEST_ID]);
	rep.dev_id = nla_get_u32(info->attrs[PEERSNAP_A_DEVICE_ID]);
	rep.first_chunk = nla_get_u64(info->attrs[PEERSNAP_A_FIRST_CHUNK]);
	rep.chunk_count = nla_get_u32(info->attrs[PEERSNAP_A_CHUNK_COUNT]);
	rep.status = nla_get_s32(info->attrs[PEERSNAP_A_STATUS]);

	r = ps_fetch_done(info->snd_portid, &rep);
	if (r == -EINVAL)
		GENL_SET_ERR_MSG(info, "reply does not match its request");
	return r;
}

static int ps_put_device(struct sk_buff *skb, struct ps_dev *dev)
{
	u64 present, dirty;

	ps_md_counts(&dev->md, &present, &dirty);
	if (nla_put_u32(skb, PEERSNAP_A_DEVICE_ID, dev->id) ||
	    nla_put_string(skb, PEERSNAP_A_DEVICE_NAME, ps_dev_name(dev)) ||
	    nla_put(skb, PEERSNAP_A_SNAPSHOT_ID, PEERSNAP_SNAPSHOT_ID_LEN,
		    dev->snapshot_id) ||
	    nla_put_u32(skb, PEERSNAP_A_CACHE_DEV,
			new_encode_dev(dev->cache_dev->bdev->bd_dev)) ||
	    nla_put_u32(skb, PEERSNAP_A_CHUNK_SECTORS, dev->chunk_sectors) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_CHUNKS_TOTAL, dev->nr_chunks,
			      PEERSNAP_A_PAD) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_CHUNKS_PRESENT, present,
			      PEERSNAP_A_PAD) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_CHUNKS_DIRTY, dirty,
			      PEERSNAP_A_PAD) ||
	    nla_put_u32(skb, PEERSNAP_A_FETCHES_INFLIGHT,
			atomic_read(&dev->inflight)) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_FETCHED,
			      atomic64_read(&dev->fetched), PEERSNAP_A_PAD) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_FAILED,
			      atomic64_read(&dev->failed), PEERSNAP_A_PAD) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_REJECTED,
			      atomic64_read(&dev->rejected), PEERSNAP_A_PAD))
		return -EMSGSIZE;
	return 0;
}

static int ps_fill_device(struct sk_buff *skb, struct ps_dev *dev, u32 portid,
			  u32 seq, int flags, u8 cmd)
{
	void *hdr = genlmsg_put(skb, portid, seq, &ps_genl_family, flags, cmd);

	if (!hdr)
		return -EMSGSIZE;
	if (ps_put_device(skb, dev)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

static int ps_nl_get_device_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	struct ps_dev *dev;
	u32 id;
	int r;

	if (GENL_REQ_ATTR_CHECK(info, PEERSNAP_A_DEVICE_ID))
		return -EINVAL;
	id = nla_get_u32(info->attrs[PEERSNAP_A_DEVICE_ID]);
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	mutex_lock(&ps_devices_lock);
	dev = ps_dev_find_locked(id);
	r = dev ? ps_fill_device(msg, dev, info->snd_portid, info->snd_seq, 0,
				 PEERSNAP_CMD_GET_DEVICE) :
		  -ENODEV;
	mutex_unlock(&ps_devices_lock);
	if (r) {
		nlmsg_free(msg);
		return r;
	}
	return genlmsg_reply(msg, info);
}

/* cb->args[0]: the id of the last device sent (ids only grow). */
static int ps_nl_get_device_dumpit(struct sk_buff *skb,
				   struct netlink_callback *cb)
{
	struct ps_dev *dev;

	mutex_lock(&ps_devices_lock);
	list_for_each_entry(dev, &ps_devices, node) {
		if (dev->id <= cb->args[0])
			continue;
		if (ps_fill_device(skb, dev, NETLINK_CB(cb->skb).portid,
				   cb->nlh->nlmsg_seq, NLM_F_MULTI,
				   PEERSNAP_CMD_GET_DEVICE))
			break;
		cb->args[0] = dev->id;
	}
	mutex_unlock(&ps_devices_lock);
	return skb->len;
}

/* @nbits: at most that many bits from @first, clipped to the device. */
static int ps_put_bitmap_piece(struct sk_buff *skb, struct ps_dev *dev, u8 kind,
			       u64 first, u32 *nbits)
{
	struct nlattr *attr;

	*nbits = min_t(u64, *nbits, dev->nr_chunks - first);
	if (nla_put_u32(skb, PEERSNAP_A_DEVICE_ID, dev->id) ||
	    nla_put_u8(skb, PEERSNAP_A_BITMAP_KIND, kind) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_FIRST_CHUNK, first,
			      PEERSNAP_A_PAD) ||
	    nla_put_u32(skb, PEERSNAP_A_CHUNK_COUNT, *nbits))
		return -EMSGSIZE;
	attr = nla_reserve(skb, PEERSNAP_A_BITMAP, DIV_ROUND_UP(*nbits, 8));
	if (!attr)
		return -EMSGSIZE;
	/* Every reserved byte is written: nothing of the skb leaks out. */
	ps_md_copy_bits(&dev->md, kind, first, *nbits, nla_data(attr));
	return 0;
}

/* cb->args[0]: next chunk to send, cb->args[1]: set once the dump ended. */
static int ps_nl_get_bitmap_dumpit(struct sk_buff *skb,
				   struct netlink_callback *cb)
{
	const struct genl_dumpit_info *info = genl_dumpit_info(cb);
	struct nlattr **attrs = info->attrs;
	struct ps_dev *dev;
	u32 nbits;
	void *hdr;
	u8 kind;
	int r = 0;

	if (!attrs[PEERSNAP_A_DEVICE_ID] || !attrs[PEERSNAP_A_BITMAP_KIND])
		return -EINVAL;
	kind = nla_get_u8(attrs[PEERSNAP_A_BITMAP_KIND]);
	mutex_lock(&ps_devices_lock);
	dev = ps_dev_find_locked(nla_get_u32(attrs[PEERSNAP_A_DEVICE_ID]));
	if (!dev) {
		r = cb->args[0] ? 0 : -ENODEV;
		goto out;
	}
	while (cb->args[0] < dev->nr_chunks) {
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &ps_genl_family,
				  NLM_F_MULTI, PEERSNAP_CMD_GET_BITMAP);
		if (!hdr)
			break;
		nbits = PS_BITMAP_PIECE_BYTES * 8;
		if (ps_put_bitmap_piece(skb, dev, kind, cb->args[0], &nbits)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		cb->args[0] += nbits;
	}
out:
	mutex_unlock(&ps_devices_lock);
	return r ? r : skb->len;
}

static const struct genl_ops ps_genl_ops[] = {
	{
		.cmd = PEERSNAP_CMD_REGISTER,
		.doit = ps_nl_register,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = PEERSNAP_CMD_FETCH_DONE,
		.doit = ps_nl_fetch_done,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = PEERSNAP_CMD_GET_DEVICE,
		.doit = ps_nl_get_device_doit,
		.dumpit = ps_nl_get_device_dumpit,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = PEERSNAP_CMD_GET_BITMAP,
		.dumpit = ps_nl_get_bitmap_dumpit,
		.flags = GENL_ADMIN_PERM,
	},
};

static struct genl_family ps_genl_family __ro_after_init = {
	.name = PEERSNAP_GENL_NAME,
	.version = PEERSNAP_GENL_VERSION,
	.maxattr = PEERSNAP_A_MAX,
	.policy = ps_policy,
	.module = THIS_MODULE,
	.ops = ps_genl_ops,
	.n_ops = ARRAY_SIZE(ps_genl_ops),
	.mcgrps = ps_mcgrps,
	.n_mcgrps = ARRAY_SIZE(ps_mcgrps),
};

/* Runs from the send worker: GFP_NOIO, as it is part of the I/O path. */
int ps_genl_send_fetch(u32 portid, const struct ps_fetch_msg *msg)
{
	struct sk_buff *skb;
	void *hdr;

	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_NOIO);
	if (!skb)
		return -ENOMEM;
	hdr = genlmsg_put(skb, 0, 0, &ps_genl_family, 0, PEERSNAP_CMD_FETCH);
	if (!hdr ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_REQUEST_ID, msg->id,
			      PEERSNAP_A_PAD) ||
	    nla_put_u32(skb, PEERSNAP_A_DEVICE_ID, msg->dev_id) ||
	    nla_put(skb, PEERSNAP_A_SNAPSHOT_ID, PEERSNAP_SNAPSHOT_ID_LEN,
		    msg->snapshot_id) ||
	    nla_put_u64_64bit(skb, PEERSNAP_A_FIRST_CHUNK, msg->first_chunk,
			      PEERSNAP_A_PAD) ||
	    nla_put_u32(skb, PEERSNAP_A_CHUNK_COUNT, msg->chunk_count) ||
	    nla_put_u32(skb, PEERSNAP_A_CACHE_DEV, msg->cache_dev) ||
	    nla_put_u32(skb, PEERSNAP_A_CHUNK_SECTORS, msg->chunk_sectors) ||
	    nla_put_u8(skb, PEERSNAP_A_PRIORITY, msg->priority)) {
		nlmsg_free(skb);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return genlmsg_unicast(&init_net, skb, portid);
}

static void ps_genl_event(struct ps_dev *dev, u8 cmd)
{
	struct sk_buff *skb;
	void *hdr;

	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &ps_genl_family, 0, cmd);
	if (!hdr || nla_put_u32(skb, PEERSNAP_A_DEVICE_ID, dev->id) ||
	    nla_put_string(skb, PEERSNAP_A_DEVICE_NAME, ps_dev_name(dev)) ||
	    nla_put(skb, PEERSNAP_A_SNAPSHOT_ID, PEERSNAP_SNAPSHOT_ID_LEN,
		    dev->snapshot_id)) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_end(skb, hdr);
	genlmsg_multicast(&ps_genl_family, skb, 0, PS_MCGRP_EVENTS, GFP_KERNEL);
}

void ps_genl_dev_add(struct ps_dev *dev)
{
	mutex_lock(&ps_devices_lock);
	list_add_tail(&dev->node, &ps_devices);
	mutex_unlock(&ps_devices_lock);
	ps_genl_event(dev, PEERSNAP_CMD_DEVICE_ADDED);
}

void ps_genl_dev_remove(struct ps_dev *dev)
{
	mutex_lock(&ps_devices_lock);
	list_del_init(&dev->node);
	mutex_unlock(&ps_devices_lock);
	ps_genl_event(dev, PEERSNAP_CMD_DEVICE_REMOVED);
}

/* Notices the agent's socket closing at once, as nbd does for its own. */
static int ps_netlink_notify(struct notifier_block *nb, unsigned long event,
			     void *ptr)
{
	struct netlink_notify *n = ptr;

	if (event == NETLINK_URELEASE && n->protocol == NETLINK_GENERIC &&
	    net_eq(n->net, &init_net))
		ps_agent_release(n->portid);
	return NOTIFY_DONE;
}

static struct notifier_block ps_netlink_notifier = {
	.notifier_call = ps_netlink_notify,
};

int ps_genl_init(void)
{
	int r;

	r = netlink_register_notifier(&ps_netlink_notifier);
	if (r)
		return r;
	r = genl_register_family(&ps_genl_family);
	if (r)
		netlink_unregister_notifier(&ps_netlink_notifier);
	return r;
}

void ps_genl_exit(void)
{
	genl_unregister_family(&ps_genl_family);
	netlink_unregister_notifier(&ps_netlink_notifier);
}
