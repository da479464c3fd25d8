// SPDX-License-Identifier: GPL-2.0
/*
 * The transport over the simulated network (sim.h): a client requests N
 * chunks from a server; every response must be exactly the bytes the
 * server's object holds (a position-dependent pattern), delivered once.
 * Each case checks, at every step of the simulation, that no packet
 * number is used twice, that the server keeps to the 3x limit before the
 * client's address is validated, that DATA stays inside the flow-control
 * credit, and that what a connection holds stays within its bounds.
 * Goodput is computed from the simulator's clock and the bytes delivered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "chunkhash.h"
#include "conn.h"
#include "packet.h"
#include "sim.h"

#define KiB		(1ull << 10)
#define MiB		(1ull << 20)
#define MS		PSD_MSEC
#define SEC		PSD_NSEC
#define MBIT		1000000ull
#define CLIENT_CID	0x1111222233334444ull
#define SERVER_CID	0x5555666677778888ull
#define MISSING_INDEX	0xdeadull	/* the server does not hold this one */

/* ---- the objects the server holds ---------------------------------------- */

static void object_id(uint64_t index, uint8_t id[PSD_OBJECT_ID_LEN])
{
	int i;

	memset(id, 0xa5, PSD_OBJECT_ID_LEN);
	for (i = 0; i < 8; i++)
		id[i] = (uint8_t)(index >> 8 * i);
}

static uint64_t id_index(const uint8_t id[PSD_OBJECT_ID_LEN])
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | id[i];
	return v;
}

static uint8_t pattern(uint64_t index, uint64_t off)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ index * 0xff51afd7ed558ccdull;

	return (uint8_t)(x >> 29);
}

static int srv_on_request(void *ctx, const struct psd_frame_request *req)
{
	(void)ctx;
	return id_index(req->object_id) == MISSING_INDEX ? -ENOENT : 0;
}

static int srv_read(void *ctx, const struct psd_frame_request *req,
		    uint64_t offset, uint8_t *buf, size_t len)
{
	uint64_t index = id_index(req->object_id);
	size_t i;

	(void)ctx;
	for (i = 0; i < len; i++)
		buf[i] = pattern(index, offset + i);
	return 0;
}

/* ---- a transfer ----------------------------------------------------------- */

struct transfer {
	struct sim sim;
	struct sim_conn cli, srv;
	unsigned int n_chunks, max_outstanding;
	uint64_t chunk_len, start_at;
	unsigned int issued, completed, not_found;
	uint64_t req_index[1024];		/* request id -> chunk */
	uint64_t req_len[1024];			/* request id -> length */
	uint8_t done[1024];
	unsigned int done_rank[1024];		/* completions before it */
	uint64_t done_at[1024];
	uint64_t delivered;
	unsigned int bad_bytes, duplicates;
	/* Goodput window: from when mark_bytes were delivered to the end. */
	uint64_t mark_bytes, mark_time, mark_delivered, end_time;
	/* Invariants, counted at every step. */
	uint64_t amp_violations, credit_violations, bound_violations;
	uint64_t srv_tx_before_validation;
	char peer_close[64];		/* "code reason" the server got */
};

static void cli_on_response(void *ctx, uint64_t id, const uint8_t *bytes,
			    size_t len)
{
	struct transfer *t = ctx;
	uint64_t index, i;

	if (id >= t->issued || t->done[id]) {
		t->duplicates++;
		return;
	}
	index = t->req_index[id];
	t->done[id] = 1;
	t->done_rank[id] = t->completed;
	t->done_at[id] = t->sim.now;
	if (len != t->req_len[id])
		t->bad_bytes++;
	for (i = 0; i < len; i++)
		if (bytes[i] != pattern(index, i)) {
			t->bad_bytes++;
			break;
		}
	t->completed++;
	t->delivered += len;
}

static void cli_on_not_found(void *ctx, uint64_t id)
{
	struct transfer *t = ctx;

	if (id < t->issued && !t->done[id]) {
		t->done[id] = 1;
		t->not_found++;
	}
}

static const struct psd_conn_app client_app = {
	.on_response = cli_on_response,
	.on_not_found = cli_on_not_found,
};

static void srv_on_close(void *ctx, bool by_peer, uint64_t code,
			 const char *reason)
{
	struct transfer *t = ctx;

	if (by_peer)
		snprintf(t->peer_close, sizeof(t->peer_close), "%llu %s",
			 (unsigned long long)code, reason);
}

static const struct psd_conn_app server_app = {
	.on_request = srv_on_request,
	.read = srv_read,
	.on_close = srv_on_close,
};

static void test_keys(struct psd_aead_key *c2s, struct psd_aead_key *s2c)
{
	uint8_t k[PSD_AEAD_KEY_LEN];

	memset(k, 0x11, sizeof(k));
	psd_aead_key_init(c2s, PSD_AEAD_CHACHA20_POLY1305, k);
	memset(k, 0x22, sizeof(k));
	psd_aead_key_init(s2c, PSD_AEAD_CHACHA20_POLY1305, k);
}

struct setup {
	struct sim_link_cfg up, down;		/* client->server, back */
	unsigned int n_chunks, max_outstanding;
	uint64_t chunk_len;
	uint64_t client_window;			/* 0: default */
	const struct psd_cc_ops *server_cc;
	uint64_t seed;
	uint64_t cid_salt;			/* two flows on one sim */
	uint64_t start_at;			/* first request, ns */
};

static int transfer_init(struct transfer *t, const struct setup *su)
{
	struct psd_conn_config cc = { 0 }, sc = { 0 };
	struct psd_aead_key c2s, s2c;

	if (psd_chunkhash_init())
		return -EIO;
	memset(t, 0, sizeof(*t));
	t->n_chunks = su->n_chunks;
	t->max_outstanding = su->max_outstanding ? su->max_outstanding : 32;
	t->chunk_len = su->chunk_len;
	t->start_at = su->start_at;
	t->mark_bytes = su->n_chunks * su->chunk_len / 4;
	test_keys(&c2s, &s2c);
	cc = (struct psd_conn_config){ .local_cid = CLIENT_CID ^ su->cid_salt,
				       .peer_cid = SERVER_CID ^ su->cid_salt,
				       .tx_key = c2s, .rx_key = s2c,
				       .seed = su->seed + 1,
				       .max_data_window = su->client_window,
				       .app = &client_app, .app_ctx = t };
	sc = (struct psd_conn_config){ .server = true,
				       .local_cid = SERVER_CID ^ su->cid_salt,
				       .peer_cid = CLIENT_CID ^ su->cid_salt,
				       .tx_key = s2c, .rx_key = c2s,
				       .cc = su->server_cc, .seed = su->seed + 2,
				       .app = &server_app, .app_ctx = t };
	if (sim_init(&t->sim, su->seed, &su->up, &su->down) ||
	    psd_conn_new(&cc, 0, &t->cli.c) || psd_conn_new(&sc, 0, &t->srv.c))
		return -ENOMEM;
	t->sim.node[0] = sim_conn_node(&t->cli);
	t->sim.node[1] = sim_conn_node(&t->srv);
	return 0;
}

