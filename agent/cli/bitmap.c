// SPDX-License-Identifier: GPL-2.0
/* Device lookup and bitmap dumps over generic netlink: see bitmap.h. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "bitmap.h"

struct dump {
	int family;
	int err;			/* the kernel's error, or a parse error */
	const char *name;		/* GET_DEVICE: the one we look for */
	struct cli_kdev *out;
	bool found;
	const struct cli_kdev *dev;	/* GET_BITMAP */
	uint8_t kind;
	uint8_t *bits;
	uint64_t next;			/* the chunk the next piece starts at */
};

/* Attribute a is present with exactly len bytes. */
static bool sized(struct nlattr *a, int len)
{
	return a && nla_len(a) == len;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct dump *d = arg;

	(void)nla;
	d->err = e->error < 0 ? e->error : -EPROTO;
	return NL_STOP;
}

/* A dump that fails at its start ends with NLMSG_DONE carrying the
 * error (-ENODEV for an unknown device), which libnl does not report. */
static int on_finish(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct dump *d = arg;
	int e;

	if (nlmsg_datalen(nlh) >= (int)sizeof(e)) {
		memcpy(&e, nlmsg_data(nlh), sizeof(e));
		if (e < 0 && !d->err)
			d->err = e;
	}
	return NL_STOP;
}

static int parse(struct nl_msg *msg, struct dump *d,
		 struct nlattr *tb[PEERSNAP_A_MAX + 1])
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);

	if (nlh->nlmsg_type != d->family || !genlmsg_valid_hdr(nlh, 0) ||
	    genlmsg_parse(nlh, 0, tb, PEERSNAP_A_MAX, NULL) < 0)
		return -EPROTO;
	return 0;
}

static int on_device(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[PEERSNAP_A_MAX + 1];
	struct dump *d = arg;
	struct nlattr *name;

	if (parse(msg, d, tb))
		return NL_SKIP;
	name = tb[PEERSNAP_A_DEVICE_NAME];
	if (!name || strnlen(nla_data(name), (size_t)nla_len(name)) ==
			     (size_t)nla_len(name) ||
	    strcmp(nla_data(name), d->name) || d->found)
		return NL_OK;
	if (!sized(tb[PEERSNAP_A_DEVICE_ID], 4) ||
	    !sized(tb[PEERSNAP_A_SNAPSHOT_ID], PEERSNAP_SNAPSHOT_ID_LEN) ||
	    !sized(tb[PEERSNAP_A_CACHE_DEV], 4) ||
	    !sized(tb[PEERSNAP_A_CHUNK_SECTORS], 4) ||
	    !sized(tb[PEERSNAP_A_CHUNKS_TOTAL], 8) ||
	    !sized(tb[PEERSNAP_A_CHUNKS_PRESENT], 8) ||
	    !sized(tb[PEERSNAP_A_CHUNKS_DIRTY], 8) ||
	    !sized(tb[PEERSNAP_A_FAILED], 8)) {
		d->err = -EPROTO;
		return NL_STOP;
	}
	d->out->id = nla_get_u32(tb[PEERSNAP_A_DEVICE_ID]);
	memcpy(d->out->snapshot, nla_data(tb[PEERSNAP_A_SNAPSHOT_ID]),
	       PEERSNAP_SNAPSHOT_ID_LEN);
	d->out->cache_dev = nla_get_u32(tb[PEERSNAP_A_CACHE_DEV]);
	d->out->chunk_sectors = nla_get_u32(tb[PEERSNAP_A_CHUNK_SECTORS]);
	d->out->chunks_total = nla_get_u64(tb[PEERSNAP_A_CHUNKS_TOTAL]);
	d->out->chunks_present = nla_get_u64(tb[PEERSNAP_A_CHUNKS_PRESENT]);
	d->out->chunks_dirty = nla_get_u64(tb[PEERSNAP_A_CHUNKS_DIRTY]);
	d->out->failed = nla_get_u64(tb[PEERSNAP_A_FAILED]);
	d->found = true;
	return NL_OK;
}

