// SPDX-License-Identifier: GPL-2.0
/*
 * Packet header codec and protection (packet.h): the header is built
 * first, then handed to the AEAD as associated data.
 */
#include <errno.h>

#include "packet.h"

unsigned int psd_pn_encode_len(uint64_t pn, uint64_t largest_acked,
			       bool any_acked)
{
	uint64_t unacked = any_acked ? pn - largest_acked : pn + 1;
	unsigned int n;

	if (any_acked && pn <= largest_acked)
		return 0;
	/* Enough bytes to cover twice the unacknowledged span (A.2). */
	for (n = 1; n <= 4; n++)
		if (unacked < (1ull << (8 * n - 1)))
			return n;
	return 0;
}

uint64_t psd_pn_decode(uint64_t largest_rx, bool any_rx, uint64_t truncated,
		       unsigned int pn_len)
{
	uint64_t expected = any_rx ? largest_rx + 1 : 0;
	uint64_t win = 1ull << (8 * pn_len), hwin = win / 2, mask = win - 1;
	uint64_t cand = (expected & ~mask) | truncated;

	/* RFC 9000 A.3, written so no step wraps around 0 or 2^62. */
	if (cand + hwin <= expected && cand < (1ull << 62) - win)
		return cand + win;
	if (cand > expected + hwin && cand >= win)
		return cand - win;
	return cand;
}

static size_t put_header(uint8_t *out, uint64_t cid, uint64_t pn,
			 unsigned int pn_len)
{
	size_t pos = 0;
	unsigned int i;

	out[pos++] = (uint8_t)(PSD_PKT_TYPE_DATA << 2 | (pn_len - 1));
	for (i = 0; i < PSD_PKT_CID_LEN; i++)
		out[pos++] = (uint8_t)(cid >> 8 * (PSD_PKT_CID_LEN - 1 - i));
	for (i = 0; i < pn_len; i++)
		out[pos++] = (uint8_t)(pn >> 8 * (pn_len - 1 - i));
	return pos;
}

int psd_packet_seal(const struct psd_aead_key *k, uint64_t cid, uint64_t pn,
		    uint64_t largest_acked, bool any_acked,
		    const uint8_t *payload, size_t len,
		    uint8_t *out, size_t cap, size_t *ret_len)
{
	unsigned int pn_len = psd_pn_encode_len(pn, largest_acked, any_acked);
	size_t hdr_len;
	int err;

	if (pn_len == 0)
		return -ERANGE;
	if (len == 0)
		return -EINVAL;
	hdr_len = 1 + PSD_PKT_CID_LEN + pn_len;
	if (cap < hdr_len || cap - hdr_len < len + PSD_AEAD_TAG_LEN)
		return -EMSGSIZE;
	put_header(out, cid, pn, pn_len);
	err = psd_aead_seal(k, pn, out, hdr_len, payload, len, out + hdr_len);
	if (err)
		return err;
	*ret_len = hdr_len + len + PSD_AEAD_TAG_LEN;
	return 0;
}

int psd_packet_parse_header(const uint8_t *dgram, size_t len,
			    struct psd_pkt_hdr *ret)
{
	struct psd_pkt_hdr h = { 0 };
	size_t pos = 1;
	unsigned int i;

	if (len < 1)
		return -EBADMSG;
	if (dgram[0] >> 2 != PSD_PKT_TYPE_DATA)
		return -EPROTO;
	h.pn_len = (dgram[0] & 3) + 1;
	h.hdr_len = 1 + PSD_PKT_CID_LEN + h.pn_len;
	if (len < h.hdr_len + PSD_AEAD_TAG_LEN + 1)
		return -EBADMSG;
	for (i = 0; i < PSD_PKT_CID_LEN; i++)
		h.cid = h.cid << 8 | dgram[pos++];
	for (i = 0; i < h.pn_len; i++)
		h.pn_truncated = h.pn_truncated << 8 | dgram[pos++];
	*ret = h;
	return 0;
}

int psd_packet_open(const struct psd_aead_key *k, const uint8_t *dgram,
		    size_t len, const struct psd_pkt_hdr *h,
		    uint64_t largest_rx, bool any_rx,
		    uint8_t *out, size_t *ret_len, uint64_t *ret_pn)
{
	uint64_t pn = psd_pn_decode(largest_rx, any_rx, h->pn_truncated,
				    h->pn_len);
	int err;

	if (len < h->hdr_len + PSD_AEAD_TAG_LEN + 1)
		return -EBADMSG;
	err = psd_aead_open(k, pn, dgram, h->hdr_len, dgram + h->hdr_len,
			    len - h->hdr_len, out);
	if (err)
		return err;
	*ret_len = len - h->hdr_len - PSD_AEAD_TAG_LEN;
	*ret_pn = pn;
	return 0;
}