static void transfer_free(struct transfer *t)
{
	psd_conn_free(t->cli.c);
	psd_conn_free(t->srv.c);
	sim_free(&t->sim);
}

static void check_invariants(struct transfer *t)
{
	const struct psd_conn_stats *ss = psd_conn_stats(t->srv.c);
	const struct psd_recovery *r = psd_conn_recovery(t->srv.c);

	if (!psd_conn_address_validated(t->srv.c)) {
		t->srv_tx_before_validation = ss->tx_bytes;
		if (ss->tx_bytes > 3 * ss->rx_bytes)
			t->amp_violations++;
	}
	if (ss->tx_data_bytes > ss->tx_max_data)
		t->credit_violations++;
	if (r->next_pn - r->base >= PSD_SENT_RING ||
	    psd_conn_buffered(t->cli.c) > t->max_outstanding * t->chunk_len)
		t->bound_violations++;
}

static void issue_requests(struct transfer *t, uint64_t now)
{
	uint8_t id[PSD_OBJECT_ID_LEN];
	uint64_t rid;

	if (now < t->start_at)
		return;
	while (t->issued < t->n_chunks &&
	       t->issued - t->completed - t->not_found < t->max_outstanding &&
	       psd_conn_state(t->cli.c) == PSD_CONN_OPEN) {
		object_id(t->issued, id);
		if (psd_conn_request(t->cli.c, PSD_REQ_CHUNK, id, 0, 0,
				     t->chunk_len, PSD_PRIO_DEMAND, &rid))
			return;
		t->req_len[rid] = t->chunk_len;
		t->req_index[rid] = t->issued++;
	}
}

static bool transfer_step(void *ctx, uint64_t now)
{
	struct transfer *t = ctx;

	check_invariants(t);
	if (!t->mark_time && t->delivered >= t->mark_bytes && t->delivered) {
		t->mark_time = now;
		t->mark_delivered = t->delivered;
	}
	issue_requests(t, now);
	if (t->completed + t->not_found == t->n_chunks) {
		t->end_time = now;
		return true;
	}
	return psd_conn_state(t->cli.c) == PSD_CONN_CLOSED ||
	       psd_conn_state(t->srv.c) == PSD_CONN_CLOSED;
}

/* Mbit/s from the goodput mark to the end, in simulated time. */
static double goodput_mbit(const struct transfer *t)
{
	uint64_t dt = t->end_time - t->mark_time;

	if (!t->mark_time || dt == 0)
		return 0;
	return (double)(t->delivered - t->mark_delivered) * 8 * SEC / dt / MBIT;
}

static void report(struct __test_metadata *_metadata, const char *what,
		   const struct transfer *t)
{
	const struct psd_conn_stats *ss = psd_conn_stats(t->srv.c);
	const struct psd_recovery *r = psd_conn_recovery(t->srv.c);

	if (psd_conn_state(t->cli.c) != PSD_CONN_OPEN ||
	    psd_conn_state(t->srv.c) != PSD_CONN_OPEN)
		TH_LOG("%s: closed at %.3f s: client '%s', server '%s'; links sent/lost %llu/%llu and %llu/%llu",
		       what, (double)t->sim.now / SEC,
		       psd_conn_close_reason(t->cli.c),
		       psd_conn_close_reason(t->srv.c),
		       (unsigned long long)t->sim.link[0].st.sent,
		       (unsigned long long)t->sim.link[0].st.lost,
		       (unsigned long long)t->sim.link[1].st.sent,
		       (unsigned long long)t->sim.link[1].st.lost);
	TH_LOG("%s: %u chunks in %.3f s simulated, goodput %.2f Mbit/s after the first quarter; server sent %llu packets, %llu lost (%llu spurious), %llu PTOs, %llu rtx bytes, cwnd %llu; link drops: %llu queue, %llu loss",
	       what, t->completed, (double)t->end_time / SEC, goodput_mbit(t),
	       (unsigned long long)ss->tx_packets,
	       (unsigned long long)r->lost_packets,
	       (unsigned long long)r->spurious_losses,
	       (unsigned long long)r->ptos,
	       (unsigned long long)ss->tx_rtx_bytes,
	       (unsigned long long)psd_conn_cc(t->srv.c)->cwnd,
	       (unsigned long long)t->sim.link[1].st.queue_drops,
	       (unsigned long long)(t->sim.link[1].st.lost +
				    t->sim.link[1].st.blackholed));
}

/* Runs a whole transfer and checks what every case must hold. */
#define RUN_TRANSFER(t, su, limit) do {					\
	ASSERT_EQ(0, transfer_init(&(t), &(su)));			\
	ASSERT_EQ(0, sim_run(&(t).sim, (limit), transfer_step, &(t)));	\
	EXPECT_EQ((su).n_chunks, (t).completed);			\
	EXPECT_EQ(0, (t).bad_bytes);					\
	EXPECT_EQ(0, (t).duplicates);					\
	EXPECT_EQ((su).n_chunks * (su).chunk_len, (t).delivered);	\
	EXPECT_EQ(0, (t).cli.pn_reuses);				\
	EXPECT_EQ(0, (t).srv.pn_reuses);				\
	EXPECT_EQ(0, (t).amp_violations);				\
	EXPECT_EQ(0, (t).credit_violations);				\
	EXPECT_EQ(0, (t).bound_violations);				\
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state((t).cli.c));		\
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state((t).srv.c));		\
} while (0)

static struct sim_link_cfg path(uint64_t mbit, uint64_t delay_ms)
{
	uint64_t bdp = mbit * MBIT / 8 * 2 * delay_ms / 1000;

	return (struct sim_link_cfg){ .rate_bps = mbit * MBIT,
				      .delay = delay_ms * MS,
				      .queue_bytes = bdp > 64 * KiB ? bdp : 64 * KiB };
}

/* Gilbert-Elliott bursts that lose every packet, bad `bad` of the time
 * (mean burst 1 / 0.3 packets). */
static void bursty(struct sim_link_cfg *l, double bad)
{
	l->ge_p_bg = 0.3;
	l->ge_p_gb = 0.3 * bad / (1 - bad);
	l->ge_loss_bad = 1.0;
}

