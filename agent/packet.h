/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The protected transport packet (docs/protocol.md, "Packets and frames"):
 *
 *   0        1                 9             9+L
 *   +--------+-----------------+-------------+--------------------------+
 *   |000100LL| connection id   | pn (L bytes)| AEAD(payload) || tag(16) |
 *   +--------+-----------------+-------------+--------------------------+
 *
 * First byte: packet type 4 ("transport data", as WireGuard numbers it;
 * handshake messages use types 1-3) in the high six bits, L - 1 in the low
 * two. The connection id is the receiver's 64-bit id, big-endian. The
 * packet number is truncated to its L low bytes (big-endian), chosen so the
 * receiver can rebuild it from the largest number it has received (RFC
 * 9000 17.1 and A.3). The header, as sent, is the AEAD's associated data;
 * the full 64-bit packet number is its nonce (aead.h).
 */
#ifndef PSD_PACKET_H
#define PSD_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aead.h"

#define PSD_PKT_TYPE_DATA	4
#define PSD_PKT_CID_LEN		8
#define PSD_PKT_HDR_MAX		(1 + PSD_PKT_CID_LEN + 4)
#define PSD_PKT_OVERHEAD_MAX	(PSD_PKT_HDR_MAX + PSD_AEAD_TAG_LEN)
/* Every datagram is padded to this; no path may carry less (RFC 9000 14). */
#define PSD_DGRAM_MIN		1200

struct psd_pkt_hdr {
	uint64_t cid;
	uint64_t pn_truncated;
	unsigned int pn_len;			/* 1..4 */
	size_t hdr_len;
};

/*
 * The bytes needed for pn when the peer has acknowledged up to
 * largest_acked (any_acked false: nothing yet); 0 if more than 4 would be
 * needed (more than 2^31 packets unacknowledged: the sender must stop).
 */
unsigned int psd_pn_encode_len(uint64_t pn, uint64_t largest_acked,
			       bool any_acked);

/*
 * The full packet number closest to the next expected one (largest_rx + 1,
 * or 0 if any_rx is false) whose low pn_len bytes are truncated.
 */
uint64_t psd_pn_decode(uint64_t largest_rx, bool any_rx, uint64_t truncated,
		       unsigned int pn_len);

/*
 * Builds a packet: header for (cid, pn), then payload sealed under k, into
 * out (cap bytes). *ret_len is the packet's size. -EMSGSIZE: no room;
 * -ERANGE: pn cannot be encoded (see psd_pn_encode_len); -EINVAL: empty
 * payload.
 */
int psd_packet_seal(const struct psd_aead_key *k, uint64_t cid, uint64_t pn,
		    uint64_t largest_acked, bool any_acked,
		    const uint8_t *payload, size_t len,
		    uint8_t *out, size_t cap, size_t *ret_len);

/*
 * Parses the clear header of a received datagram. -EBADMSG if it is too
 * short to hold a header, a tag and one payload byte; -EPROTO if it is not
 * a transport data packet.
 */
int psd_packet_parse_header(const uint8_t *dgram, size_t len,
			    struct psd_pkt_hdr *ret);

/*
 * Rebuilds the packet number of h, checks and decrypts the payload into
 * out (len - h->hdr_len - PSD_AEAD_TAG_LEN bytes; out may be dgram + hdr_len).
 * -EBADMSG if the tag does not verify. The caller must still drop a
 * duplicate *ret_pn.
 */
int psd_packet_open(const struct psd_aead_key *k, const uint8_t *dgram,
		    size_t len, const struct psd_pkt_hdr *h,
		    uint64_t largest_rx, bool any_rx,
		    uint8_t *out, size_t *ret_len, uint64_t *ret_pn);

#endif /* PSD_PACKET_H */
