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
	enum psd_req_prio prio;
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
	uint64_t srv_not_found_at;	/* the server asked: NOT_FOUND came */
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

/* The server's own requests (it asks too) only ever come back NOT_FOUND. */
static void srv_on_not_found(void *ctx, uint64_t id)
{
	struct transfer *t = ctx;

	(void)id;
	t->srv_not_found_at = t->sim.now;
}

static const struct psd_conn_app server_app = {
	.on_not_found = srv_on_not_found,
	.on_request = srv_on_request,
	.read = srv_read,
	.on_close = srv_on_close,
};

/* A client that answers requests too (setup.client_serves). */
static const struct psd_conn_app serving_client_app = {
	.on_response = cli_on_response,
	.on_not_found = cli_on_not_found,
	.on_request = srv_on_request,
	.read = srv_read,
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
	enum psd_req_prio prio;			/* of every request */
	size_t max_dgram;			/* both ends; 0: no probing */
	bool client_serves;			/* the server may ask it too */
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
	t->prio = su->prio;
	t->mark_bytes = su->n_chunks * su->chunk_len / 4;
	test_keys(&c2s, &s2c);
	cc = (struct psd_conn_config){ .local_cid = CLIENT_CID ^ su->cid_salt,
				       .peer_cid = SERVER_CID ^ su->cid_salt,
				       .tx_key = c2s, .rx_key = s2c,
				       .seed = su->seed + 1,
				       .max_data_window = su->client_window,
				       .max_dgram = su->max_dgram,
				       .server = su->client_serves,
				       .address_validated = su->client_serves,
				       .app = su->client_serves ?
					      &serving_client_app : &client_app,
				       .app_ctx = t };
	sc = (struct psd_conn_config){ .server = true,
				       .local_cid = SERVER_CID ^ su->cid_salt,
				       .peer_cid = CLIENT_CID ^ su->cid_salt,
				       .tx_key = s2c, .rx_key = c2s,
				       .cc = su->server_cc, .seed = su->seed + 2,
				       .max_dgram = su->max_dgram,
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
				     t->chunk_len, t->prio, &rid))
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

/* What every whole transfer must hold at its end. */
#define CHECK_TRANSFER(t, su) do {					\
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

/* Runs a whole transfer and checks what every case must hold. */
#define RUN_TRANSFER(t, su, limit) do {					\
	ASSERT_EQ(0, transfer_init(&(t), &(su)));			\
	ASSERT_EQ(0, sim_run(&(t).sim, (limit), transfer_step, &(t)));	\
	CHECK_TRANSFER(t, su);						\
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

/*
 * Only ack-eliciting packets are padded to the datagram size: the side
 * that receives a transfer sends mostly ACKs, and those stay small. A
 * small datagram that carries an ack-eliciting frame is dropped unopened
 * in effect (counted as a bad size, nothing in it acted on).
 */