TEST(lossless_50mbit_goodput)
{
	struct setup su = { .up = path(50, 25), .down = path(50, 25),
			    .n_chunks = 96, .chunk_len = 256 * KiB,
			    .seed = 1 };
	struct transfer t;

	RUN_TRANSFER(t, su, 60 * SEC);
	report(_metadata, "50 Mbit/s, 50 ms RTT, lossless", &t);
	EXPECT_GE(goodput_mbit(&t), 0.9 * 50);
	transfer_free(&t);
}

TEST(random_loss_2pct)
{
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 48, .chunk_len = 128 * KiB,
			    .seed = 2 };
	struct transfer t;

	su.up.loss = su.down.loss = 0.02;
	RUN_TRANSFER(t, su, 120 * SEC);
	report(_metadata, "20 Mbit/s, 40 ms RTT, 2% loss", &t);
	/* The default controller (BBR) holds its rate: CUBIC did 1.6 Mbit/s. */
	EXPECT_GE(goodput_mbit(&t), 0.7 * 20);
	EXPECT_GT(psd_conn_recovery(t.srv.c)->lost_packets, 0);
	EXPECT_GT(psd_conn_stats(t.srv.c)->tx_rtx_bytes, 0);
	transfer_free(&t);
}

TEST(bursty_loss_30pct)
{
	/* Gilbert-Elliott: bad 30% of the time (mean burst 3.3 packets), all lost. */
	struct setup su = { .up = path(10, 20), .down = path(10, 20),
			    .n_chunks = 16, .chunk_len = 64 * KiB,
			    .seed = 3 };
	struct transfer t;

	bursty(&su.up, 0.3);
	bursty(&su.down, 0.3);
	RUN_TRANSFER(t, su, 600 * SEC);
	report(_metadata, "10 Mbit/s, 40 ms RTT, 30% bursty loss", &t);
	/* BBR does not collapse its window on each burst: CUBIC did 0.16. */
	EXPECT_GE(goodput_mbit(&t), 1.0);
	EXPECT_GT(t.sim.link[1].st.lost * 100, t.sim.link[1].st.sent * 20);
	transfer_free(&t);
}

TEST(ack_path_loss_30pct)
{
	/* Only the client's packets (ACKs, requests) are lost, in bursts. */
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 32, .chunk_len = 256 * KiB,
			    .seed = 19 };
	struct transfer t;

	bursty(&su.up, 0.3);
	RUN_TRANSFER(t, su, 120 * SEC);
	report(_metadata, "20 Mbit/s, 40 ms RTT, 30% bursty loss of ACKs", &t);
	/* Later ACKs cover what lost ones said: the data path stays full. */
	EXPECT_GE(goodput_mbit(&t), 0.8 * 20);
	transfer_free(&t);
}

TEST(long_delay_750ms)
{
	struct setup su = { .up = path(10, 750), .down = path(10, 750),
			    .n_chunks = 32, .chunk_len = 256 * KiB,
			    .seed = 4 };
	struct transfer t;

	RUN_TRANSFER(t, su, 120 * SEC);
	report(_metadata, "10 Mbit/s, 750 ms one way", &t);
	/* The RTT estimate found the path, not the 333 ms default. */
	EXPECT_GE(psd_conn_recovery(t.srv.c)->rtt.min, 1500 * MS);
	transfer_free(&t);
}

TEST(blackhole_2s)
{
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 48, .chunk_len = 128 * KiB,
			    .seed = 5 };
	struct transfer t;

	su.up.blackhole_start = su.down.blackhole_start = 500 * MS;
	su.up.blackhole_end = su.down.blackhole_end = 2500 * MS;
	RUN_TRANSFER(t, su, 120 * SEC);
	report(_metadata, "20 Mbit/s, 40 ms RTT, 2 s blackhole", &t);
	EXPECT_GT(t.sim.link[1].st.blackholed, 0);
	EXPECT_GT(psd_conn_recovery(t.srv.c)->ptos, 0);
	EXPECT_GT(t.end_time, 2500 * MS);
	transfer_free(&t);
}

TEST(reorder_duplicate_corrupt)
{
	struct setup su = { .up = path(20, 10), .down = path(20, 10),
			    .n_chunks = 32, .chunk_len = 128 * KiB,
			    .seed = 6 };
	struct sim_link_cfg *l[2] = { &su.up, &su.down };
	struct transfer t;
	int i;

	for (i = 0; i < 2; i++) {
		l[i]->reorder = 0.1;
		l[i]->reorder_delay = 15 * MS;
		l[i]->duplicate = 0.05;
		l[i]->corrupt = 0.02;
	}
	RUN_TRANSFER(t, su, 120 * SEC);
	report(_metadata, "20 Mbit/s, 20 ms RTT, reorder 10%, dup 5%, corrupt 2%", &t);
	/* Reordering is not taken for loss: CUBIC did 3 Mbit/s here. */
	EXPECT_GE(goodput_mbit(&t), 0.6 * 20);
	/* Corrupted packets were dropped by the AEAD, copies as duplicates. */
	EXPECT_GT(psd_conn_stats(t.cli.c)->rx_undecryptable, 0);
	EXPECT_GT(psd_conn_stats(t.cli.c)->rx_duplicate, 0);
	EXPECT_GT(t.sim.link[1].st.reordered, 0);
	transfer_free(&t);
}

TEST(amplification_limit_before_validation)
{
	/* Nothing from the server arrives for 2 s: the client cannot ack. */
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 32, .chunk_len = 128 * KiB,
			    .seed = 7 };
	struct transfer t;

	su.down.blackhole_end = 2 * SEC;
	RUN_TRANSFER(t, su, 120 * SEC);
	report(_metadata, "server unvalidated for 2 s", &t);
	EXPECT_TRUE(psd_conn_address_validated(t.srv.c));
	EXPECT_GT(t.srv_tx_before_validation, 0);
	EXPECT_GT(psd_conn_stats(t.srv.c)->amplification_blocked, 0);
	transfer_free(&t);
}

TEST(flow_control_small_window)
{
	struct setup su = { .up = path(50, 25), .down = path(50, 25),
			    .n_chunks = 32, .chunk_len = 256 * KiB,
			    .client_window = 256 * KiB, .seed = 8 };
	struct transfer t;

	RUN_TRANSFER(t, su, 120 * SEC);
	report(_metadata, "50 Mbit/s, 50 ms RTT, 256 KiB window", &t);
	/* A 256 KiB window per 50 ms round trip is ~40 Mbit/s at most. */
	EXPECT_LT(goodput_mbit(&t), 45);
	EXPECT_GT(psd_conn_stats(t.srv.c)->tx_max_data, PSD_MAX_DATA_INITIAL);
	transfer_free(&t);
}

