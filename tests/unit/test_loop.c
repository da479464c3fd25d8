// SPDX-License-Identifier: GPL-2.0
/* The user_data codec and the loop's dispatch, reaping and quiesce. */
#include <poll.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "loop.h"

TEST(ud_roundtrip_extremes)
{
	static const uint16_t gens[] = { 0, 1, 0x7fff, 0xffff };
	static const uint32_t idxs[] = { 0, 1, 0x80000000u, 0xffffffffu };
	enum psd_op op;
	size_t g, i;

	for (op = PSD_OP_NONE + 1; op < __PSD_OP_MAX; op++) {
		for (g = 0; g < 4; g++) {
			for (i = 0; i < 4; i++) {
				struct psd_ud ud = { op, gens[g], idxs[i] };
				struct psd_ud back =
					psd_ud_decode(psd_ud_encode(ud));

				EXPECT_EQ(op, back.op);
				EXPECT_EQ(gens[g], back.gen);
				EXPECT_EQ(idxs[i], back.idx);
			}
		}
	}
}

TEST(ud_layout)
{
	struct psd_ud ud = { PSD_OP_CACHE_WRITE, 0xabcd, 0x12345678 };

	EXPECT_EQ((uint64_t)PSD_OP_CACHE_WRITE << 56 | 0xabcdull << 40 |
		  0x12345678ull, psd_ud_encode(ud));
}

TEST(ud_decode_rejects)
{
	/* user_data 0, an op past the table, reserved bits set. */
	EXPECT_EQ(PSD_OP_NONE, psd_ud_decode(0).op);
	EXPECT_EQ(PSD_OP_NONE, psd_ud_decode(5).op);
	EXPECT_EQ(PSD_OP_NONE,
		  psd_ud_decode((uint64_t)__PSD_OP_MAX << 56).op);
	EXPECT_EQ(PSD_OP_NONE, psd_ud_decode(0xffull << 56).op);
	EXPECT_EQ(PSD_OP_NONE,
		  psd_ud_decode((uint64_t)PSD_OP_TIMER << 56 | 1ull << 32).op);
}

struct seen {
	struct psd_loop *loop;
	unsigned int n;
	uint32_t last_idx;
	unsigned int want;
};

static void on_nop(void *ctx, struct psd_ud ud, int res, uint32_t flags)
{
	struct seen *s = ctx;

	(void)res;
	(void)flags;
	s->n++;
	s->last_idx = ud.idx;
	if (s->n == s->want)
		psd_loop_stop(s->loop);
}

/* More SQEs than the SQ holds: psd_loop_sqe() must submit to make room. */
TEST(dispatch_more_than_the_ring)
{
	struct seen s = { .want = 1000 };
	struct psd_loop *loop;
	uint32_t i;

	ASSERT_EQ(0, psd_loop_init(&loop, 8));
	s.loop = loop;
	psd_loop_set_handler(loop, PSD_OP_TIMER, on_nop, &s);
	for (i = 0; i < s.want; i++) {
		struct io_uring_sqe *sqe = psd_loop_sqe(loop);

		ASSERT_NE(NULL, sqe);
		io_uring_prep_nop(sqe);
		psd_loop_tag(sqe, (struct psd_ud){ PSD_OP_TIMER, 7, i });
	}
	ASSERT_EQ(0, psd_loop_run(loop));
	EXPECT_EQ(s.want, s.n);
	EXPECT_EQ(s.want - 1, s.last_idx);
	EXPECT_EQ(0, psd_loop_outstanding(loop));
	psd_loop_uninit(loop);
}

/* A poll that never fires is cancelled and reaped by quiesce. */
TEST(quiesce_cancels)
{
	struct psd_loop *loop;
	struct io_uring_sqe *sqe;
	int p[2];

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, psd_loop_init(&loop, 8));
	sqe = psd_loop_sqe(loop);
	ASSERT_NE(NULL, sqe);
	io_uring_prep_poll_multishot(sqe, p[0], POLLIN);
	psd_loop_tag(sqe, (struct psd_ud){ .op = PSD_OP_NETLINK });
	EXPECT_EQ(1, psd_loop_outstanding(loop));
	EXPECT_TRUE(psd_loop_quiesce(loop, 2000));
	EXPECT_EQ(0, psd_loop_outstanding(loop));
	psd_loop_uninit(loop);
	close(p[0]);
	close(p[1]);
}

TEST_HARNESS_MAIN
