// SPDX-License-Identifier: GPL-2.0
/*
 * The transport's pieces one by one: QUIC varints, the frame codec (each
 * type round trip, every truncation and every limit refused, the ACK
 * range arithmetic against hand-written bytes), packet numbers (RFC 9000
 * appendix A examples), packet protection, the bounded range set, loss
 * recovery (RTT, packet and time thresholds, PTO backoff, optimistic ACKs),
 * CUBIC and the pacer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "ackranges.h"
#include "cc.h"
#include "chunkhash.h"
#include "frame.h"
#include "pacer.h"
#include "packet.h"
#include "recovery.h"
#include "varint.h"

#define MS	PSD_MSEC

TEST(varint_boundaries)
{
	static const uint64_t v[] = { 0, 63, 64, 16383, 16384, (1ull << 30) - 1,
				      1ull << 30, PSD_VARINT_MAX };
	static const size_t len[] = { 1, 1, 2, 2, 4, 4, 8, 8 };
	uint8_t b[8];
	uint64_t out;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		ASSERT_EQ(len[i], psd_varint_put(b, sizeof(b), v[i]));
		ASSERT_EQ(len[i], psd_varint_get(b, len[i], &out));
		ASSERT_EQ(v[i], out);
		/* One byte short: refused. */
		ASSERT_EQ(0, psd_varint_get(b, len[i] - 1, &out));
		ASSERT_EQ(0, psd_varint_put(b, len[i] - 1, v[i]));
	}
	ASSERT_EQ(0, psd_varint_put(b, sizeof(b), PSD_VARINT_MAX + 1));
	/* RFC 9000 A.1's example: 0x7bbd is 15293. */
	b[0] = 0x7b;
	b[1] = 0xbd;
	ASSERT_EQ(2, psd_varint_get(b, 2, &out));
	ASSERT_EQ(15293, out);
}

/* One frame of each type, as a sender would build them. */
static size_t sample_frames(struct psd_frame *f)
{
	static const uint8_t bytes[100] = { 1, 2, 3, 4, 5 };
	static const char reason[] = "bye now";
	size_t n = 0;

	f[n++] = (struct psd_frame){ .type = PSD_FRAME_PING };
	f[n] = (struct psd_frame){ .type = PSD_FRAME_ACK };
	f[n].ack.ack_delay_us = 1234;
	f[n].ack.n_ranges = 3;
	f[n].ack.r[0] = (struct psd_ack_range){ 90, 100 };
	f[n].ack.r[1] = (struct psd_ack_range){ 50, 70 };
	f[n++].ack.r[2] = (struct psd_ack_range){ 0, 0 };
	f[n] = (struct psd_frame){ .type = PSD_FRAME_REQUEST };
	f[n].req = (struct psd_frame_request){ .request_id = 77,
		.kind = PSD_REQ_MANIFEST, .prio = PSD_PRIO_BACKGROUND,
		.index = 3, .offset = 1 << 20, .length = 256 << 10 };
	memset(f[n++].req.object_id, 0xab, PSD_OBJECT_ID_LEN);
	f[n] = (struct psd_frame){ .type = PSD_FRAME_DATA };
	f[n++].data = (struct psd_frame_data){ .request_id = 77,
		.offset = 1 << 20, .len = sizeof(bytes), .bytes = bytes };
	f[n] = (struct psd_frame){ .type = PSD_FRAME_CANCEL };
	f[n++].request_id = 1ull << 40;
	f[n] = (struct psd_frame){ .type = PSD_FRAME_NOT_FOUND };
	f[n++].request_id = 5;
	f[n] = (struct psd_frame){ .type = PSD_FRAME_MAX_DATA };
	f[n++].max_data = 16 << 20;
	f[n] = (struct psd_frame){ .type = PSD_FRAME_CLOSE };
	f[n++].close = (struct psd_frame_close){ .code = 1,
		.reason_len = sizeof(reason) - 1,
		.reason = (const uint8_t *)reason };
	f[n] = (struct psd_frame){ .type = PSD_FRAME_MAX_REQUEST_DATA };
	f[n++].max_req = (struct psd_frame_max_req){ .request_id = 77,
						     .maximum = 5 << 20 };
	return n;
}