TEST(many_seeds_lossy)
{
	uint64_t seed;

	/* Different schedules of the same impairments: every one delivers. */
	for (seed = 100; seed < 106; seed++) {
		struct setup su = { .up = path(10, 30), .down = path(10, 30),
				    .n_chunks = 8, .chunk_len = 96 * KiB,
				    .max_outstanding = 4, .seed = seed };
		struct transfer t;

		su.up.loss = su.down.loss = 0.05;
		su.down.reorder = 0.05;
		su.down.reorder_delay = 20 * MS;
		RUN_TRANSFER(t, su, 300 * SEC);
		transfer_free(&t);
	}
}

/* ---- a peer that acknowledges what it never received ---------------------- */

struct liar {
	struct psd_aead_key tx, rx;
	uint64_t next_pn, largest_rx;
	bool any_rx, requested;
	uint64_t ahead;			/* acks this far past the largest seen */
	unsigned int unacked;
	unsigned int n_requests, sent_requests;	/* 0: 4 */
	const uint8_t *raw;		/* sent once instead of REQUESTs */
	size_t raw_len;
};

/* Seals payload (padded to fill 1200 bytes) as the liar's next packet. */
static size_t liar_seal(struct liar *l, const uint8_t *payload, size_t len,
			uint8_t *buf, size_t cap)
{
	unsigned int pn_len = psd_pn_encode_len(l->next_pn, 0, false);
	size_t body = PSD_DGRAM_MIN - (1 + PSD_PKT_CID_LEN + pn_len) -
		      PSD_AEAD_TAG_LEN, out = 0;
	uint8_t padded[PSD_DGRAM_MIN] = { 0 };

	memcpy(padded, payload, len);
	if (psd_packet_seal(&l->tx, SERVER_CID, l->next_pn++, 0, false,
			    padded, body, buf, cap, &out))
		return 0;
	return out;
}

static size_t liar_packet(struct liar *l, const struct psd_frame *f,
			  unsigned int n, uint8_t *buf, size_t cap)
{
	uint8_t payload[PSD_DGRAM_MIN];
	size_t len = 0;
	unsigned int i;

	for (i = 0; i < n; i++)
		len += psd_frame_encode(&f[i], payload + len,
					sizeof(payload) - len);
	return liar_seal(l, payload, len, buf, cap);
}

static size_t liar_send(void *ctx, uint8_t *buf, size_t cap, uint64_t now)
{
	struct liar *l = ctx;
	unsigned int i, want = l->n_requests ? l->n_requests : 4;
	struct psd_frame f[20];

	(void)now;
	if (l->raw && !l->requested) {
		l->requested = true;
		return liar_seal(l, l->raw, l->raw_len, buf, cap);
	}
	if (!l->requested) {
		/* Up to 20 REQUESTs (45 bytes each) per packet. */
		for (i = 0; i < 20 && l->sent_requests < want; i++) {
			f[i] = (struct psd_frame){ .type = PSD_FRAME_REQUEST };
			f[i].req = (struct psd_frame_request){
				.request_id = l->sent_requests++,
				.length = 8 * MiB };
			object_id(i, f[i].req.object_id);
		}
		l->requested = l->sent_requests == want;
		return liar_packet(l, f, i, buf, cap);
	}
	if (l->unacked < 2)
		return 0;
	l->unacked = 0;
	f[0] = (struct psd_frame){ .type = PSD_FRAME_ACK };
	f[0].ack.n_ranges = 1;
	f[0].ack.r[0] = (struct psd_ack_range){ 0, l->largest_rx + l->ahead };
	return liar_packet(l, f, 1, buf, cap);
}

static void liar_recv(void *ctx, const uint8_t *d, size_t len, uint64_t now)
{
	uint8_t out[SIM_DGRAM_MAX];
	struct liar *l = ctx;
	struct psd_pkt_hdr h;
	size_t n;
	uint64_t pn;

	(void)now;
	if (psd_packet_parse_header(d, len, &h) ||
	    psd_packet_open(&l->rx, d, len, &h, l->largest_rx, l->any_rx, out,
			    &n, &pn))
		return;
	if (!l->any_rx || pn > l->largest_rx)
		l->largest_rx = pn;
	l->any_rx = true;
	l->unacked++;
}

static uint64_t liar_timeout(void *ctx, uint64_t now)
{
	struct liar *l = ctx;

	return !l->requested || l->unacked >= 2 ? now : UINT64_MAX;
}

static void liar_on_timeout(void *ctx, uint64_t now)
{
	(void)ctx;
	(void)now;
}

static bool server_closed(void *ctx, uint64_t now)
{
	(void)now;
	return psd_conn_state(ctx) != PSD_CONN_OPEN;
}

static void run_liar(struct __test_metadata *_metadata, uint64_t ahead)
{
	struct setup su = { .up = path(50, 25), .down = path(50, 25),
			    .n_chunks = 1, .chunk_len = 1, .seed = 9 };
	struct liar l = { .ahead = ahead };
	const struct psd_conn_stats *ss;
	struct transfer t;

	ASSERT_EQ(0, transfer_init(&t, &su));
	test_keys(&l.tx, &l.rx);
	t.sim.node[0] = (struct sim_node){ .send = liar_send, .recv = liar_recv,
					   .timeout = liar_timeout,
					   .on_timeout = liar_on_timeout,
					   .ctx = &l };
	ASSERT_EQ(0, sim_run(&t.sim, 60 * SEC, server_closed, t.srv.c));
	ss = psd_conn_stats(t.srv.c);
	TH_LOG("liar acking %llu ahead: caught after %llu packets, %.3f s, reason '%s', cwnd %llu",
	       (unsigned long long)ahead, (unsigned long long)ss->tx_packets,
	       (double)t.sim.now / SEC, psd_conn_close_reason(t.srv.c),
	       (unsigned long long)psd_conn_cc(t.srv.c)->cwnd);
	EXPECT_EQ(PSD_CLOSE_PROTOCOL_VIOLATION, psd_conn_close_code(t.srv.c));
	EXPECT_NE(NULL, strstr(psd_conn_close_reason(t.srv.c), "never sent"));
	/* Caught within the skip interval: long before 8 MiB went out. */
	EXPECT_LT(ss->tx_packets, 1200);
	EXPECT_EQ(0, t.srv.pn_reuses);
	transfer_free(&t);
}

TEST(optimistic_ack_fills_gaps)
{
	run_liar(_metadata, 0);
}

TEST(optimistic_ack_ahead)
{
	run_liar(_metadata, 16);
}