TEST(ack_only_datagrams_stay_small)
{
	struct setup su = { .up = path(10, 10), .down = path(10, 10),
			    .n_chunks = 8, .chunk_len = 256 * KiB, .seed = 13 };
	const struct psd_conn_stats *cs, *ss;
	struct psd_frame ping = { .type = PSD_FRAME_PING };
	struct psd_aead_key c2s, s2c;
	uint8_t payload[64], dgram[256];
	uint64_t rx_packets;
	size_t len, n;
	struct transfer t;

	RUN_TRANSFER(t, su, 30 * SEC);
	cs = psd_conn_stats(t.cli.c);
	ss = psd_conn_stats(t.srv.c);
	ASSERT_GT(cs->tx_packets, 100);
	EXPECT_LT(cs->tx_bytes, cs->tx_packets * 200);
	EXPECT_EQ(0, ss->rx_bad_size);

	/* A 100-byte packet with a PING, sealed under the client's key. */
	test_keys(&c2s, &s2c);
	len = psd_frame_encode(&ping, payload, sizeof(payload));
	ASSERT_EQ(1, len);
	memset(payload + len, 0, 60);	/* PADDING */
	ASSERT_EQ(0, psd_packet_seal(&c2s, SERVER_CID, cs->last_pn + 1,
				     psd_conn_recovery(t.cli.c)->largest_acked,
				     true, payload, len + 60, dgram,
				     sizeof(dgram), &n));
	ASSERT_LT(n, PSD_DGRAM_MIN);
	rx_packets = ss->rx_packets;
	ASSERT_EQ(0, psd_conn_recv(t.srv.c, dgram, n, t.sim.now));
	EXPECT_EQ(1, ss->rx_bad_size);
	EXPECT_EQ(rx_packets, ss->rx_packets);
	psd_aead_key_wipe(&c2s);
	psd_aead_key_wipe(&s2c);
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
static uint64_t request_len(struct transfer *t, uint64_t index, uint64_t len,
			    enum psd_req_prio prio)
{
	uint8_t id[PSD_OBJECT_ID_LEN];
	uint64_t rid;

	object_id(index, id);
	if (psd_conn_request(t->cli.c, PSD_REQ_CHUNK, id, 0, 0, len, prio,
			     &rid))
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
	big = request_len(&t, 0, 24 * MiB, PSD_PRIO_DEMAND);
	ASSERT_NE(UINT64_MAX, big);
	for (i = 0; i < 8; i++) {
		small[i] = request_len(&t, 1 + i, 128 * KiB, PSD_PRIO_DEMAND);
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
	rid = request_len(&t, 0, 8 * MiB, PSD_PRIO_DEMAND);
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

/*
 * The queueing delay of a link over time: a packet entering at t waits
 * busy_until - t. Called at every step of the simulation (nothing is sent
 * between two steps, so the wait only drains), it integrates the wait over
 * [from, until) exactly and keeps its largest value.
 */
struct queue_meter {
	const struct sim_link *link;
	uint64_t from, until, last;
	double sum;			/* ns x ns */
	uint64_t max;
};

static void meter_step(struct queue_meter *m, uint64_t now)
{
	uint64_t b = m->link->busy_until, t0 = m->last, t1;

	m->last = now;
	if (now <= m->from || t0 >= m->until)
		return;
	t0 = t0 > m->from ? t0 : m->from;
	t1 = now < m->until ? now : m->until;
	if (b > t0) {
		double d0 = (double)(b - t0);
		double d1 = b > t1 ? (double)(b - t1) : 0;

		m->sum += (d0 * d0 - d1 * d1) / 2;
		if (b - t0 > m->max)
			m->max = b - t0;
	}
}

/* The mean wait over [from, until) in ms (until: the last step seen). */
static double meter_mean_ms(const struct queue_meter *m)
{
	uint64_t end = m->until < m->last ? m->until : m->last;

	return end > m->from ? m->sum / (double)(end - m->from) / MS : 0;
}

struct race {
	struct transfer *demand, *background;
	uint64_t bg_at_demand_start;
	struct queue_meter queue;	/* server->client, while demand runs */
};

static bool race_step(void *ctx, uint64_t now)
{
	struct race *r = ctx;

	if (now < r->demand->start_at)
		r->bg_at_demand_start = r->background->delivered;
	meter_step(&r->queue, now);
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

/* What two flows on one bottleneck did while the second one ran. */
struct pair_result {
	uint64_t bg, fg;		/* bytes delivered: first, second */
	double queue_mean_ms;		/* the bottleneck's queueing delay */
	uint64_t bg_tx_scavenger;	/* packets the first sent scavenging */
	uint64_t fg_tx_scavenger;
};

/* Two transfers on bg's simulator, each end muxed over its links. */
static int pair_init(struct transfer *bg, struct transfer *dem,
		     const struct setup *bs, const struct setup *ds,
		     struct mux *cm, struct mux *sm)
{
	int r = transfer_init(bg, bs);

	if (r)
		return r;
	r = transfer_init(dem, ds);
	if (r) {
		transfer_free(bg);
		return r;
	}
	bg->sim.node[0] = mux_node(cm, &bg->cli, &dem->cli);
	bg->sim.node[1] = mux_node(sm, &bg->srv, &dem->srv);
	return 0;
}

/* Both transfers delivered exact bytes, each once. */
static void expect_pair_exact(struct __test_metadata *_metadata,
			      const struct transfer *bg,
			      const struct transfer *dem)
{
	EXPECT_EQ(0, bg->bad_bytes + dem->bad_bytes);
	EXPECT_EQ(0, bg->duplicates + dem->duplicates);
}

/*
 * A background flow (bs) runs alone, then a second flow (ds) joins at
 * ds.start_at; both share the server->client link.
 */
static void run_pair(struct __test_metadata *_metadata, const char *what,
		     const struct setup *bs, const struct setup *ds,
		     struct pair_result *ret)
{
	struct transfer bg, dem;
	struct mux cm, sm;
	struct race r = { .demand = &dem, .background = &bg };
	uint64_t span;

	ASSERT_EQ(0, pair_init(&bg, &dem, bs, ds, &cm, &sm));
	r.queue = (struct queue_meter){ .link = &bg.sim.link[1],
					.from = ds->start_at,
					.until = UINT64_MAX };
	ASSERT_EQ(0, sim_run(&bg.sim, 120 * SEC, race_step, &r));
	EXPECT_EQ(ds->n_chunks, dem.completed);
	expect_pair_exact(_metadata, &bg, &dem);
	ret->bg = bg.delivered - r.bg_at_demand_start;
	ret->fg = dem.delivered;
	ret->queue_mean_ms = meter_mean_ms(&r.queue);
	ret->bg_tx_scavenger = psd_conn_stats(bg.srv.c)->tx_scavenger;
	ret->fg_tx_scavenger = psd_conn_stats(dem.srv.c)->tx_scavenger;
	span = dem.end_time - ds->start_at;
	TH_LOG("%s: while the second flow ran (%.2f s): it did %.2f Mbit/s, the first %.2f Mbit/s (%.0f%% of the bytes); before, the first alone did %.2f Mbit/s; queue %.1f ms mean, %.1f ms largest",
	       what, (double)span / SEC,
	       (double)ret->fg * 8 * SEC / span / MBIT,
	       (double)ret->bg * 8 * SEC / span / MBIT,
	       100.0 * ret->bg / (ret->bg + ret->fg),
	       (double)r.bg_at_demand_start * 8 * SEC / ds->start_at / MBIT,
	       ret->queue_mean_ms, queue_ms(&bg.sim.link[1]));
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
	struct pair_result p;

	bs.down.queue_bytes = 20 * MBIT / 8 / 10;
	ds.server_cc = cc;
	ds.n_chunks = 96;
	ds.cid_salt = 0;
	ds.seed = 17;
	ds.start_at = 3 * SEC;			/* the scavenger runs first */
	run_pair(_metadata, cc->name, &bs, &ds, &p);
	EXPECT_LE(p.bg * 100, (p.bg + p.fg) * 20);
}

TEST(scavenger_yields_to_cubic)
{
	scavenger_vs(_metadata, &psd_cc_cubic);
}

TEST(scavenger_yields_to_bbr)
{
	scavenger_vs(_metadata, &psd_cc_bbr);
}

/* ---- the scavenger class over the default controller ---------------------- */

/*
 * Background requests served by a connection whose controller is the
 * default one (BBR): the scavenger limit (agent/conn_cc.c) holds it to
 * LEDBAT's window. 20 Mbit/s, 40 ms RTT, 100 ms of buffer (room above
 * LEDBAT's 60 ms target).
 */
static struct setup background_setup(unsigned int n_chunks, uint64_t seed)
{
	struct setup su = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = n_chunks, .chunk_len = 256 * KiB,
			    .prio = PSD_PRIO_BACKGROUND, .seed = seed };

	su.down.queue_bytes = 20 * MBIT / 8 / 10;
	return su;
}

/* ds becomes a demand transfer from start_at beside background bs. */
static void demand_beside(struct setup *bs, struct setup *ds,
			  uint64_t start_at)
{
	bs->cid_salt = 0xff;
	ds->prio = PSD_PRIO_DEMAND;
	ds->start_at = start_at;
}

TEST(scavenger_class_alone_fills_link)
{
	struct setup su = background_setup(48, 31);
	const struct psd_conn_stats *ss;
	struct transfer t;

	RUN_TRANSFER(t, su, 60 * SEC);
	report(_metadata, "background class alone, 20 Mbit/s, 40 ms RTT", &t);
	ss = psd_conn_stats(t.srv.c);
	TH_LOG("%llu of %llu packets sent under the scavenger limit; largest queue %.1f ms",
	       (unsigned long long)ss->tx_scavenger,
	       (unsigned long long)ss->tx_packets, queue_ms(&t.sim.link[1]));
	EXPECT_GE(goodput_mbit(&t), 0.8 * 20);
	/* The limit was in force for (nearly) every packet of DATA. */
	EXPECT_GE(ss->tx_scavenger * 100, ss->tx_packets * 95);
	EXPECT_EQ(0, psd_conn_stats(t.cli.c)->tx_scavenger);
	transfer_free(&t);
}

struct metered {
	struct transfer *t;
	struct queue_meter queue;
};

static bool metered_step(void *ctx, uint64_t now)
{
	struct metered *m = ctx;

	meter_step(&m->queue, now);
	return transfer_step(m->t, now);
}

/* The mean queueing delay a transfer builds alone from its first request on. */
static double queue_alone_ms(struct __test_metadata *_metadata,
			     const struct setup *su)
{
	struct transfer t;
	struct metered m = { .t = &t };
	double mean;

	ASSERT_EQ(0, transfer_init(&t, su));
	m.queue = (struct queue_meter){ .link = &t.sim.link[1],
					.from = su->start_at,
					.until = UINT64_MAX };
	ASSERT_EQ(0, sim_run(&t.sim, 120 * SEC, metered_step, &m));
	EXPECT_EQ(su->n_chunks, t.completed);
	EXPECT_EQ(0, t.bad_bytes);
	mean = meter_mean_ms(&m.queue);
	TH_LOG("%s alone: queue %.1f ms mean, %.1f ms largest",
	       su->server_cc ? su->server_cc->name : "bbr", mean,
	       (double)m.queue.max / MS);
	transfer_free(&t);
	return mean;
}

/*
 * The issue's goal for the scavenger class: beside a demand transfer it
 * takes <= 20% of the link and adds <= 60 ms of queueing delay (the mean
 * at the bottleneck while the demand transfer runs, against the demand
 * transfer alone).
 */
static void scavenger_class_vs(struct __test_metadata *_metadata,
			       const struct psd_cc_ops *cc, uint64_t seed)
{
	struct setup bs = background_setup(200, seed);
	struct setup ds = background_setup(96, seed + 1);
	struct pair_result p;
	double alone;

	demand_beside(&bs, &ds, 3 * SEC);	/* the background flow first */
	ds.server_cc = cc;
	alone = queue_alone_ms(_metadata, &ds);
	run_pair(_metadata, cc->name, &bs, &ds, &p);
	TH_LOG("queueing delay added: %.1f ms", p.queue_mean_ms - alone);
	EXPECT_LE(p.bg * 100, (p.bg + p.fg) * 20);
	EXPECT_LE(p.queue_mean_ms - alone, 60);
	EXPECT_GT(p.bg_tx_scavenger, 0);
	EXPECT_EQ(0, p.fg_tx_scavenger);
}

TEST(scavenger_class_yields_to_bbr)
{
	scavenger_class_vs(_metadata, &psd_cc_bbr, 32);
}

TEST(scavenger_class_yields_to_cubic)
{
	scavenger_class_vs(_metadata, &psd_cc_cubic, 34);
}

/*
 * A connection serving background requests was squeezed to LEDBAT's
 * smallest window by a demand transfer on another connection; that one
 * ends, and a demand request arrives on the squeezed connection. It must
 * be served at the full controller's rate at once, not at the rate the
 * scavenger would regrow to (about a packet per three RTTs here).
 */
struct late_request {
	struct transfer *bg, *dem;
	enum psd_req_prio prio;
	uint64_t len, id, at;
	bool issued;
};

static bool late_request_step(void *ctx, uint64_t now)
{
	struct late_request *l = ctx;

	transfer_step(l->bg, now);
	if (!l->issued && transfer_step(l->dem, now)) {
		l->id = request_len(l->bg, 1000, l->len, l->prio);
		l->issued = l->id != UINT64_MAX;
		l->at = now;
	}
	return l->issued && l->bg->done[l->id];
}

/* Mbit/s of a request of class prio issued on the squeezed connection. */
static double late_request_mbit(struct __test_metadata *_metadata,
				enum psd_req_prio prio)
{
	struct setup bs = background_setup(400, 36);
	struct setup ds = background_setup(32, 37);
	struct transfer bg, dem;
	struct mux cm, sm;
	struct late_request l = { .bg = &bg, .dem = &dem, .prio = prio,
				  .len = 4 * MiB };
	double mbit;

	demand_beside(&bs, &ds, 2 * SEC);
	ASSERT_EQ(0, pair_init(&bg, &dem, &bs, &ds, &cm, &sm));
	ASSERT_EQ(0, sim_run(&bg.sim, 120 * SEC, late_request_step, &l));
	EXPECT_EQ(ds.n_chunks, dem.completed);
	expect_pair_exact(_metadata, &bg, &dem);
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(bg.srv.c));
	mbit = (double)l.len * 8 * SEC / (bg.done_at[l.id] - l.at) / MBIT;
	TH_LOG("%s request of 4 MiB after the demand flow ended at %.2f s: %.2f Mbit/s",
	       prio == PSD_PRIO_DEMAND ? "demand" : "background",
	       (double)l.at / SEC, mbit);
	transfer_free(&dem);
	transfer_free(&bg);
	return mbit;
}

TEST(scavenger_class_demand_request_gets_full_rate)
{
	double demand = late_request_mbit(_metadata, PSD_PRIO_DEMAND);
	double background = late_request_mbit(_metadata, PSD_PRIO_BACKGROUND);

	EXPECT_GE(demand, 0.8 * 20);
	/* The same request in the background class is held by the
	 * scavenger: what the demand class gained is the switch. */
	EXPECT_LE(background * 2, demand);
}

/*
 * The switch back: a connection serves a demand request and background
 * requests while a demand flow runs on another connection. Once its
 * demand request is done, its background data must yield at once: its
 * LEDBAT window did not grow while the full controller drove the
 * connection, so it starts no larger than when it last limited.
 */
struct switch_back {
	struct transfer *bg, *dem;
	uint64_t id, len;
	bool issued;
	uint64_t switched;		/* when the demand request completed */
	uint64_t bg_at, dem_at;		/* bytes delivered then */
};

static bool switch_back_step(void *ctx, uint64_t now)
{
	struct switch_back *s = ctx;

	if (!s->issued) {
		s->id = request_len(s->bg, 1000, s->len, PSD_PRIO_DEMAND);
		s->issued = s->id != UINT64_MAX;
	}
	if (s->issued && !s->switched && s->bg->done[s->id]) {
		s->switched = now;
		s->bg_at = s->bg->delivered;
		s->dem_at = s->dem->delivered;
	}
	transfer_step(s->bg, now);
	return transfer_step(s->dem, now);
}

/*
 * The side serving background data asks the other side for a chunk (it
 * has none: NOT_FOUND comes back) while a demand flow on another
 * connection holds the scavenger at its smallest window. A REQUEST of
 * the demand class is something to send that is not background, so it
 * leaves under the full controller at once; one of the background class
 * waits for room in the scavenger's window.
 */
#define ASKS	8

struct ask_back {
	struct transfer *bg, *dem;
	enum psd_req_prio prio;
	unsigned int answered;
	uint64_t at, next_at, total;
	bool waiting;
};

/* Asks, waits for the answer, waits 37 ms (another phase), asks again. */
static bool ask_back_step(void *ctx, uint64_t now)
{
	struct ask_back *a = ctx;
	uint8_t id[PSD_OBJECT_ID_LEN];
	uint64_t rid;

	transfer_step(a->bg, now);
	transfer_step(a->dem, now);
	if (a->waiting && a->bg->srv_not_found_at) {
		a->total += a->bg->srv_not_found_at - a->at;
		a->answered++;
		a->waiting = false;
		a->next_at = now + 37 * MS;
	}
	if (!a->waiting && a->answered < ASKS && now >= a->next_at) {
		object_id(MISSING_INDEX, id);
		if (psd_conn_request(a->bg->srv.c, PSD_REQ_CHUNK, id, 0, 0,
				     4096, a->prio, &rid) == 0) {
			a->bg->srv_not_found_at = 0;
			a->at = now;
			a->waiting = true;
		}
	}
	return a->answered == ASKS;
}

/* The mean time the scavenging side's requests took to come back. */
static uint64_t ask_back_ns(struct __test_metadata *_metadata,
			    enum psd_req_prio prio)
{
	struct setup bs = background_setup(200, 40);
	struct setup ds = background_setup(96, 41);
	struct transfer bg, dem;
	struct mux cm, sm;
	struct ask_back a = { .bg = &bg, .dem = &dem, .prio = prio,
			      .next_at = 5 * SEC };
	uint64_t mean;

	bs.client_serves = true;
	demand_beside(&bs, &ds, 2 * SEC);
	ASSERT_EQ(0, pair_init(&bg, &dem, &bs, &ds, &cm, &sm));
	ASSERT_EQ(0, sim_run(&bg.sim, 60 * SEC, ask_back_step, &a));
	EXPECT_EQ(0, dem.end_time);		/* the demand flow still ran */
	EXPECT_EQ(0, bg.bad_bytes + dem.bad_bytes);
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(bg.srv.c));
	EXPECT_EQ(PSD_CONN_OPEN, psd_conn_state(bg.cli.c));
	mean = a.total / ASKS;
	TH_LOG("%u %s requests from the scavenging side from 5 s on: answered in %.1f ms on average (smoothed RTT %.1f ms)",
	       ASKS, prio == PSD_PRIO_DEMAND ? "demand" : "background",
	       (double)mean / MS,
	       (double)psd_conn_recovery(bg.srv.c)->rtt.smoothed / MS);
	transfer_free(&dem);
	transfer_free(&bg);
	return mean;
}

TEST(scavenger_class_lets_demand_requests_out)
{
	uint64_t demand = ask_back_ns(_metadata, PSD_PRIO_DEMAND);
	uint64_t background = ask_back_ns(_metadata, PSD_PRIO_BACKGROUND);

	/* The background ones wait for an ACK to open the scavenger's
	 * window: on average a good part of a round trip more. */
	EXPECT_LT(demand + 10 * MS, background);
}

TEST(scavenger_class_yields_after_demand_request)
{
	struct setup bs = background_setup(200, 38);
	struct setup ds = background_setup(96, 39);
	struct transfer bg, dem;
	struct mux cm, sm;
	struct switch_back s = { .bg = &bg, .dem = &dem, .len = 8 * MiB };
	uint64_t bg_bytes, fg_bytes, span;

	demand_beside(&bs, &ds, 0);
	ASSERT_EQ(0, pair_init(&bg, &dem, &bs, &ds, &cm, &sm));
	ASSERT_EQ(0, sim_run(&bg.sim, 120 * SEC, switch_back_step, &s));
	ASSERT_NE(0, s.switched);
	EXPECT_EQ(ds.n_chunks, dem.completed);
	expect_pair_exact(_metadata, &bg, &dem);
	bg_bytes = bg.delivered - s.bg_at;
	fg_bytes = dem.delivered - s.dem_at;
	span = dem.end_time - s.switched;
	TH_LOG("demand request done at %.2f s; then, for %.2f s, background %.2f Mbit/s, the demand flow %.2f Mbit/s",
	       (double)s.switched / SEC, (double)span / SEC,
	       (double)bg_bytes * 8 * SEC / span / MBIT,
	       (double)fg_bytes * 8 * SEC / span / MBIT);
	EXPECT_GE(span, 2 * SEC);
	EXPECT_LE(bg_bytes * 100, (bg_bytes + fg_bytes) * 20);
	transfer_free(&dem);
	transfer_free(&bg);
}

TEST(bbr_two_flows_share)
{
	struct setup bs = { .up = path(20, 20), .down = path(20, 20),
			    .n_chunks = 120, .chunk_len = 256 * KiB,
			    .server_cc = &psd_cc_bbr, .seed = 21,
			    .cid_salt = 0xff };
	struct setup ds = bs;
	struct pair_result p;

	ds.n_chunks = 48;
	ds.cid_salt = 0;
	ds.seed = 22;
	ds.start_at = 2 * SEC;
	run_pair(_metadata, "BBR + BBR", &bs, &ds, &p);
	/* Neither takes more than 1.5 times the other's share. */
	EXPECT_LE(2 * p.bg, 3 * p.fg);
	EXPECT_LE(2 * p.fg, 3 * p.bg);
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

/* ---- path MTU ------------------------------------------------------------ */

/*
 * A transfer with path MTU probing at both ends (up to PSD_DGRAM_MAX):
 * notes the server link's MTU drops when the server's search completed,
 * and shrinks both links' MTU to the base once shrink_at bytes arrived.
 */
struct pmtu_run {
	struct transfer t;
	bool settled;
	uint64_t drops_settled;
	uint64_t shrink_at, shrunk_at;
};

static bool pmtu_step(void *ctx, uint64_t now)
{
	struct pmtu_run *p = ctx;
	const struct psd_pmtu *pm = psd_conn_pmtu(p->t.srv.c);

	if (!p->settled && pm->state == PSD_PMTU_COMPLETE) {
		p->settled = true;
		p->drops_settled = p->t.sim.link[1].st.mtu_drops;
	}
	if (p->shrink_at && !p->shrunk_at && p->t.delivered >= p->shrink_at) {
		p->t.sim.link[0].cfg.mtu = PSD_DGRAM_MIN;
		p->t.sim.link[1].cfg.mtu = PSD_DGRAM_MIN;
		p->shrunk_at = now;
	}
	return transfer_step(&p->t, now);
}

static struct setup pmtu_setup(size_t mtu, uint64_t seed)
{
	struct setup su = { .up = path(20, 10), .down = path(20, 10),
			    .n_chunks = 32, .chunk_len = 128 * KiB,
			    .max_dgram = PSD_DGRAM_MAX, .seed = seed };

	su.up.mtu = su.down.mtu = mtu;
	return su;
}

static void pmtu_report(struct __test_metadata *_metadata, const char *what,
			const struct pmtu_run *p)
{
	const struct psd_pmtu *pm = psd_conn_pmtu(p->t.srv.c);
	const struct sim_link_stats *l = &p->t.sim.link[1].st;

	report(_metadata, what, &p->t);
	TH_LOG("%s: server at %zu bytes, %llu probes (%llu lost), %llu black holes; %.0f bytes per datagram delivered, %llu MTU drops",
	       what, psd_pmtu_size(pm), (unsigned long long)pm->st.probes_sent,
	       (unsigned long long)pm->st.probes_lost,
	       (unsigned long long)pm->st.black_holes,
	       l->delivered ? (double)l->bytes_delivered / l->delivered : 0,
	       (unsigned long long)l->mtu_drops);
}

/* Runs p's transfer over su (for at most limit), checks and reports it as
 * what; returns the server's path MTU state. */
static const struct psd_pmtu *run_pmtu(struct __test_metadata *_metadata,
				       struct pmtu_run *p,
				       const struct setup *su, uint64_t limit,
				       const char *what)
{
	ASSERT_EQ(0, transfer_init(&p->t, su));
	ASSERT_EQ(0, sim_run(&p->t.sim, limit, pmtu_step, p));
	CHECK_TRANSFER(p->t, *su);
	pmtu_report(_metadata, what, p);
	return psd_conn_pmtu(p->t.srv.c);
}

/* Probes lost to the MTU are no data lost: nothing was sent again. */
#define EXPECT_PROBE_LOSSES_ONLY(c) do {				\
	const struct psd_recovery *r_ = psd_conn_recovery(c);		\
									\
	EXPECT_EQ(0, r_->lost_packets);					\
	EXPECT_EQ(0, psd_conn_stats(c)->tx_rtx_bytes);			\
	EXPECT_EQ(psd_conn_pmtu(c)->st.probes_lost, r_->lost_probes);	\
} while (0)

TEST(pmtu_1500_path_reaches_the_maximum)
{
	struct setup su = pmtu_setup(1500, 40);
	struct pmtu_run p = { .settled = false };
	const struct psd_pmtu *pm;

	pm = run_pmtu(_metadata, &p, &su, 60 * SEC, "MTU 1500");
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm->state);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(pm));
	EXPECT_EQ(PSD_DGRAM_MAX, psd_pmtu_size(psd_conn_pmtu(p.t.cli.c)));
	EXPECT_EQ(1, pm->st.probes_sent);
	EXPECT_EQ(PSD_DGRAM_MAX, psd_conn_cc(p.t.srv.c)->mss);
	/* Nearly every datagram of the response went out at the new size. */
	EXPECT_GE(p.t.sim.link[1].st.bytes_delivered,
		  1400 * p.t.sim.link[1].st.delivered);
	EXPECT_EQ(0, p.t.sim.link[1].st.mtu_drops);
	EXPECT_PROBE_LOSSES_ONLY(p.t.srv.c);
	transfer_free(&p.t);
}