static void expect_same(struct __test_metadata *_metadata,
			const struct psd_frame *a, const struct psd_frame *b)
{
	ASSERT_EQ(a->type, b->type);
	switch (a->type) {
	case PSD_FRAME_ACK:
		ASSERT_EQ(a->ack.ack_delay_us, b->ack.ack_delay_us);
		ASSERT_EQ(a->ack.n_ranges, b->ack.n_ranges);
		ASSERT_EQ(0, memcmp(a->ack.r, b->ack.r,
				    a->ack.n_ranges * sizeof(a->ack.r[0])));
		break;
	case PSD_FRAME_REQUEST:
		ASSERT_EQ(0, memcmp(&a->req, &b->req, sizeof(a->req)));
		break;
	case PSD_FRAME_DATA:
		ASSERT_EQ(a->data.request_id, b->data.request_id);
		ASSERT_EQ(a->data.offset, b->data.offset);
		ASSERT_EQ(a->data.len, b->data.len);
		ASSERT_EQ(0, memcmp(a->data.bytes, b->data.bytes, a->data.len));
		break;
	case PSD_FRAME_CLOSE:
		ASSERT_EQ(a->close.code, b->close.code);
		ASSERT_EQ(a->close.reason_len, b->close.reason_len);
		ASSERT_EQ(0, memcmp(a->close.reason, b->close.reason,
				    a->close.reason_len));
		break;
	case PSD_FRAME_CANCEL:
	case PSD_FRAME_NOT_FOUND:
		ASSERT_EQ(a->request_id, b->request_id);
		break;
	case PSD_FRAME_MAX_DATA:
		ASSERT_EQ(a->max_data, b->max_data);
		break;
	case PSD_FRAME_MAX_REQUEST_DATA:
		ASSERT_EQ(a->max_req.request_id, b->max_req.request_id);
		ASSERT_EQ(a->max_req.maximum, b->max_req.maximum);
		break;
	default:
		break;
	}
}

TEST(frame_roundtrip_and_truncation)
{
	struct psd_frame f[16], out;
	size_t n = sample_frames(f), i, len, used, cut;
	uint8_t buf[512];

	for (i = 0; i < n; i++) {
		len = psd_frame_encode(&f[i], buf, sizeof(buf));
		ASSERT_GT(len, 0);
		ASSERT_EQ(len, psd_frame_encoded_len(&f[i]));
		ASSERT_EQ(0, psd_frame_parse(buf, len, &out, &used));
		ASSERT_EQ(len, used);
		expect_same(_metadata, &f[i], &out);
		/* No room: nothing written, nothing claimed. */
		ASSERT_EQ(0, psd_frame_encode(&f[i], buf, len - 1));
		for (cut = 0; cut < len && f[i].type != PSD_FRAME_PING; cut++)
			ASSERT_EQ(-EBADMSG, psd_frame_parse(buf, cut, &out, &used));
	}
}

TEST(ack_ranges_from_bytes)
{
	/* largest 10, delay 0, 1 more range, first 2 (8..10), gap 1, len 3 */
	const uint8_t ok[] = { 0x02, 10, 0, 1, 2, 1, 3 };
	/* The same, but the second range would end below zero. */
	const uint8_t below[] = { 0x02, 10, 0, 1, 2, 1, 6 };
	/* First range larger than largest. */
	const uint8_t first[] = { 0x02, 10, 0, 0, 11 };
	/* A gap reaching below zero. */
	const uint8_t gap[] = { 0x02, 10, 0, 1, 2, 7, 0 };
	uint8_t many[3 + 2 * PSD_ACK_RANGES_MAX + 2] = { 0x02, 63, 0 };
	struct psd_frame f;
	size_t used;
	int i;

	ASSERT_EQ(0, psd_frame_parse(ok, sizeof(ok), &f, &used));
	ASSERT_EQ(2, f.ack.n_ranges);
	ASSERT_EQ(10, f.ack.r[0].hi);
	ASSERT_EQ(8, f.ack.r[0].lo);
	ASSERT_EQ(5, f.ack.r[1].hi);
	ASSERT_EQ(2, f.ack.r[1].lo);
	ASSERT_EQ(-EBADMSG, psd_frame_parse(below, sizeof(below), &f, &used));
	ASSERT_EQ(-EBADMSG, psd_frame_parse(first, sizeof(first), &f, &used));
	ASSERT_EQ(-EBADMSG, psd_frame_parse(gap, sizeof(gap), &f, &used));
	/* 63 with single-packet ranges every other number: 32 fit, 33 do not. */
	many[3] = PSD_ACK_RANGES_MAX - 1;
	many[4] = 0;
	for (i = 0; i < PSD_ACK_RANGES_MAX - 1; i++) {
		many[5 + 2 * i] = 0;
		many[6 + 2 * i] = 0;
	}
	ASSERT_EQ(0, psd_frame_parse(many, 5 + 2 * (PSD_ACK_RANGES_MAX - 1),
				     &f, &used));
	ASSERT_EQ(PSD_ACK_RANGES_MAX, f.ack.n_ranges);
	ASSERT_EQ(63 - 2 * (PSD_ACK_RANGES_MAX - 1),
		  f.ack.r[PSD_ACK_RANGES_MAX - 1].lo);
	many[3] = PSD_ACK_RANGES_MAX;
	ASSERT_EQ(-EBADMSG, psd_frame_parse(many, sizeof(many), &f, &used));
}