TEST(request_flood_closes)
{
	struct setup su = { .up = path(50, 25), .down = path(50, 25),
			    .n_chunks = 1, .chunk_len = 1, .seed = 18 };
	struct liar l = { .n_requests = PSD_CONN_REQUESTS_MAX + 40 };
	struct transfer t;

	ASSERT_EQ(0, transfer_init(&t, &su));
	test_keys(&l.tx, &l.rx);
	t.sim.node[0] = (struct sim_node){ .send = liar_send, .recv = liar_recv,
					   .timeout = liar_timeout,
					   .on_timeout = liar_on_timeout,
					   .ctx = &l };
	ASSERT_EQ(0, sim_run(&t.sim, 10 * SEC, server_closed, t.srv.c));
	EXPECT_EQ(PSD_CLOSE_LIMIT, psd_conn_close_code(t.srv.c));
	EXPECT_STREQ("more than 256 requests at once",
		     psd_conn_close_reason(t.srv.c));
	transfer_free(&t);
}

TEST(malformed_frames_close)
{
	static const struct {
		uint8_t bytes[8];
		size_t len;
		const char *reason;
	} cases[] = {
		{ { 0x01, 0x02, 10, 0, 0, 11 }, 6,
		  "malformed ACK frame at payload offset 1" },
		{ { 0x01, 0x01, 0x05 }, 3,
		  "unknown frame type 0x05 at payload offset 2" },
		{ { 0x11, 0, 0, 1, 0xaa }, 5,
		  "DATA for request 0 never made" },
		{ { 0x13, 7 }, 2, "NOT_FOUND for request 7 never made" },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct setup su = { .up = path(10, 10), .down = path(10, 10),
				    .n_chunks = 1, .chunk_len = 1,
				    .seed = 20 + i };
		struct liar l = { .raw = cases[i].bytes,
				  .raw_len = cases[i].len };
		struct transfer t;

		ASSERT_EQ(0, transfer_init(&t, &su));
		test_keys(&l.tx, &l.rx);
		t.sim.node[0] = (struct sim_node){ .send = liar_send,
			.recv = liar_recv, .timeout = liar_timeout,
			.on_timeout = liar_on_timeout, .ctx = &l };
		ASSERT_EQ(0, sim_run(&t.sim, 5 * SEC, server_closed, t.srv.c));
		EXPECT_EQ(PSD_CLOSE_PROTOCOL_VIOLATION,
			  psd_conn_close_code(t.srv.c));
		EXPECT_STREQ(cases[i].reason, psd_conn_close_reason(t.srv.c));
		transfer_free(&t);
	}
}

/* ---- lifetimes: idle, keepalive, close, cancel, not found ----------------- */

static bool both_closed(void *ctx, uint64_t now)
{
	struct transfer *t = ctx;

	(void)now;
	return psd_conn_state(t->cli.c) == PSD_CONN_CLOSED &&
	       psd_conn_state(t->srv.c) == PSD_CONN_CLOSED;
}

TEST(mtu_below_1200_idles_out)
{
	struct setup su = { .up = path(10, 10), .down = path(10, 10),
			    .n_chunks = 1, .chunk_len = 4 * KiB, .seed = 10 };
	struct transfer t;
	uint8_t id[PSD_OBJECT_ID_LEN];
	uint64_t rid;

	su.up.mtu = su.down.mtu = 1199;
	ASSERT_EQ(0, transfer_init(&t, &su));
	object_id(0, id);
	ASSERT_EQ(0, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
				      4 * KiB, PSD_PRIO_DEMAND, &rid));
	ASSERT_EQ(0, sim_run(&t.sim, 60 * SEC, both_closed, &t));
	/* Nothing fits the path: both ends give up after the idle timeout. */
	EXPECT_EQ(PSD_CLOSE_IDLE, psd_conn_close_code(t.cli.c));
	EXPECT_EQ(PSD_IDLE_TIMEOUT, t.sim.now);
	EXPECT_GT(t.sim.link[0].st.mtu_drops, 0);
	EXPECT_EQ(0, t.sim.link[0].st.delivered);
	/* The client probed with backoff, not at line rate. */
	EXPECT_LT(psd_conn_stats(t.cli.c)->tx_packets, 20);
	EXPECT_EQ(0, t.completed);
	transfer_free(&t);
}

static bool never(void *ctx, uint64_t now)
{
	(void)ctx;
	(void)now;
	return false;
}

TEST(keepalive_then_idle_timeout)
{
	struct setup su = { .up = path(10, 10), .down = path(10, 10),
			    .n_chunks = 1, .chunk_len = 1, .seed = 11 };
	struct transfer t;

	su.up.blackhole_start = su.down.blackhole_start = 60 * SEC;
	su.up.blackhole_end = su.down.blackhole_end = UINT64_MAX;
	ASSERT_EQ(0, transfer_init(&t, &su));
	/* One minute without requests: keepalives hold it open. */
	ASSERT_EQ(-ETIMEDOUT, sim_run(&t.sim, 60 * SEC, never, &t));
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(t.cli.c));
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(t.srv.c));
	EXPECT_GE(psd_conn_stats(t.cli.c)->tx_packets, 5);
	EXPECT_LT(psd_conn_stats(t.cli.c)->tx_packets, 20);
	/* Then the path dies: both close by the idle timeout. */
	ASSERT_EQ(0, sim_run(&t.sim, 120 * SEC, both_closed, &t));
	EXPECT_LE(t.sim.now, 60 * SEC + PSD_IDLE_TIMEOUT);
	EXPECT_EQ(PSD_CLOSE_IDLE, psd_conn_close_code(t.srv.c));
	transfer_free(&t);
}

TEST(close_reaches_peer)
{
	struct setup su = { .up = path(10, 10), .down = path(10, 10),
			    .n_chunks = 4, .chunk_len = 64 * KiB, .seed = 12 };
	struct transfer t;
	uint64_t rid;

	RUN_TRANSFER(t, su, 30 * SEC);
	psd_conn_close(t.cli.c, PSD_CLOSE_NO_ERROR, "done", t.sim.now);
	ASSERT_EQ(PSD_CONN_CLOSING, psd_conn_state(t.cli.c));
	ASSERT_EQ(-ENOTCONN, psd_conn_request(t.cli.c, PSD_REQ_CHUNK,
					      (uint8_t[32]){ 0 }, 0, 0, 1,
					      PSD_PRIO_DEMAND, &rid));
	ASSERT_EQ(0, sim_run(&t.sim, t.sim.now + 30 * SEC, both_closed, &t));
	EXPECT_STREQ("0 done", t.peer_close);
	transfer_free(&t);
}

struct cancel_case {
	struct transfer *t;
	uint64_t cancel_at, cancel_id;
	bool cancelled;
	uint64_t srv_data_at_cancel;
};

static bool cancel_step(void *ctx, uint64_t now)
{
	struct cancel_case *cc = ctx;
	struct transfer *t = cc->t;

	check_invariants(t);
	if (!cc->cancelled && now >= cc->cancel_at) {
		cc->cancelled = true;
		cc->srv_data_at_cancel = psd_conn_stats(t->srv.c)->tx_data_bytes;
		if (psd_conn_cancel(t->cli.c, cc->cancel_id))
			return true;
	}
	return cc->cancelled && now >= cc->cancel_at + 2 * SEC;
}

