// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: FETCH validation on arbitrary attribute bytes behind a
 * well-formed netlink + genl header (the kernel frames messages; their
 * attributes are what varies). An accepted request must satisfy every
 * limit the fetch engine relies on.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define HDRS	(NLMSG_HDRLEN + GENL_HDRLEN)

static void check_accepted(const struct psd_fetch_msg *m)
{
	if (m->request_id == 0 || m->chunk_count == 0 ||
	    m->chunk_sectors < PSD_CHUNK_SECTORS_MIN ||
	    m->chunk_sectors > PSD_CHUNK_SECTORS_MAX ||
	    (m->chunk_sectors & (m->chunk_sectors - 1)) ||
	    psd_fetch_bytes(m) > PSD_FETCH_MAX_BYTES ||
	    m->priority >= __PEERSNAP_PRIO_MAX || m->cache_dev == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct psd_fetch_msg m;
	struct nlmsghdr *nlh;
	struct genlmsghdr *gh;
	const char *why = NULL;
	uint8_t *buf;
	int r;

	if (size > 65536)
		return 0;
	buf = calloc(1, HDRS + size);
	if (!buf)
		return 0;
	nlh = (struct nlmsghdr *)buf;
	nlh->nlmsg_len = (uint32_t)(HDRS + size);
	nlh->nlmsg_type = 0x1c;
	gh = (struct genlmsghdr *)(buf + NLMSG_HDRLEN);
	gh->cmd = PEERSNAP_CMD_FETCH;
	gh->version = PEERSNAP_GENL_VERSION;
	memcpy(buf + HDRS, data, size);
	r = psd_proto_fetch_parse(nlh, &m, &why);
	if (r == 0)
		check_accepted(&m);
	else if ((r != -EINVAL && r != -EBADMSG) || !why)
		abort();
	free(buf);
	return 0;
}