TEST(frame_limits)
{
	struct psd_frame f[16], out;
	uint8_t buf[512], unknown[] = { 0x03 }, unknown2[] = { 0x40, 0x20 };
	size_t used, len;

	sample_frames(f);
	ASSERT_EQ(-EPROTO, psd_frame_parse(unknown, 1, &out, &used));
	ASSERT_EQ(-EPROTO, psd_frame_parse(unknown2, 2, &out, &used));
	/* REQUEST: each limit refused on both sides. */
	f[2].req.length = 0;
	ASSERT_EQ(0, psd_frame_encode(&f[2], buf, sizeof(buf)));
	f[2].req.length = PSD_REQUEST_LEN_MAX + 1ull;
	ASSERT_EQ(0, psd_frame_encode(&f[2], buf, sizeof(buf)));
	f[2].req.length = 1;
	f[2].req.request_id = 7;		/* one byte: kind at [2] */
	len = psd_frame_encode(&f[2], buf, sizeof(buf));
	ASSERT_GT(len, 0);
	buf[2] = __PSD_REQ_KIND_MAX;		/* kind follows type and id */
	ASSERT_EQ(-EBADMSG, psd_frame_parse(buf, len, &out, &used));
	buf[2] = 0;
	buf[3] = __PSD_PRIO_MAX;
	ASSERT_EQ(-EBADMSG, psd_frame_parse(buf, len, &out, &used));
	/* DATA of no bytes; CLOSE with an overlong reason. */
	f[3].data.len = 0;
	ASSERT_EQ(0, psd_frame_encode(&f[3], buf, sizeof(buf)));
	buf[0] = PSD_FRAME_DATA;
	buf[1] = 1;
	buf[2] = 0;
	buf[3] = 0;
	ASSERT_EQ(-EBADMSG, psd_frame_parse(buf, 4, &out, &used));
	f[7].close.reason_len = PSD_CLOSE_REASON_MAX + 1;
	ASSERT_EQ(0, psd_frame_encode(&f[7], buf, sizeof(buf)));
	/* PADDING swallows the run of zeros. */
	memset(buf, 0, 10);
	buf[10] = PSD_FRAME_PING;
	ASSERT_EQ(0, psd_frame_parse(buf, 11, &out, &used));
	ASSERT_EQ(PSD_FRAME_PADDING, out.type);
	ASSERT_EQ(10, used);
}