TEST(pmtu_1280_path_settles_below_it)
{
	struct setup su = pmtu_setup(1280, 41);
	struct pmtu_run p = { .settled = false };
	const struct psd_pmtu *pm;

	pm = run_pmtu(_metadata, &p, &su, 60 * SEC, "MTU 1280");
	ASSERT_TRUE(p.settled);
	EXPECT_LE(psd_pmtu_size(pm), 1280);
	EXPECT_GT(psd_pmtu_size(pm), 1280 - PSD_PMTU_STEP);
	EXPECT_GT(pm->st.probes_lost, 0);
	/* Only probes ever met the MTU, and none after the search. */
	EXPECT_EQ(pm->st.probes_lost, p.t.sim.link[1].st.mtu_drops);
	EXPECT_EQ(p.drops_settled, p.t.sim.link[1].st.mtu_drops);
	EXPECT_PROBE_LOSSES_ONLY(p.t.srv.c);
	transfer_free(&p.t);
}

TEST(pmtu_1200_path_stays_at_the_base)
{
	struct setup su = pmtu_setup(PSD_DGRAM_MIN, 42);
	struct pmtu_run p = { .settled = false };
	const struct psd_pmtu *pm;

	pm = run_pmtu(_metadata, &p, &su, 60 * SEC, "MTU 1200");
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm->state);
	EXPECT_EQ(PSD_DGRAM_MIN, psd_pmtu_size(pm));
	EXPECT_EQ(PSD_DGRAM_MIN, psd_conn_cc(p.t.srv.c)->mss);
	EXPECT_EQ(pm->st.probes_sent, pm->st.probes_lost);
	EXPECT_EQ(pm->st.probes_lost, p.t.sim.link[1].st.mtu_drops);
	EXPECT_PROBE_LOSSES_ONLY(p.t.srv.c);
	transfer_free(&p.t);
}