TEST(cancel_and_not_found)
{
	struct setup su = { .up = path(10, 20), .down = path(10, 20),
			    .n_chunks = 2, .chunk_len = 16 * MiB, .seed = 13 };
	uint8_t id[PSD_OBJECT_ID_LEN];
	struct cancel_case cc = { .cancel_at = 500 * MS };
	struct transfer t;
	uint64_t rid;

	ASSERT_EQ(0, transfer_init(&t, &su));
	cc.t = &t;
	object_id(1, id);
	ASSERT_EQ(0, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
				      16 * MiB, PSD_PRIO_DEMAND, &cc.cancel_id));
	object_id(MISSING_INDEX, id);
	ASSERT_EQ(0, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
				      4 * KiB, PSD_PRIO_DEMAND, &rid));
	t.issued = 2;
	ASSERT_EQ(0, sim_run(&t.sim, 10 * SEC, cancel_step, &cc));
	EXPECT_EQ(1, t.not_found);
	EXPECT_EQ(0, t.completed);
	EXPECT_EQ(-ENOENT, psd_conn_cancel(t.cli.c, cc.cancel_id));
	/* The CANCEL was acked: its buffer is gone; the server stopped. */
	EXPECT_EQ(0, psd_conn_buffered(t.cli.c));
	EXPECT_LT(psd_conn_stats(t.srv.c)->tx_data_bytes,
		  cc.srv_data_at_cancel + 512 * KiB);
	EXPECT_LT(psd_conn_stats(t.srv.c)->tx_data_bytes, 16 * MiB);
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(t.srv.c));
	transfer_free(&t);
}

TEST(request_limits)
{
	struct setup su = { .up = path(10, 10), .down = path(10, 10),
			    .n_chunks = 1, .chunk_len = 1, .seed = 14 };
	uint8_t id[PSD_OBJECT_ID_LEN] = { 0 };
	struct transfer t;
	uint64_t rid;
	unsigned int i;

	ASSERT_EQ(0, transfer_init(&t, &su));
	EXPECT_EQ(-EINVAL, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0, 0,
					    PSD_PRIO_DEMAND, &rid));
	EXPECT_EQ(-EINVAL, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
					    PSD_REQUEST_LEN_MAX + 1ull,
					    PSD_PRIO_DEMAND, &rid));
	/* Buffers are capped: 2 x 64 MiB fit, not a byte more. */
	EXPECT_EQ(0, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
				      PSD_REQUEST_LEN_MAX, PSD_PRIO_DEMAND, &rid));
	EXPECT_EQ(0, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
				      PSD_REQUEST_LEN_MAX, PSD_PRIO_DEMAND, &rid));
	EXPECT_EQ(-ENOBUFS, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
					     1, PSD_PRIO_DEMAND, &rid));
	EXPECT_EQ(PSD_CONN_BUFFERED_MAX, psd_conn_buffered(t.cli.c));
	transfer_free(&t);

	/* And at most PSD_CONN_REQUESTS_MAX at once. */
	ASSERT_EQ(0, transfer_init(&t, &su));
	for (i = 0; i < PSD_CONN_REQUESTS_MAX; i++)
		ASSERT_EQ(0, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
					      1, PSD_PRIO_DEMAND, &rid));
	EXPECT_EQ(-EBUSY, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0, 1,
					   PSD_PRIO_DEMAND, &rid));
	transfer_free(&t);
}

/* ---- the receiver enforces its credit ---------------------------------------- */

/* Seals one DATA frame (len bytes of 0x5a) as the server's packet pn and
 * hands it to the client. */
static int inject_data(struct transfer *t, uint64_t pn, uint64_t id,
		       uint64_t offset, size_t len, uint64_t now)
{
	struct psd_aead_key c2s, s2c;
	uint8_t bytes[1100], payload[PSD_DGRAM_MIN], dgram[SIM_DGRAM_MAX];
	struct psd_frame f = { .type = PSD_FRAME_DATA };
	size_t n, body, out = 0;
	unsigned int pn_len = psd_pn_encode_len(pn, 0, false);

	memset(bytes, 0x5a, sizeof(bytes));
	memset(payload, 0, sizeof(payload));
	f.data = (struct psd_frame_data){ .request_id = id, .offset = offset,
					  .len = len, .bytes = bytes };
	n = psd_frame_encode(&f, payload, sizeof(payload));
	body = PSD_DGRAM_MIN - (1 + PSD_PKT_CID_LEN + pn_len) -
	       PSD_AEAD_TAG_LEN;
	test_keys(&c2s, &s2c);
	if (n == 0 || psd_packet_seal(&s2c, CLIENT_CID, pn, 0, false, payload,
				      body, dgram, sizeof(dgram), &out))
		return -EINVAL;
	return psd_conn_recv(t->cli.c, dgram, out, now);
}

/* Asks for chunk index's first len bytes, as issue_requests would. */
static uint64_t request_len(struct transfer *t, uint64_t index, uint64_t len)
{
	uint8_t id[PSD_OBJECT_ID_LEN];
	uint64_t rid;

	object_id(index, id);
	if (psd_conn_request(t->cli.c, PSD_REQ_CHUNK, id, 0, 0, len,
			     PSD_PRIO_DEMAND, &rid))
		return UINT64_MAX;
	t->req_len[rid] = len;
	t->req_index[rid] = index;
	t->issued++;
	return rid;
}

TEST(large_response_does_not_starve_others)
{
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 9, .chunk_len = 128 * KiB, .seed = 25 };
	struct transfer t;
	uint64_t big, small[8];
	unsigned int i;

	ASSERT_EQ(0, transfer_init(&t, &su));
	/* The large response is asked for first: oldest first, it would
	 * be served whole before the others without its own window. */
	big = request_len(&t, 0, 24 * MiB);
	ASSERT_NE(UINT64_MAX, big);
	for (i = 0; i < 8; i++) {
		small[i] = request_len(&t, 1 + i, 128 * KiB);
		ASSERT_NE(UINT64_MAX, small[i]);
	}
	ASSERT_EQ(0, sim_run(&t.sim, 120 * SEC, transfer_step, &t));
	EXPECT_EQ(9, t.completed);
	EXPECT_EQ(0, t.bad_bytes);
	EXPECT_EQ(0, t.credit_violations);
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(t.cli.c));
	TH_LOG("small responses done by %.2f s, the 24 MiB one at %.2f s",
	       (double)t.done_at[small[7]] / SEC, (double)t.done_at[big] / SEC);
	EXPECT_EQ(8, t.done_rank[big]);		/* the last one */
	for (i = 0; i < 8; i++)
		EXPECT_LT(t.done_at[small[i]] * 3, t.done_at[big]);
	transfer_free(&t);
}