/* Bits [0, count) of piece go to chunks [first, first + count). */
static void copy_bits(uint8_t *dst, uint64_t first, const uint8_t *piece,
		      uint32_t count)
{
	uint32_t i;

	for (i = 0; i < count; i++)
		if (piece[i / 8] & (1u << (i % 8)))
			dst[(first + i) / 8] |= (uint8_t)(1u << ((first + i) % 8));
}

static int on_piece(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[PEERSNAP_A_MAX + 1];
	struct dump *d = arg;
	uint64_t first;
	uint32_t count;

	if (parse(msg, d, tb) || !sized(tb[PEERSNAP_A_DEVICE_ID], 4) ||
	    !sized(tb[PEERSNAP_A_BITMAP_KIND], 1) ||
	    !sized(tb[PEERSNAP_A_FIRST_CHUNK], 8) ||
	    !sized(tb[PEERSNAP_A_CHUNK_COUNT], 4) || !tb[PEERSNAP_A_BITMAP])
		goto bad;
	first = nla_get_u64(tb[PEERSNAP_A_FIRST_CHUNK]);
	count = nla_get_u32(tb[PEERSNAP_A_CHUNK_COUNT]);
	if (nla_get_u32(tb[PEERSNAP_A_DEVICE_ID]) != d->dev->id ||
	    nla_get_u8(tb[PEERSNAP_A_BITMAP_KIND]) != d->kind ||
	    first != d->next || !count ||
	    count > d->dev->chunks_total - first ||
	    nla_len(tb[PEERSNAP_A_BITMAP]) != (int)(((uint64_t)count + 7) / 8))
		goto bad;
	copy_bits(d->bits, first, nla_data(tb[PEERSNAP_A_BITMAP]), count);
	d->next = first + count;
	return NL_OK;
bad:
	d->err = -EPROTO;
	return NL_STOP;
}

static int dump(struct dump *d, uint8_t cmd, nl_recvmsg_msg_cb_t cb,
		uint32_t dev_id)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct nl_msg *msg = NULL;
	int r = -ENOMEM;

	if (!sk)
		return -ENOMEM;
	if (genl_connect(sk) < 0) {
		r = -EIO;
		goto out;
	}
	d->family = genl_ctrl_resolve(sk, PEERSNAP_GENL_NAME);
	if (d->family < 0) {
		r = -ENOENT;
		goto out;
	}
	msg = nlmsg_alloc();
	if (!msg || !genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, d->family, 0,
				 NLM_F_DUMP, cmd, PEERSNAP_GENL_VERSION))
		goto out;
	if (cmd == PEERSNAP_CMD_GET_BITMAP &&
	    (nla_put_u32(msg, PEERSNAP_A_DEVICE_ID, dev_id) < 0 ||
	     nla_put_u8(msg, PEERSNAP_A_BITMAP_KIND, d->kind) < 0))
		goto out;
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, cb, d);
	nl_socket_modify_cb(sk, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, d);
	nl_socket_modify_err_cb(sk, NL_CB_CUSTOM, on_error, d);
	r = nl_send_auto(sk, msg) < 0 ? -EIO : 0;
	/* Returns once NLMSG_DONE (or an error) ends the dump. */
	if (!r && nl_recvmsgs_default(sk) < 0 && !d->err)
		r = -EIO;
	if (!r)
		r = d->err;
out:
	nlmsg_free(msg);
	nl_socket_free(sk);
	return r;
}

int cli_kdev_find(const char *name, struct cli_kdev *ret)
{
	struct cli_kdev dev;
	struct dump d = { .name = name, .out = &dev };
	int r;

	r = dump(&d, PEERSNAP_CMD_GET_DEVICE, on_device, 0);
	if (r)
		return r;
	if (!d.found)
		return -ENODEV;
	*ret = dev;
	return 0;
}

int cli_kdev_bitmap(const struct cli_kdev *dev, enum peersnap_bitmap_kind kind,
		    uint8_t *bits)
{
	struct dump d = { .kind = (uint8_t)kind, .bits = bits, .dev = dev };
	int r;

	memset(bits, 0, (dev->chunks_total + 7) / 8);
	r = dump(&d, PEERSNAP_CMD_GET_BITMAP, on_piece, dev->id);
	if (!r && d.next != dev->chunks_total)
		r = -EPROTO;
	return r;
}