TEST(pmtu_black_hole_mid_transfer)
{
	struct setup su = pmtu_setup(1500, 43);
	struct pmtu_run p = { .shrink_at = 32 * 128 * KiB / 3 };
	const struct psd_pmtu *pm;

	pm = run_pmtu(_metadata, &p, &su, 120 * SEC, "MTU 1500, then 1200");
	ASSERT_NE(0, p.shrunk_at);
	EXPECT_EQ(1, pm->st.black_holes);
	EXPECT_EQ(PSD_DGRAM_MIN, psd_pmtu_size(pm));
	EXPECT_EQ(PSD_PMTU_COMPLETE, pm->state);
	/* The path shrank under a full window: recovered within seconds. */
	EXPECT_LT(p.t.end_time - p.shrunk_at, 10 * SEC);
	transfer_free(&p.t);
}

TEST(pmtu_on_lossy_paths)
{
	/* Random and bursty loss (and a 2 s outage) with probing on: every
	 * byte arrives, and whatever false alarms the losses raise, the
	 * connection ends at the size the path carries. */
	static const struct { double loss, bursty; uint64_t blackhole; } cases[] = {
		{ 0.02, 0, 0 }, { 0.05, 0, 0 }, { 0, 0.3, 0 }, { 0, 0, 2 * SEC },
	};

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct setup su = pmtu_setup(1500, 44 + i);
		struct pmtu_run p = { .settled = false };
		const struct psd_pmtu *pm;
		char what[64];

		su.up.loss = su.down.loss = cases[i].loss;
		if (cases[i].bursty) {
			bursty(&su.up, cases[i].bursty);
			bursty(&su.down, cases[i].bursty);
		}
		if (cases[i].blackhole) {
			su.up.blackhole_start = su.down.blackhole_start = 300 * MS;
			su.up.blackhole_end = su.down.blackhole_end =
				300 * MS + cases[i].blackhole;
		}
		snprintf(what, sizeof(what), "MTU 1500, case %u", i);
		pm = run_pmtu(_metadata, &p, &su, 600 * SEC, what);
		/* A false alarm costs a search, which may settle a step
		 * short of the maximum if loss takes its probes. */
		EXPECT_GE(psd_pmtu_size(pm), 1400);
		EXPECT_EQ(0, p.t.sim.link[1].st.mtu_drops);
		transfer_free(&p.t);
	}
}

TEST_HARNESS_MAIN