TEST(data_past_request_credit_closes)
{
	struct setup su = { .up = path(10, 10), .down = path(10, 10),
			    .n_chunks = 1, .chunk_len = 8 * MiB, .seed = 26 };
	struct transfer t;
	uint64_t rid;

	ASSERT_EQ(0, transfer_init(&t, &su));
	rid = request_len(&t, 0, 8 * MiB);
	ASSERT_NE(UINT64_MAX, rid);
	/* The last byte of the request's first window is fine, the next
	 * one was never granted. */
	EXPECT_EQ(0, inject_data(&t, 0, rid, PSD_REQUEST_WINDOW - 1, 1, MS));
	EXPECT_EQ(-EPROTO, inject_data(&t, 1, rid, PSD_REQUEST_WINDOW, 1, MS));
	EXPECT_EQ(PSD_CLOSE_LIMIT, psd_conn_close_code(t.cli.c));
	TH_LOG("client closed: '%s'", psd_conn_close_reason(t.cli.c));
	EXPECT_NE(NULL, strstr(psd_conn_close_reason(t.cli.c),
			       "past request 0's credit"));
	transfer_free(&t);
}

TEST(data_past_credit_closes)
{
	struct setup su = { .up = path(10, 10), .down = path(10, 10),
			    .n_chunks = 1, .chunk_len = 2 * MiB, .seed = 24 };
	struct transfer t;
	uint8_t id[PSD_OBJECT_ID_LEN];
	uint64_t rid, off, pn = 0;

	ASSERT_EQ(0, transfer_init(&t, &su));
	object_id(0, id);
	ASSERT_EQ(0, psd_conn_request(t.cli.c, PSD_REQ_CHUNK, id, 0, 0,
				      2 * MiB, PSD_PRIO_DEMAND, &rid));
	/* The initial credit (1 MiB) is used up, the client has not sent
	 * anything: the sender has no right to more. */
	for (off = 0; off < PSD_MAX_DATA_INITIAL; off += 1024)
		ASSERT_EQ(0, inject_data(&t, pn++, rid, off, 1024, MS));
	/* Repeats of bytes already there use no credit. */
	ASSERT_EQ(0, inject_data(&t, pn++, rid, 0, 1024, MS));
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(t.cli.c));
	EXPECT_EQ(-EPROTO, inject_data(&t, pn++, rid, off, 1, MS));
	EXPECT_EQ(PSD_CLOSE_LIMIT, psd_conn_close_code(t.cli.c));
	TH_LOG("client closed: '%s'", psd_conn_close_reason(t.cli.c));
	EXPECT_NE(NULL, strstr(psd_conn_close_reason(t.cli.c),
			       "past the credit"));
	transfer_free(&t);
}

/* ---- BBR against the link rate under random loss --------------------------- */

/* Goodput of one 10 MiB transfer over a 20 Mbit/s path with random loss. */
static double loss_case_goodput(struct __test_metadata *_metadata,
				const struct psd_cc_ops *cc, uint64_t rtt_ms,
				double loss, uint64_t seed)
{
	struct setup su = { .up = path(20, rtt_ms / 2),
			    .down = path(20, rtt_ms / 2),
			    .n_chunks = 40, .chunk_len = 256 * KiB,
			    .server_cc = cc, .seed = seed };
	struct transfer t;
	double g;

	su.up.loss = su.down.loss = loss;
	RUN_TRANSFER(t, su, 600 * SEC);
	if (t.completed != su.n_chunks)
		report(_metadata, cc->name, &t);
	g = goodput_mbit(&t);
	transfer_free(&t);
	return g;
}

TEST(bbr_random_loss_matrix)
{
	/* Loss rates and the share of the 20 Mbit/s link BBR must reach. */
	static const struct {
		double loss, min_share;
	} row[] = { { 0, 0.90 }, { 0.001, 0.90 }, { 0.01, 0.85 },
		    { 0.02, 0.80 }, { 0.05, 0.75 } };
	static const uint64_t rtt_ms[] = { 10, 50, 100 };
	unsigned int i, j;

	for (i = 0; i < sizeof(row) / sizeof(row[0]); i++) {
		for (j = 0; j < sizeof(rtt_ms) / sizeof(rtt_ms[0]); j++) {
			uint64_t seed = 200 + i * 10 + j;
			double bbr = loss_case_goodput(_metadata, &psd_cc_bbr,
						       rtt_ms[j], row[i].loss,
						       seed);
			double cubic = loss_case_goodput(_metadata,
							 &psd_cc_cubic,
							 rtt_ms[j], row[i].loss,
							 seed);

			TH_LOG("20 Mbit/s, %3llu ms RTT, %4.1f%% loss: BBR %5.2f Mbit/s, CUBIC %5.2f Mbit/s",
			       (unsigned long long)rtt_ms[j], row[i].loss * 100,
			       bbr, cubic);
			EXPECT_GE(bbr, row[i].min_share * 20);
			/* The issue's goal against CUBIC: >= 0.9x, and
			 * ahead of it from 1% loss on. */
			EXPECT_GE(bbr, 0.9 * cubic);
			if (row[i].loss >= 0.01)
				EXPECT_GT(bbr, cubic);
		}
	}
}

/* ---- two flows on one bottleneck: the scavenger yields -------------------- */

/* Two nodes behind one address: each datagram goes to both (a connection
 * drops what is not for its id), sends alternate. */
struct mux {
	struct sim_node n[2];
	unsigned int turn;
};

static size_t mux_send(void *ctx, uint8_t *buf, size_t cap, uint64_t now)
{
	struct mux *m = ctx;
	unsigned int i;

	for (i = 0; i < 2; i++) {
		unsigned int k = (m->turn + i) % 2;
		size_t n = m->n[k].send(m->n[k].ctx, buf, cap, now);

		if (n) {
			m->turn = 1 - k;
			return n;
		}
	}
	return 0;
}

static void mux_recv(void *ctx, const uint8_t *d, size_t len, uint64_t now)
{
	struct mux *m = ctx;

	m->n[0].recv(m->n[0].ctx, d, len, now);
	m->n[1].recv(m->n[1].ctx, d, len, now);
}

static uint64_t mux_timeout(void *ctx, uint64_t now)
{
	struct mux *m = ctx;
	uint64_t a = m->n[0].timeout(m->n[0].ctx, now);
	uint64_t b = m->n[1].timeout(m->n[1].ctx, now);

	return a < b ? a : b;
}