TEST(packet_numbers_rfc9000_examples)
{
	uint64_t pn;

	/* A.2: 0xac5c02 with 0xabe8b3 acked needs 16 bits, 0xace8fe 24. */
	ASSERT_EQ(2, psd_pn_encode_len(0xac5c02, 0xabe8b3, true));
	ASSERT_EQ(3, psd_pn_encode_len(0xace8fe, 0xabe8b3, true));
	ASSERT_EQ(1, psd_pn_encode_len(0, 0, false));
	ASSERT_EQ(0, psd_pn_encode_len(5, 5, true));
	/* A.3: 0x9b32 after 0xa82f30ea is 0xa82f9b32. */
	ASSERT_EQ(0xa82f9b32ull, psd_pn_decode(0xa82f30ea, true, 0x9b32, 2));
	/* Round trips around byte boundaries, reordered by up to the window. */
	for (pn = 0; pn < 70000; pn += 97) {
		uint64_t largest_acked = pn > 100 ? pn - 100 : 0;
		unsigned int len = psd_pn_encode_len(pn, largest_acked, pn > 100);
		uint64_t mask = (1ull << (8 * len)) - 1;
		uint64_t largest_rx = pn > 50 ? pn - 50 : 0;

		ASSERT_EQ(pn, psd_pn_decode(largest_rx, pn > 50, pn & mask, len));
		ASSERT_EQ(pn, psd_pn_decode(pn + 40, true, pn & mask, len));
	}
}

