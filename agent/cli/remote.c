// SPDX-License-Identifier: GPL-2.0
/* Manifests and index chunks from the daemon: see remote.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "remote.h"

int cli_remote_manifest(struct cli_client *c, const char *arg,
			const uint8_t *id, struct psd_manifest **ret)
{
	const uint8_t *bytes, *got_id;
	struct psd_mf_err err;
	struct psd_ctl_msg m;
	uint32_t len, id_len;
	int r;

	cli_client_begin(c, PSD_CTL_GET_MANIFEST);
	if (arg)
		psd_ctl_put_str(&c->req, PSD_CTL_A_ID_PREFIX, arg);
	else
		psd_ctl_put_bytes(&c->req, PSD_CTL_A_ID, id, PSD_HASH_LEN);
	r = cli_client_call(c, &m);
	if (r)
		return r;
	bytes = psd_ctl_bytes(&m.at, PSD_CTL_A_MANIFEST, &len);
	got_id = psd_ctl_bytes(&m.at, PSD_CTL_A_ID, &id_len);
	r = psd_manifest_decode(bytes, len, ret, &err);
	if (r) {
		snprintf(c->err, sizeof(c->err),
			 "peersnapd sent a bad manifest: %s", err.msg);
		return r;
	}
	if (memcmp(got_id, (*ret)->id, PSD_HASH_LEN) ||
	    (id && memcmp(id, (*ret)->id, PSD_HASH_LEN))) {
		psd_manifest_free(*ret);
		snprintf(c->err, sizeof(c->err),
			 "peersnapd sent the manifest of another snapshot");
		return -EPROTO;
	}
	return 0;
}

int cli_remote_index(struct cli_client *c, const struct psd_manifest *m,
		     uint32_t k, uint8_t *buf, size_t *ret_len)
{
	size_t want = psd_geometry_index_len(&m->geo, k);
	struct psd_mf_err err;
	struct psd_ctl_msg r_msg;
	const uint8_t *data;
	uint32_t len;
	int r;

	if (!want) {
		snprintf(c->err, sizeof(c->err), "no index chunk %u", k);
		return -ERANGE;
	}
	*ret_len = want;
	if (psd_hash_is_zero(m->index_hashes[k])) {
		memset(buf, 0, want);
		return 0;
	}
	cli_client_begin(c, PSD_CTL_GET_INDEX);
	psd_ctl_put_bytes(&c->req, PSD_CTL_A_ID, m->id, PSD_HASH_LEN);
	psd_ctl_put_u32(&c->req, PSD_CTL_A_INDEX, k);
	r = cli_client_call(c, &r_msg);
	if (r)
		return r;
	data = psd_ctl_bytes(&r_msg.at, PSD_CTL_A_INDEX_DATA, &len);
	r = psd_manifest_index_verify(m, k, data, len, &err);
	if (r) {
		snprintf(c->err, sizeof(c->err),
			 "peersnapd sent a bad index chunk: %s", err.msg);
		return r;
	}
	memcpy(buf, data, want);
	return 0;
}
