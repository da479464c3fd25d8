// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the transport's parsers of network bytes. The input
 * is taken as a packet (header parse, packet number rebuild, open under a
 * fixed key: it must fail unless the fuzzer forged a tag) and as a
 * decrypted payload: frames are parsed one after the other as a connection
 * does. Every accepted frame must satisfy the limits the connection relies
 * on, must encode back to the same bytes' meaning, and its ACK ranges go
 * into a bounded range set that must stay bounded. Last, the same bytes
 * are sealed as the payloads of two packets and handed to a fresh server
 * and a fresh client connection, which answer in between: whatever they
 * make of it, the server keeps to its 3x limit before validation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ackranges.h"
#include "conn.h"
#include "frame.h"
#include "packet.h"
#include "varint.h"

static void check_ack(const struct psd_frame_ack *a)
{
	struct psd_ranges s;
	unsigned int i;

	if (a->n_ranges == 0 || a->n_ranges > PSD_ACK_RANGES_MAX)
		abort();
	for (i = 0; i < a->n_ranges; i++) {
		if (a->r[i].lo > a->r[i].hi || a->r[i].hi > PSD_VARINT_MAX)
			abort();
		if (i && a->r[i].hi + 2 > a->r[i - 1].lo)
			abort();
	}
	if (psd_ranges_init(&s, 4, true))
		abort();
	for (i = 0; i < a->n_ranges; i++)
		if (psd_ranges_add(&s, a->r[i].lo, a->r[i].hi) ||
		    !psd_ranges_contains(&s, a->r[i].hi) || s.n > 4)
			abort();
	psd_ranges_free(&s);
}

static void check_frame(const struct psd_frame *f, const uint8_t *end)
{
	switch (f->type) {
	case PSD_FRAME_ACK:
		check_ack(&f->ack);
		break;
	case PSD_FRAME_REQUEST:
		if (f->req.length == 0 || f->req.length > PSD_REQUEST_LEN_MAX ||
		    f->req.offset + f->req.length > PSD_OFFSET_MAX ||
		    f->req.kind >= __PSD_REQ_KIND_MAX ||
		    f->req.prio >= __PSD_PRIO_MAX)
			abort();
		break;
	case PSD_FRAME_DATA:
		if (f->data.len == 0 || f->data.bytes + f->data.len > end ||
		    f->data.offset + f->data.len > PSD_OFFSET_MAX)
			abort();
		break;
	case PSD_FRAME_CLOSE:
		if (f->close.reason_len > PSD_CLOSE_REASON_MAX ||
		    f->close.reason + f->close.reason_len > end)
			abort();
		break;
	default:
		break;
	}
}

/* What the parser accepted, the encoder writes and the parser reads back. */
static void check_roundtrip(const struct psd_frame *f)
{
	static uint8_t buf[PSD_REQUEST_LEN_MAX / 1024 + 4096];
	struct psd_frame again;
	size_t len, used;

	if (f->type == PSD_FRAME_PADDING ||
	    (f->type == PSD_FRAME_DATA && f->data.len > sizeof(buf) - 64))
		return;
	len = psd_frame_encode(f, buf, sizeof(buf));
	if (len == 0 || psd_frame_parse(buf, len, &again, &used) ||
	    used != len || again.type != f->type)
		abort();
	if (f->type == PSD_FRAME_ACK &&
	    (again.ack.n_ranges != f->ack.n_ranges ||
	     memcmp(again.ack.r, f->ack.r, f->ack.n_ranges * sizeof(f->ack.r[0]))))
		abort();
}

static void fuzz_payload(const uint8_t *data, size_t size)
{
	struct psd_frame f;
	size_t pos = 0, used;

	while (pos < size) {
		if (psd_frame_parse(data + pos, size - pos, &f, &used))
			return;
		if (used == 0 || used > size - pos)
			abort();
		check_frame(&f, data + size);
		check_roundtrip(&f);
		pos += used;
	}
}

