// SPDX-License-Identifier: GPL-2.0
/* FETCH decoding, REGISTER / FETCH_DONE encoding: see proto.h. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "proto.h"

#define EXACT(t, n)	{ .type = (t), .minlen = (n), .maxlen = (n) }

/* minlen == maxlen: libnl then refuses any other size (validate_nla()). */
static const struct nla_policy fetch_policy[PEERSNAP_A_MAX + 1] = {
	[PEERSNAP_A_REQUEST_ID] = EXACT(NLA_U64, 8),
	[PEERSNAP_A_DEVICE_ID] = EXACT(NLA_U32, 4),
	[PEERSNAP_A_SNAPSHOT_ID] = EXACT(NLA_UNSPEC, PEERSNAP_SNAPSHOT_ID_LEN),
	[PEERSNAP_A_FIRST_CHUNK] = EXACT(NLA_U64, 8),
	[PEERSNAP_A_CHUNK_COUNT] = EXACT(NLA_U32, 4),
	[PEERSNAP_A_CACHE_DEV] = EXACT(NLA_U32, 4),
	[PEERSNAP_A_CHUNK_SECTORS] = EXACT(NLA_U32, 4),
	[PEERSNAP_A_PRIORITY] = EXACT(NLA_U8, 1),
};

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* Semantic checks after every attribute is present; reason or NULL. */
static const char *fetch_check(const struct psd_fetch_msg *m)
{
	uint64_t chunk_bytes, end_chunk;

	if (m->chunk_count == 0)
		return "chunk count 0";
	if (!is_pow2(m->chunk_sectors) ||
	    m->chunk_sectors < PSD_CHUNK_SECTORS_MIN ||
	    m->chunk_sectors > PSD_CHUNK_SECTORS_MAX)
		return "chunk sectors not a power of two in 8..8192";
	if (m->priority >= __PEERSNAP_PRIO_MAX)
		return "unknown priority";
	if (m->cache_dev == 0)
		return "cache device 0";
	if (psd_fetch_bytes(m) > PSD_FETCH_MAX_BYTES)
		return "request larger than 64 MiB";
	chunk_bytes = (uint64_t)m->chunk_sectors << PSD_SECTOR_SHIFT;
	end_chunk = m->first_chunk + m->chunk_count;
	/* The last byte's offset must fit an off_t (INT64_MAX). */
	if (end_chunk < m->first_chunk ||
	    end_chunk > (uint64_t)INT64_MAX / chunk_bytes)
		return "chunk range beyond 2^63 bytes";
	return NULL;
}

static const char *echo_fields(struct nlattr **tb, struct psd_fetch_msg *m)
{
	if (!tb[PEERSNAP_A_REQUEST_ID])
		return "missing REQUEST_ID";
	if (!tb[PEERSNAP_A_DEVICE_ID])
		return "missing DEVICE_ID";
	if (!tb[PEERSNAP_A_FIRST_CHUNK])
		return "missing FIRST_CHUNK";
	if (!tb[PEERSNAP_A_CHUNK_COUNT])
		return "missing CHUNK_COUNT";
	m->request_id = nla_get_u64(tb[PEERSNAP_A_REQUEST_ID]);
	m->device_id = nla_get_u32(tb[PEERSNAP_A_DEVICE_ID]);
	m->first_chunk = nla_get_u64(tb[PEERSNAP_A_FIRST_CHUNK]);
	m->chunk_count = nla_get_u32(tb[PEERSNAP_A_CHUNK_COUNT]);
	if (m->request_id == 0)
		return "request id 0";
	return NULL;
}