TEST(packet_seal_open_tamper)
{
	uint8_t k1[PSD_AEAD_KEY_LEN], payload[100], pkt[200], out[200];
	struct psd_aead_key key, other;
	struct psd_pkt_hdr h;
	size_t len, out_len, i;
	uint64_t pn;

	ASSERT_EQ(0, psd_chunkhash_init());
	memset(k1, 7, sizeof(k1));
	ASSERT_EQ(0, psd_aead_key_init(&key, PSD_AEAD_CHACHA20_POLY1305, k1));
	k1[0] ^= 1;
	ASSERT_EQ(0, psd_aead_key_init(&other, PSD_AEAD_CHACHA20_POLY1305, k1));
	for (i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;
	ASSERT_EQ(0, psd_packet_seal(&key, 0x0102030405060708ull, 1000, 990,
				     true, payload, sizeof(payload), pkt,
				     sizeof(pkt), &len));
	ASSERT_EQ(1 + 8 + 1 + sizeof(payload) + PSD_AEAD_TAG_LEN, len);
	ASSERT_EQ(PSD_PKT_TYPE_DATA << 2, pkt[0]);
	ASSERT_EQ(0x01, pkt[1]);
	ASSERT_EQ(0x08, pkt[8]);
	ASSERT_EQ(0, psd_packet_parse_header(pkt, len, &h));
	ASSERT_EQ(0x0102030405060708ull, h.cid);
	ASSERT_EQ(0, psd_packet_open(&key, pkt, len, &h, 995, true, out,
				     &out_len, &pn));
	ASSERT_EQ(1000, pn);
	ASSERT_EQ(sizeof(payload), out_len);
	ASSERT_EQ(0, memcmp(payload, out, out_len));
	ASSERT_EQ(-EBADMSG, psd_packet_open(&other, pkt, len, &h, 995, true,
					    out, &out_len, &pn));
	/* Any flipped bit past the type byte fails the tag. */
	for (i = 1; i < len; i++) {
		pkt[i] ^= 0x10;
		if (psd_packet_parse_header(pkt, len, &h) == 0)
			ASSERT_NE(0, psd_packet_open(&key, pkt, len, &h, 995,
						     true, out, &out_len, &pn));
		pkt[i] ^= 0x10;
	}
	ASSERT_EQ(-EPROTO, psd_packet_parse_header((uint8_t[40]){ 1 }, 40, &h));
	ASSERT_EQ(-EBADMSG, psd_packet_parse_header(pkt, 1 + 8 + 1 + 16, &h));
	ASSERT_EQ(-EMSGSIZE, psd_packet_seal(&key, 1, 1, 0, true, payload,
					     sizeof(payload), pkt, 100, &len));
}

TEST(ranges_bounded)
{
	struct psd_ranges s;
	struct psd_frame_ack a;
	uint64_t v;

	ASSERT_EQ(0, psd_ranges_init(&s, 8, true));
	for (v = 0; v < 100; v++)
		ASSERT_EQ(0, psd_ranges_add(&s, v, v));
	ASSERT_EQ(1, s.n);
	ASSERT_TRUE(psd_ranges_is_exactly(&s, 0, 99));
	/* Every other number from a hostile sender: capped, oldest forgotten. */
	for (v = 200; v < 10000; v += 2)
		ASSERT_EQ(0, psd_ranges_add(&s, v, v));
	ASSERT_EQ(8, s.n);
	ASSERT_TRUE(psd_ranges_contains(&s, 9998));
	ASSERT_FALSE(psd_ranges_contains(&s, 9997));
	ASSERT_TRUE(psd_ranges_contains(&s, 150));	/* below the floor */
	psd_ranges_to_ack(&s, 3, 5, &a);
	ASSERT_EQ(3, a.n_ranges);
	ASSERT_EQ(9998, a.r[0].hi);
	ASSERT_EQ(9996, a.r[1].hi);
	/* Filling a gap merges its neighbours. */
	ASSERT_EQ(0, psd_ranges_add(&s, 9997, 9997));
	ASSERT_EQ(9996, s.r[0].lo);
	ASSERT_EQ(-EINVAL, psd_ranges_add(&s, 5, 4));
	psd_ranges_free(&s);

	ASSERT_EQ(0, psd_ranges_init(&s, 2, false));
	ASSERT_EQ(0, psd_ranges_add(&s, 0, 9));
	ASSERT_EQ(0, psd_ranges_add(&s, 20, 29));
	ASSERT_EQ(-ENOSPC, psd_ranges_add(&s, 40, 49));
	/* What of 5..24 is held: 5..9 and 20..24. */
	ASSERT_EQ(10, psd_ranges_count_in(&s, 5, 24));
	ASSERT_EQ(0, psd_ranges_count_in(&s, 10, 19));
	ASSERT_EQ(20, psd_ranges_count_in(&s, 0, 100));
	ASSERT_EQ(0, psd_ranges_add(&s, 5, 25));	/* bridges both */
	ASSERT_TRUE(psd_ranges_is_exactly(&s, 0, 29));
	psd_ranges_free(&s);
}

/* ---- recovery and congestion control -------------------------------------- */

struct counts {
	unsigned int acked, lost;
};

static void count_acked(void *ctx, const struct psd_sent_frame *f)
{
	(void)f;
	((struct counts *)ctx)->acked++;
}

static void count_lost(void *ctx, const struct psd_sent_frame *f)
{
	(void)f;
	((struct counts *)ctx)->lost++;
}

static const struct psd_recovery_ops count_ops = {
	.on_frame_acked = count_acked, .on_frame_lost = count_lost,
};

static uint64_t send_one(struct psd_recovery *r, uint64_t now)
{
	struct psd_sent_frame f = { .type = PSD_FRAME_PING };
	uint64_t pn = psd_recovery_take_pn(r);

	psd_recovery_on_sent(r, pn, now, 1200, true, &f, 1);
	return pn;
}

static struct psd_frame_ack ack_of(uint64_t lo, uint64_t hi)
{
	struct psd_frame_ack a = { .n_ranges = 1 };

	a.r[0] = (struct psd_ack_range){ lo, hi };
	return a;
}

TEST(recovery_rtt_and_thresholds)
{
	struct psd_recovery r;
	struct counts n = { 0 };
	struct psd_frame_ack a;
	struct psd_cc cc;
	uint64_t bad, pn[5];
	int i;

	psd_cc_init(&cc, &psd_cc_cubic, 1200, 0);
	ASSERT_EQ(0, psd_recovery_init(&r, &cc, &count_ops, &n, 42));
	for (i = 0; i < 5; i++)
		pn[i] = send_one(&r, i * MS);
	ASSERT_EQ(5 * 1200, r.bytes_in_flight);
	/* pn 4 acked 100 ms after it left: 0 and 1 are 3+ behind, lost. */
	a = ack_of(pn[4], pn[4]);
	ASSERT_EQ(1, psd_recovery_on_ack(&r, &a, 104 * MS, &bad));
	ASSERT_EQ(100 * MS, r.rtt.smoothed);
	ASSERT_EQ(50 * MS, r.rtt.var);
	ASSERT_EQ(2, n.lost);
	ASSERT_EQ(1, n.acked);
	/* 2 and 3 wait for the time threshold: 9/8 RTT after they left. */
	ASSERT_EQ(2 * MS + 100 * MS * 9 / 8, psd_recovery_timer(&r));
	ASSERT_EQ(0, psd_recovery_on_timeout(&r, psd_recovery_timer(&r)));
	ASSERT_EQ(3, n.lost);
	ASSERT_EQ(3 * MS + 100 * MS * 9 / 8, psd_recovery_timer(&r));
	ASSERT_EQ(0, psd_recovery_on_timeout(&r, psd_recovery_timer(&r)));
	ASSERT_EQ(4, n.lost);
	ASSERT_EQ(0, r.bytes_in_flight);
	ASSERT_EQ(UINT64_MAX, psd_recovery_timer(&r));
	/* pn 4's ACK grew the window by a packet (slow start), then one
	 * congestion event took it to 0.7x. */
	ASSERT_EQ((PSD_CC_INITIAL_WINDOW(1200) + 1200) * 7 / 10, cc.cwnd);
	/* A late ACK of a lost packet is spurious: the thresholds widen. */
	a = ack_of(pn[0], pn[1]);
	ASSERT_EQ(0, psd_recovery_on_ack(&r, &a, 200 * MS, &bad));
	ASSERT_EQ(2, r.spurious_losses);
	ASSERT_EQ(5, r.pkt_threshold);
	psd_recovery_free(&r);
}

TEST(recovery_pto_backoff)
{
	struct psd_recovery r;
	struct counts n = { 0 };
	struct psd_cc cc;
	uint64_t t0, t1;
	int i;

	psd_cc_init(&cc, NULL, 1200, 0);
	ASSERT_EQ(0, psd_recovery_init(&r, &cc, &count_ops, &n, 1));
	send_one(&r, 0);
	/* No RTT sample: 333 ms initial, PTO = 333 + 4 * 166.5 + 25 ms. */
	t0 = psd_recovery_timer(&r);
	ASSERT_EQ(psd_recovery_pto(&r), t0);
	ASSERT_EQ(2, psd_recovery_on_timeout(&r, t0));
	t1 = psd_recovery_timer(&r);
	ASSERT_EQ(2 * t0, t1);
	ASSERT_EQ(2, psd_recovery_on_timeout(&r, t1));
	ASSERT_EQ(4 * t0, psd_recovery_timer(&r));
	ASSERT_EQ(0, n.lost);		/* a PTO declares nothing lost */
	/* The backoff stops at 5 s: it must not outgrow the idle timeout. */
	for (i = 0; i < 10; i++)
		psd_recovery_on_timeout(&r, psd_recovery_timer(&r));
	ASSERT_EQ(PSD_PTO_INTERVAL_MAX, psd_recovery_timer(&r));
	psd_recovery_free(&r);
}

TEST(recovery_optimistic_ack)
{
	struct psd_recovery r;
	struct counts n = { 0 };
	struct psd_frame_ack a;
	struct psd_cc cc;
	uint64_t bad = 0, pn, prev = 0, skipped = UINT64_MAX;
	int i;

	psd_cc_init(&cc, NULL, 1200, 0);
	ASSERT_EQ(0, psd_recovery_init(&r, &cc, &count_ops, &n, 7));
	/* Beyond what was sent. */
	pn = send_one(&r, 0);
	a = ack_of(0, pn + 1);
	ASSERT_EQ(-EPROTO, psd_recovery_on_ack(&r, &a, MS, &bad));
	ASSERT_EQ(pn + 1, bad);
	/* Send until a number is skipped (within the skip interval). */
	for (i = 0; i < 1000 && skipped == UINT64_MAX; i++) {
		prev = pn;
		pn = send_one(&r, MS);
		if (pn != prev + 1)
			skipped = prev + 1;
	}
	ASSERT_NE(UINT64_MAX, skipped);
	/* An honest ACK leaves the skipped number out; a liar covers it. */
	a.n_ranges = 2;
	a.r[0] = (struct psd_ack_range){ skipped + 1, pn };
	a.r[1] = (struct psd_ack_range){ 0, skipped - 1 };
	ASSERT_LT(0, psd_recovery_on_ack(&r, &a, 2 * MS, &bad));
	a = ack_of(0, pn);
	ASSERT_EQ(-EPROTO, psd_recovery_on_ack(&r, &a, 3 * MS, &bad));
	ASSERT_EQ(skipped, bad);
	psd_recovery_free(&r);
}

TEST(cubic_reduction_and_growth)
{
	struct psd_rtt rtt = { .latest = 50 * MS, .smoothed = 50 * MS,
			       .var = 5 * MS, .min = 50 * MS };
	struct psd_cc cc;
	uint64_t w, t;

	psd_cc_init(&cc, &psd_cc_cubic, 1200, 0);
	/* Slow start: the window grows by what is acknowledged. */
	cc.ops->on_acked(&cc, 10 * MS, 1200, 1 * MS, cc.cwnd, &rtt);
	ASSERT_EQ(PSD_CC_INITIAL_WINDOW(1200) + 1200, cc.cwnd);
	cc.cwnd = 100 * 1200;
	cc.ops->on_lost(&cc, 100 * MS, 1200, 90 * MS);
	ASSERT_EQ(70 * 1200, cc.cwnd);
	ASSERT_EQ(70 * 1200, cc.ssthresh);
	/* Another loss from the same flight: no second reduction. */
	cc.ops->on_lost(&cc, 101 * MS, 1200, 95 * MS);
	ASSERT_EQ(70 * 1200, cc.cwnd);
	/* Congestion avoidance: back towards W_max (100) over K seconds. */
	w = cc.cwnd;
	for (t = 110 * MS; t < 5000 * MS; t += MS)
		cc.ops->on_acked(&cc, t, 1200, t - 50 * MS, cc.cwnd, &rtt);
	ASSERT_GT(cc.cwnd, w);
	ASSERT_GT(cc.cwnd, 100 * 1200);	/* past the plateau by then */
	cc.ops->on_persistent_congestion(&cc, 6000 * MS);
	ASSERT_EQ(PSD_CC_MIN_WINDOW(1200), cc.cwnd);
}

/*
 * LEDBAT's current delay is the smallest RTT of the last few ACKs: one
 * ACK 150 ms late (a receiver that was not scheduled) does not shrink
 * the window; four in a row (a queue) do.
 */
TEST(ledbat_filters_one_late_ack)
{
	struct psd_rtt rtt = { .latest = 50 * MS, .smoothed = 50 * MS,
			       .var = 5 * MS, .min = 50 * MS };
	struct psd_cc cc;
	uint64_t t = 0, w;

	psd_cc_init(&cc, &psd_cc_ledbat, 1200, 0);
	cc.cwnd = 100 * 1200;
	cc.ops->on_lost(&cc, 1 * MS, 1200, 0);	/* out of slow start */
	for (int i = 0; i < 8; i++) {
		t += MS;
		cc.ops->on_acked(&cc, t, 1200, t, cc.cwnd, &rtt);
	}
	w = cc.cwnd;
	rtt.latest = 200 * MS;
	t += MS;
	cc.ops->on_acked(&cc, t, 1200, t, cc.cwnd, &rtt);
	EXPECT_GE(cc.cwnd, w);
	for (int i = 0; i < PSD_LEDBAT_CURRENT_FILTER; i++) {
		t += MS;
		cc.ops->on_acked(&cc, t, 1200, t, cc.cwnd, &rtt);
	}
	EXPECT_LT(cc.cwnd, w);
}

/*
 * A paced, window-limited sender over a FIFO bottleneck of one 1200-byte packet
 * per ms (1.2 MB/s) and 50 ms of delay after it, every drop_every-th
 * packet lost (0: none), each packet acknowledged on its own.
 */
static void drive_bottleneck(struct psd_recovery *r, unsigned int drop_every,
			     uint64_t until)
{
	static struct {
		uint64_t pn, ack_at;
		bool lost;
	} q[2048];
	unsigned int head = 0, n = 0, sent = 0;
	uint64_t now, link_free = 0, bad;
	struct psd_pacer p;

	psd_pacer_init(&p, 0, PSD_CC_INITIAL_WINDOW(1200), 0);
	for (now = 0; now < until; now += MS / 10) {
		for (; n && q[head].ack_at <= now; head = (head + 1) % 2048, n--) {
			struct psd_frame_ack a = ack_of(q[head].pn, q[head].pn);

			if (!q[head].lost)
				psd_recovery_on_ack(r, &a, now, &bad);
		}
		if (psd_recovery_timer(r) <= now)
			psd_recovery_on_timeout(r, now);
		while (r->bytes_in_flight + 1200 <= r->cc->cwnd && n < 2048 &&
		       psd_pacer_next(&p, now, 1200) <= now) {
			unsigned int k = (head + n++) % 2048;

			psd_pacer_set(&p, psd_cc_pacing_rate(r->cc,
							     r->rtt.smoothed),
				      PSD_CC_INITIAL_WINDOW(1200), now);
			psd_pacer_on_sent(&p, now, 1200);
			link_free = (link_free > now ? link_free : now) + MS;
			q[k].pn = send_one(r, now);
			q[k].ack_at = link_free + 50 * MS;
			q[k].lost = drop_every && ++sent % drop_every == 0;
		}
	}
}

static uint64_t bbr_max_bw(const struct psd_cc *cc)
{
	uint64_t bw = 0;
	unsigned int i;

	for (i = 0; i < PSD_BBR_BW_ROUNDS; i++)
		if (cc->bbr.bw_round_max[i] > bw)
			bw = cc->bbr.bw_round_max[i];
	return bw;
}

TEST(bbr_model_of_a_bottleneck)
{
	struct psd_recovery r;
	struct counts n = { 0 };
	struct psd_cc cc;
	uint64_t bdp = 1200000ull * 51 / 1000;

	/* Lossless: the rate samples find the bottleneck, the window 2 BDP. */
	psd_cc_init(&cc, NULL, 1200, 0);
	ASSERT_EQ(&psd_cc_bbr, cc.ops);		/* the default */
	ASSERT_EQ(0, psd_recovery_init(&r, &cc, &count_ops, &n, 3));
	drive_bottleneck(&r, 0, 3 * PSD_NSEC);
	EXPECT_TRUE(cc.bbr.filled_pipe);
	EXPECT_EQ(51 * MS, cc.bbr.min_rtt);
	EXPECT_GE(bbr_max_bw(&cc), 1200000 * 95 / 100);
	EXPECT_LE(bbr_max_bw(&cc), 1200000 * 105 / 100);
	EXPECT_GE(cc.cwnd, 2 * bdp * 95 / 100);
	EXPECT_LE(cc.cwnd, 2 * bdp * 105 / 100 + 3 * 1200);
	EXPECT_EQ(0, n.lost);
	psd_recovery_free(&r);

	/* 5% random loss: the estimate and the window hold (CUBIC's would
	 * not), the loss response stops above one BDP. */
	n = (struct counts){ 0 };
	psd_cc_init(&cc, NULL, 1200, 0);
	ASSERT_EQ(0, psd_recovery_init(&r, &cc, &count_ops, &n, 4));
	drive_bottleneck(&r, 20, 3 * PSD_NSEC);
	EXPECT_GT(n.lost, 50);
	EXPECT_GE(bbr_max_bw(&cc), 1200000 * 85 / 100);
	EXPECT_GE(cc.cwnd, bdp * 85 / 100);
	EXPECT_GE(cc.pacing_rate, 1200000 * 85 / 100 * 3 / 4);
	psd_recovery_free(&r);
}

TEST(pacer_spreads_packets)
{
	struct psd_pacer p;

	/* 1.2 MB/s, bucket of two packets. */
	psd_pacer_init(&p, 1200000, 2400, 0);
	ASSERT_EQ(0, psd_pacer_next(&p, 0, 1200));
	psd_pacer_on_sent(&p, 0, 1200);
	psd_pacer_on_sent(&p, 0, 1200);
	ASSERT_EQ(1 * MS, psd_pacer_next(&p, 0, 1200));
	ASSERT_EQ(1 * MS, psd_pacer_next(&p, MS / 2, 1200));
	psd_pacer_on_sent(&p, MS, 1200);
	ASSERT_EQ(2 * MS, psd_pacer_next(&p, MS, 1200));
	/* Idle for long: no more than the burst is saved up. */
	ASSERT_EQ(10 * PSD_NSEC, psd_pacer_next(&p, 10 * PSD_NSEC, 2400));
	ASSERT_GT(psd_pacer_next(&p, 10 * PSD_NSEC, 3600), 10 * PSD_NSEC);
}

TEST_HARNESS_MAIN