static void mux_on_timeout(void *ctx, uint64_t now)
{
	struct mux *m = ctx;

	if (m->n[0].timeout(m->n[0].ctx, now) <= now)
		m->n[0].on_timeout(m->n[0].ctx, now);
	if (m->n[1].timeout(m->n[1].ctx, now) <= now)
		m->n[1].on_timeout(m->n[1].ctx, now);
}

static struct sim_node mux_node(struct mux *m, struct sim_conn *a,
				struct sim_conn *b)
{
	m->n[0] = sim_conn_node(a);
	m->n[1] = sim_conn_node(b);
	return (struct sim_node){ .send = mux_send, .recv = mux_recv,
				  .timeout = mux_timeout,
				  .on_timeout = mux_on_timeout, .ctx = m };
}

struct race {
	struct transfer *demand, *background;
	uint64_t bg_at_demand_start;
};

static bool race_step(void *ctx, uint64_t now)
{
	struct race *r = ctx;

	if (now < r->demand->start_at)
		r->bg_at_demand_start = r->background->delivered;
	transfer_step(r->background, now);
	return transfer_step(r->demand, now);
}

static double queue_ms(const struct sim_link *l)
{
	return (double)l->st.max_queue_bytes * 8 * 1000 / l->cfg.rate_bps;
}

TEST(scavenger_alone_fills_link)
{
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 48, .chunk_len = 256 * KiB,
			    .server_cc = &psd_cc_ledbat, .seed = 15 };
	struct transfer t;

	/* 100 ms of buffer: room above LEDBAT's 60 ms target. */
	su.down.queue_bytes = 20 * MBIT / 8 / 10;
	RUN_TRANSFER(t, su, 60 * SEC);
	report(_metadata, "LEDBAT alone, 20 Mbit/s, 40 ms RTT", &t);
	TH_LOG("largest queue %.1f ms", queue_ms(&t.sim.link[1]));
	EXPECT_GE(goodput_mbit(&t), 0.8 * 20);
	transfer_free(&t);
}

/*
 * A background flow (bs) runs alone, then a second flow (ds) joins at
 * ds.start_at; both share the server->client link. Returns the bytes each
 * delivered while the second one ran, in *ret_bg and *ret_fg.
 */
static void run_pair(struct __test_metadata *_metadata, const char *what,
		     const struct setup *bs, const struct setup *ds,
		     uint64_t *ret_bg, uint64_t *ret_fg)
{
	struct transfer bg, dem;
	struct mux cm, sm;
	struct race r = { .demand = &dem, .background = &bg };
	uint64_t span;

	ASSERT_EQ(0, transfer_init(&bg, bs));
	ASSERT_EQ(0, transfer_init(&dem, ds));
	bg.sim.node[0] = mux_node(&cm, &bg.cli, &dem.cli);
	bg.sim.node[1] = mux_node(&sm, &bg.srv, &dem.srv);
	ASSERT_EQ(0, sim_run(&bg.sim, 120 * SEC, race_step, &r));
	EXPECT_EQ(ds->n_chunks, dem.completed);
	EXPECT_EQ(0, dem.bad_bytes + bg.bad_bytes);
	*ret_bg = bg.delivered - r.bg_at_demand_start;
	*ret_fg = dem.delivered;
	span = dem.end_time - ds->start_at;
	TH_LOG("%s: while the second flow ran (%.2f s): it did %.2f Mbit/s, the first %.2f Mbit/s (%.0f%% of the bytes); before, the first alone did %.2f Mbit/s; largest queue %.1f ms",
	       what, (double)span / SEC,
	       (double)*ret_fg * 8 * SEC / span / MBIT,
	       (double)*ret_bg * 8 * SEC / span / MBIT,
	       100.0 * *ret_bg / (*ret_bg + *ret_fg),
	       (double)r.bg_at_demand_start * 8 * SEC / ds->start_at / MBIT,
	       queue_ms(&bg.sim.link[1]));
	EXPECT_GT(r.bg_at_demand_start * 8 * SEC / ds->start_at, 10 * MBIT);
	transfer_free(&dem);
	transfer_free(&bg);
}

/* LEDBAT in the background, a demand flow with cc joining after 3 s. */
static void scavenger_vs(struct __test_metadata *_metadata,
			 const struct psd_cc_ops *cc)
{
	struct setup bs = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 200, .chunk_len = 256 * KiB,
			    .server_cc = &psd_cc_ledbat, .seed = 16,
			    .cid_salt = 0xff };
	struct setup ds = bs;
	uint64_t bg_bytes, fg_bytes;

	bs.down.queue_bytes = 20 * MBIT / 8 / 10;
	ds.server_cc = cc;
	ds.n_chunks = 96;
	ds.cid_salt = 0;
	ds.seed = 17;
	ds.start_at = 3 * SEC;			/* the scavenger runs first */
	run_pair(_metadata, cc->name, &bs, &ds, &bg_bytes, &fg_bytes);
	EXPECT_LE(bg_bytes * 100, (bg_bytes + fg_bytes) * 20);
}

TEST(scavenger_yields_to_cubic)
{
	scavenger_vs(_metadata, &psd_cc_cubic);
}

TEST(scavenger_yields_to_bbr)
{
	scavenger_vs(_metadata, &psd_cc_bbr);
}

TEST(bbr_two_flows_share)
{
	struct setup bs = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 120, .chunk_len = 256 * KiB,
			    .server_cc = &psd_cc_bbr, .seed = 21,
			    .cid_salt = 0xff };
	struct setup ds = bs;
	uint64_t a, b;

	ds.n_chunks = 48;
	ds.cid_salt = 0;
	ds.seed = 22;
	ds.start_at = 2 * SEC;
	run_pair(_metadata, "BBR + BBR", &bs, &ds, &a, &b);
	/* Neither takes more than 1.5 times the other's share. */
	EXPECT_LE(2 * a, 3 * b);
	EXPECT_LE(2 * b, 3 * a);
}

TEST(bbr_does_not_fill_a_deep_buffer)
{
	/* 1 s of buffer at 20 Mbit/s, 40 ms RTT: a loss-based controller
	 * fills it; BBR keeps about a BDP in the queue. */
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 48, .chunk_len = 256 * KiB,
			    .server_cc = &psd_cc_bbr, .seed = 23 };
	struct transfer t;

	su.down.queue_bytes = 20 * MBIT / 8;
	RUN_TRANSFER(t, su, 60 * SEC);
	report(_metadata, "BBR, 20 Mbit/s, 40 ms RTT, 1 s buffer", &t);
	TH_LOG("largest queue %.1f ms", queue_ms(&t.sim.link[1]));
	EXPECT_GE(goodput_mbit(&t), 0.9 * 20);
	EXPECT_LE(queue_ms(&t.sim.link[1]), 100);
	EXPECT_EQ(0, t.sim.link[1].st.queue_drops);
	transfer_free(&t);
}

TEST_HARNESS_MAIN