static const char *other_fields(struct nlattr **tb, struct psd_fetch_msg *m)
{
	if (!tb[PEERSNAP_A_SNAPSHOT_ID])
		return "missing SNAPSHOT_ID";
	if (!tb[PEERSNAP_A_CACHE_DEV])
		return "missing CACHE_DEV";
	if (!tb[PEERSNAP_A_CHUNK_SECTORS])
		return "missing CHUNK_SECTORS";
	if (!tb[PEERSNAP_A_PRIORITY])
		return "missing PRIORITY";
	memcpy(m->snapshot_id, nla_data(tb[PEERSNAP_A_SNAPSHOT_ID]),
	       PEERSNAP_SNAPSHOT_ID_LEN);
	m->cache_dev = nla_get_u32(tb[PEERSNAP_A_CACHE_DEV]);
	m->chunk_sectors = nla_get_u32(tb[PEERSNAP_A_CHUNK_SECTORS]);
	m->priority = nla_get_u8(tb[PEERSNAP_A_PRIORITY]);
	return fetch_check(m);
}

/* libnl's parser stops quietly at a broken attribute; we do not. */
static bool attrs_well_formed(struct nlmsghdr *nlh)
{
	struct genlmsghdr *gh = genlmsg_hdr(nlh);
	struct nlattr *nla;
	int rem;

	nla_for_each_attr(nla, genlmsg_attrdata(gh, 0), genlmsg_attrlen(gh, 0),
			  rem)
		;
	return rem == 0;
}

int psd_proto_fetch_parse(struct nlmsghdr *nlh, struct psd_fetch_msg *ret,
			  const char **ret_why)
{
	struct nlattr *tb[PEERSNAP_A_MAX + 1];
	struct psd_fetch_msg m = { 0 };
	const char *why;

	if (!genlmsg_valid_hdr(nlh, 0)) {
		*ret_why = "short generic netlink header";
		return -EBADMSG;
	}
	if (genlmsg_hdr(nlh)->cmd != PEERSNAP_CMD_FETCH) {
		*ret_why = "not a FETCH";
		return -EBADMSG;
	}
	if (!attrs_well_formed(nlh)) {
		*ret_why = "attribute runs past the message";
		return -EBADMSG;
	}
	if (genlmsg_parse(nlh, 0, tb, PEERSNAP_A_MAX, fetch_policy) < 0) {
		*ret_why = "attribute of the wrong size";
		return -EBADMSG;
	}
	why = echo_fields(tb, &m);
	if (why) {
		*ret_why = why;
		return -EBADMSG;
	}
	why = other_fields(tb, &m);
	*ret = m;
	if (why) {
		*ret_why = why;
		return -EINVAL;
	}
	return 0;
}

int psd_proto_register_build(struct nl_msg *msg, int family)
{
	/* NLM_F_ACK: startup waits for the verdict on REGISTER. */
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0,
			 NLM_F_ACK, PEERSNAP_CMD_REGISTER,
			 PEERSNAP_GENL_VERSION))
		return -ENOMEM;
	return 0;
}

int psd_proto_done_build(struct nl_msg *msg, int family,
			 const struct psd_fetch_done *d)
{
	/*
	 * No NLM_F_ACK: the kernel reports a refused reply anyway (netlink
	 * acks every error), and an ack per fetch would double the traffic
	 * the socket's receive buffer has to absorb.
	 */
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, 0,
			 PEERSNAP_CMD_FETCH_DONE, PEERSNAP_GENL_VERSION))
		return -ENOMEM;
	if (nla_put_u64(msg, PEERSNAP_A_REQUEST_ID, d->request_id) ||
	    nla_put_u32(msg, PEERSNAP_A_DEVICE_ID, d->device_id) ||
	    nla_put_u64(msg, PEERSNAP_A_FIRST_CHUNK, d->first_chunk) ||
	    nla_put_u32(msg, PEERSNAP_A_CHUNK_COUNT, d->chunk_count) ||
	    nla_put_s32(msg, PEERSNAP_A_STATUS, d->status))
		return -ENOMEM;
	return 0;
}

struct psd_fetch_done psd_proto_done_for(const struct psd_fetch_msg *m,
					 int32_t status)
{
	struct psd_fetch_done d = {
		.request_id = m->request_id,
		.device_id = m->device_id,
		.first_chunk = m->first_chunk,
		.chunk_count = m->chunk_count,
		.status = status,
	};

	return d;
}