static void fuzz_packet(const uint8_t *data, size_t size)
{
	static uint8_t out[65536];
	struct psd_aead_key key = { .alg = PSD_AEAD_CHACHA20_POLY1305 };
	struct psd_pkt_hdr h;
	size_t out_len;
	uint64_t pn;

	if (size > sizeof(out) || psd_packet_parse_header(data, size, &h))
		return;
	if (h.hdr_len > size || h.pn_len < 1 || h.pn_len > 4 ||
	    h.pn_truncated >> (8 * h.pn_len))
		abort();
	memset(key.key, 0x5a, sizeof(key.key));
	if (psd_packet_open(&key, data, size, &h, size * 1000, size & 1, out,
			    &out_len, &pn) == 0 &&
	    out_len != size - h.hdr_len - PSD_AEAD_TAG_LEN)
		abort();
}

/* ---- a connection fed hostile payloads ---------------------------------- */

#define PAYLOAD_MAX	(PSD_DGRAM_MIN - PSD_PKT_OVERHEAD_MAX)

static int serve_all(void *ctx, const struct psd_frame_request *req)
{
	(void)ctx;
	return req->object_id[0] & 1 ? -ENOENT : 0;
}

static int read_zeros(void *ctx, const struct psd_frame_request *req,
		      uint64_t offset, uint8_t *buf, size_t len)
{
	(void)ctx;
	(void)req;
	(void)offset;
	memset(buf, 0, len);
	return 0;
}

static void on_response(void *ctx, uint64_t id, const uint8_t *b, size_t len)
{
	(void)ctx;
	(void)id;
	(void)b;
	(void)len;
}

static const struct psd_conn_app app = {
	.on_request = serve_all, .read = read_zeros, .on_response = on_response,
};

static void feed(struct psd_conn *c, const struct psd_aead_key *k,
		 uint64_t pn, const uint8_t *data, size_t size, uint64_t now)
{
	uint8_t payload[PSD_DGRAM_MIN], pkt[PSD_DGRAM_MIN];
	size_t body = PSD_DGRAM_MIN - (1 + PSD_PKT_CID_LEN + 1) -
		      PSD_AEAD_TAG_LEN, len;

	if (size > body)
		size = body;
	memset(payload, 0, sizeof(payload));
	memcpy(payload, data, size);
	if (psd_packet_seal(k, 1, pn, 0, false, payload, body, pkt,
			    sizeof(pkt), &len))
		abort();
	psd_conn_recv(c, pkt, len, now);
}

static void drain(struct psd_conn *c, uint64_t now)
{
	uint8_t buf[PSD_DGRAM_MIN];
	const struct psd_conn_stats *st = psd_conn_stats(c);
	int i;

	psd_conn_on_timeout(c, now);
	for (i = 0; i < 64 && psd_conn_send(c, buf, sizeof(buf), now); i++)
		if (!psd_conn_address_validated(c) &&
		    st->tx_bytes > 3 * st->rx_bytes)
			abort();
}

static void fuzz_conn(const uint8_t *data, size_t size, bool server)
{
	struct psd_conn_config cfg = { .server = server, .local_cid = 1,
				       .peer_cid = 2, .app = &app };
	uint8_t k[PSD_AEAD_KEY_LEN], id[PSD_OBJECT_ID_LEN] = { 0 };
	size_t half = size / 2;
	struct psd_conn *c;
	uint64_t rid;

	memset(k, 0x33, sizeof(k));
	if (psd_aead_key_init(&cfg.rx_key, PSD_AEAD_CHACHA20_POLY1305, k) ||
	    psd_aead_key_init(&cfg.tx_key, PSD_AEAD_CHACHA20_POLY1305, k) ||
	    psd_conn_new(&cfg, 0, &c))
		abort();
	if (!server) {
		psd_conn_request(c, PSD_REQ_CHUNK, id, 0, 0, 4096,
				 PSD_PRIO_DEMAND, &rid);
		psd_conn_request(c, PSD_REQ_CHUNK, id, 0, 8192, 70000,
				 PSD_PRIO_DEMAND, &rid);
		drain(c, 0);
	}
	feed(c, &cfg.rx_key, 0, data, half, 1000);
	drain(c, 2000);
	feed(c, &cfg.rx_key, 1, data + half, size - half, 50 * PSD_MSEC);
	drain(c, 60 * PSD_MSEC);
	psd_conn_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready) {
		if (sodium_init() < 0)
			abort();
		ready = 1;
	}
	fuzz_packet(data, size);
	fuzz_payload(data, size);
	fuzz_conn(data, size, true);
	fuzz_conn(data, size, false);
	return 0;
}
