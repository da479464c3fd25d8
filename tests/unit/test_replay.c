// SPDX-License-Identifier: GPL-2.0
/*
 * The anti-replay window (replay.h): in order, out of order within the
 * window, duplicates, too old, jumps of every size (stale bits of the ring
 * must not survive a jump), the top of the 64-bit range, and a long random
 * run against a model that remembers every number ever accepted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "replay.h"

TEST(in_order_then_duplicates)
{
	struct psd_replay r;

	psd_replay_init(&r);
	for (uint64_t pn = 0; pn < 10000; pn++)
		ASSERT_EQ(0, psd_replay_accept(&r, pn));
	EXPECT_EQ(-EALREADY, psd_replay_accept(&r, 9999));
	EXPECT_EQ(-EALREADY, psd_replay_accept(&r, 9999 - PSD_REPLAY_WINDOW + 1));
	EXPECT_EQ(-ESTALE, psd_replay_accept(&r, 9999 - PSD_REPLAY_WINDOW));
	EXPECT_EQ(-ESTALE, psd_replay_accept(&r, 0));
}

TEST(out_of_order_within_the_window)
{
	const uint64_t top = 5000, lo = top - PSD_REPLAY_WINDOW + 1;
	uint64_t order[PSD_REPLAY_WINDOW - 1];
	struct psd_replay r;
	size_t n = 0;

	psd_replay_init(&r);
	ASSERT_EQ(0, psd_replay_accept(&r, top));
	for (uint64_t pn = lo; pn < top; pn++)
		order[n++] = pn;
	srand(6479);
	for (size_t i = n - 1; i > 0; i--) {	/* Fisher-Yates */
		size_t j = (size_t)rand() % (i + 1);
		uint64_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		ASSERT_EQ(0, psd_replay_check(&r, order[i]));
		ASSERT_EQ(0, psd_replay_accept(&r, order[i]));
		ASSERT_EQ(-EALREADY, psd_replay_accept(&r, order[i]));
	}
	EXPECT_EQ(-ESTALE, psd_replay_accept(&r, lo - 1));
	EXPECT_EQ(top, r.greatest);
}

TEST(check_does_not_mark)
{
	struct psd_replay r;

	psd_replay_init(&r);
	EXPECT_EQ(0, psd_replay_check(&r, 0));
	EXPECT_EQ(0, psd_replay_check(&r, 7));
	EXPECT_EQ(0, psd_replay_accept(&r, 0));
	EXPECT_EQ(-EALREADY, psd_replay_check(&r, 0));
	EXPECT_EQ(0, psd_replay_accept(&r, 7));
	EXPECT_EQ(0, psd_replay_accept(&r, 3));	/* below greatest, new */
}

/* After a jump no bit of the old ring may make a new number look seen. */
TEST(jumps_clear_the_ring)
{
	static const uint64_t jumps[] = { 1, 63, 64, 65, 1983, 1984, 2047,
					  2048, 2049, 4096, 100000,
					  1ull << 40 };
	struct psd_replay r;

	for (size_t j = 0; j < sizeof(jumps) / sizeof(jumps[0]); j++) {
		uint64_t top = 2047 + jumps[j];

		psd_replay_init(&r);
		for (uint64_t pn = 0; pn <= 2047; pn++)
			ASSERT_EQ(0, psd_replay_accept(&r, pn));
		ASSERT_EQ(0, psd_replay_accept(&r, top));
		for (uint64_t back = 1; back < PSD_REPLAY_WINDOW; back++) {
			uint64_t pn = top - back;
			int want = pn <= 2047 ? -EALREADY : 0;

			ASSERT_EQ(want, psd_replay_accept(&r, pn))
				TH_LOG("jump %llu: pn %llu",
				       (unsigned long long)jumps[j],
				       (unsigned long long)pn);
		}
		EXPECT_EQ(-ESTALE, psd_replay_accept(&r, top - PSD_REPLAY_WINDOW));
	}
}

TEST(top_of_the_64_bit_range)
{
	struct psd_replay r;

	psd_replay_init(&r);
	EXPECT_EQ(0, psd_replay_accept(&r, UINT64_MAX - 5));
	EXPECT_EQ(0, psd_replay_accept(&r, UINT64_MAX));
	EXPECT_EQ(-EALREADY, psd_replay_accept(&r, UINT64_MAX));
	EXPECT_EQ(-EALREADY, psd_replay_accept(&r, UINT64_MAX - 5));
	EXPECT_EQ(0, psd_replay_accept(&r, UINT64_MAX - 1));
	EXPECT_EQ(-ESTALE, psd_replay_accept(&r, 0));
	EXPECT_EQ(-ESTALE, psd_replay_accept(&r, UINT64_MAX - PSD_REPLAY_WINDOW));
}

#define MODEL_SPAN	200000

/* Random steps, mostly near the top, some jumps, many repeats. */
TEST(random_run_against_a_model)
{
	uint8_t *seen = calloc(MODEL_SPAN, 1);
	uint64_t greatest = 0;
	struct psd_replay r;

	ASSERT_NE(NULL, seen);
	psd_replay_init(&r);
	srand(42);
	for (int i = 0; i < 400000; i++) {
		long delta = rand() % 100 == 0 ? rand() % 5000 :
			     rand() % 2200 - 2100;
		long pn_l = (long)greatest + delta;
		uint64_t pn;
		int want;

		if (pn_l < 0 || pn_l >= MODEL_SPAN)
			continue;
		pn = (uint64_t)pn_l;
		if (pn <= greatest && greatest - pn >= PSD_REPLAY_WINDOW)
			want = -ESTALE;
		else if (seen[pn])
			want = -EALREADY;
		else
			want = 0;
		ASSERT_EQ(want, psd_replay_accept(&r, pn))
			TH_LOG("step %d pn %llu greatest %llu", i,
			       (unsigned long long)pn,
			       (unsigned long long)greatest);
		if (!want) {
			seen[pn] = 1;
			if (pn > greatest)
				greatest = pn;
		}
	}
	free(seen);
}

TEST_HARNESS_MAIN
