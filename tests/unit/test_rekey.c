// SPDX-License-Identifier: GPL-2.0
/*
 * The rekey / reject decision (rekey.h) at each threshold's edges, for
 * both algorithms and both roles.
 */
#include "kselftest_harness.h"

#include "rekey.h"

#define T0	(1000 * PSD_NS_PER_S)

static struct psd_key_usage fresh(enum psd_aead_alg alg, bool initiator)
{
	return (struct psd_key_usage){ .alg = alg, .initiator = initiator,
				       .birth_ns = T0 };
}

TEST(time_rekeys_the_initiator_only_and_rejects_both)
{
	struct psd_key_usage i = fresh(PSD_AEAD_CHACHA20_POLY1305, true);
	struct psd_key_usage r = fresh(PSD_AEAD_CHACHA20_POLY1305, false);

	EXPECT_EQ(PSD_KEY_OK, psd_rekey_decide(&i, T0));
	EXPECT_EQ(PSD_KEY_OK, psd_rekey_decide(&i, T0 + PSD_REKEY_AFTER_TIME - 1));
	EXPECT_EQ(PSD_KEY_REKEY, psd_rekey_decide(&i, T0 + PSD_REKEY_AFTER_TIME));
	EXPECT_EQ(PSD_KEY_OK, psd_rekey_decide(&r, T0 + PSD_REKEY_AFTER_TIME));
	EXPECT_EQ(PSD_KEY_OK, psd_rekey_decide(&r, T0 + PSD_REJECT_AFTER_TIME - 1));
	EXPECT_EQ(PSD_KEY_REKEY, psd_rekey_decide(&i, T0 + PSD_REJECT_AFTER_TIME - 1));
	EXPECT_EQ(PSD_KEY_REJECT, psd_rekey_decide(&i, T0 + PSD_REJECT_AFTER_TIME));
	EXPECT_EQ(PSD_KEY_REJECT, psd_rekey_decide(&r, T0 + PSD_REJECT_AFTER_TIME));
	/* A clock before the keys' birth is a bug: fail closed. */
	EXPECT_EQ(PSD_KEY_REJECT, psd_rekey_decide(&r, T0 - 1));
}

/* Message limits: per algorithm, sent or received, either role. */
static void check_messages(struct __test_metadata *_metadata,
			   enum psd_aead_alg alg, uint64_t rekey,
			   uint64_t reject)
{
	for (int role = 0; role < 2; role++) {
		struct psd_key_usage u = fresh(alg, role);

		u.sent = rekey - 1;
		EXPECT_EQ(PSD_KEY_OK, psd_rekey_decide(&u, T0 + 1));
		u.sent = rekey;
		EXPECT_EQ(PSD_KEY_REKEY, psd_rekey_decide(&u, T0 + 1));
		u.sent = reject - 1;
		EXPECT_EQ(PSD_KEY_REKEY, psd_rekey_decide(&u, T0 + 1));
		u.sent = reject;
		EXPECT_EQ(PSD_KEY_REJECT, psd_rekey_decide(&u, T0 + 1));
		u.sent = 0;
		u.received = rekey;
		EXPECT_EQ(PSD_KEY_REKEY, psd_rekey_decide(&u, T0 + 1));
		u.received = reject;
		EXPECT_EQ(PSD_KEY_REJECT, psd_rekey_decide(&u, T0 + 1));
	}
	EXPECT_EQ(reject, psd_rekey_reject_after_messages(alg));
}

TEST(message_limits_per_algorithm)
{
	check_messages(_metadata, PSD_AEAD_CHACHA20_POLY1305,
		       PSD_CHACHA_REKEY_AFTER_MESSAGES,
		       PSD_CHACHA_REJECT_AFTER_MESSAGES);
	check_messages(_metadata, PSD_AEAD_AES256_GCM,
		       PSD_AESGCM_REKEY_AFTER_MESSAGES,
		       PSD_AESGCM_REJECT_AFTER_MESSAGES);
	/* AES-GCM's limit is far below ChaCha20's. */
	EXPECT_LT(PSD_AESGCM_REJECT_AFTER_MESSAGES,
		  PSD_CHACHA_REKEY_AFTER_MESSAGES);
}

TEST(forgeries_beyond_the_integrity_limit_reject)
{
	struct psd_key_usage c = fresh(PSD_AEAD_CHACHA20_POLY1305, false);
	struct psd_key_usage g = fresh(PSD_AEAD_AES256_GCM, false);

	c.failed_opens = PSD_CHACHA_INTEGRITY_LIMIT - 1;
	EXPECT_EQ(PSD_KEY_OK, psd_rekey_decide(&c, T0));
	c.failed_opens++;
	EXPECT_EQ(PSD_KEY_REJECT, psd_rekey_decide(&c, T0));
	g.failed_opens = PSD_CHACHA_INTEGRITY_LIMIT;
	EXPECT_EQ(PSD_KEY_OK, psd_rekey_decide(&g, T0));
	g.failed_opens = PSD_AESGCM_INTEGRITY_LIMIT;
	EXPECT_EQ(PSD_KEY_REJECT, psd_rekey_decide(&g, T0));
}

TEST_HARNESS_MAIN
