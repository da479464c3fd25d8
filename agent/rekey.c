// SPDX-License-Identifier: GPL-2.0
/*
 * The rekey / reject decision (rekey.h).
 */
#include "rekey.h"

struct limits {
	uint64_t rekey_after, reject_after, integrity;
};

static struct limits limits_of(enum psd_aead_alg alg)
{
	if (alg == PSD_AEAD_AES256_GCM)
		return (struct limits){ PSD_AESGCM_REKEY_AFTER_MESSAGES,
					PSD_AESGCM_REJECT_AFTER_MESSAGES,
					PSD_AESGCM_INTEGRITY_LIMIT };
	return (struct limits){ PSD_CHACHA_REKEY_AFTER_MESSAGES,
				PSD_CHACHA_REJECT_AFTER_MESSAGES,
				PSD_CHACHA_INTEGRITY_LIMIT };
}

uint64_t psd_rekey_reject_after_messages(enum psd_aead_alg alg)
{
	return limits_of(alg).reject_after;
}

enum psd_key_verdict psd_rekey_decide(const struct psd_key_usage *u,
				      uint64_t now_ns)
{
	struct limits l = limits_of(u->alg);
	uint64_t age = now_ns - u->birth_ns;
	uint64_t used = u->sent > u->received ? u->sent : u->received;

	if (age >= PSD_REJECT_AFTER_TIME || used >= l.reject_after ||
	    u->failed_opens >= l.integrity)
		return PSD_KEY_REJECT;
	if (used >= l.rekey_after ||
	    (u->initiator && age >= PSD_REKEY_AFTER_TIME))
		return PSD_KEY_REKEY;
	return PSD_KEY_OK;
}
