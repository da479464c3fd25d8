// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the control protocol's frame parser (agent/ctl.c) on
 * arbitrary bytes, as a client of the control socket (or a daemon, for
 * the CLI) could send them. Every input must end in a refusal with a
 * reason, or in a message whose every attribute and nest is readable
 * within the input: the accessors below touch every byte the parser
 * vouched for, and a valid frame must survive being rebuilt by the
 * builder and parsed again with the same result.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const uint16_t nest_types[] = {
	PSD_CTL_A_SNAPSHOT, PSD_CTL_A_COUNTER, PSD_CTL_A_PEER,
};

/* Reads every known attribute of one level; strings must end in the input. */
static void touch(const struct psd_ctl_attrs *at, const uint8_t *data,
		  size_t size)
{
	for (uint16_t t = 1; t < __PSD_CTL_A_MAX; t++) {
		const uint8_t *v;
		const char *s;
		uint32_t len;

		v = psd_ctl_bytes(at, t, &len);
		if (!v)
			continue;
		if (v < data || v + len > data + size)
			abort();
		s = psd_ctl_str(at, t);
		if (s && strlen(s) + 1 != len)
			abort();
	}
}

/* Rebuilds m's top level with the builder (nests copied as raw values)
 * and checks the copy parses to the same thing. */
static void rebuild(const struct psd_ctl_msg *m)
{
	struct psd_ctl_buf b = { 0 };
	struct psd_ctl_msg m2;
	struct psd_ctl_err err;

	psd_ctl_begin(&b, m->type, m->seq);
	for (uint16_t t = 1; t < __PSD_CTL_A_MAX; t++) {
		uint32_t len;
		const uint8_t *v = psd_ctl_bytes(&m->at, t, &len);

		if (v)
			psd_ctl_put_bytes(&b, t, v, len);
	}
	if (psd_ctl_finish(&b))
		abort();	/* never longer than the original */
	if (psd_ctl_parse(b.p, b.len, &m2, &err))
		abort();
	if (m2.type != m->type || m2.seq != m->seq)
		abort();
	for (uint16_t t = 1; t < __PSD_CTL_A_MAX; t++) {
		uint32_t l1, l2;
		const uint8_t *v1 = psd_ctl_bytes(&m->at, t, &l1);
		const uint8_t *v2 = psd_ctl_bytes(&m2.at, t, &l2);

		if (!v1 != !v2 || l1 != l2 || (v1 && memcmp(v1, v2, l1)))
			abort();
	}
	psd_ctl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct psd_ctl_attrs nest;
	struct psd_ctl_msg m;
	struct psd_ctl_err err;
	uint32_t flen;
	int r;

	r = psd_ctl_frame_len(data, size, &flen, &err);
	if (r && r != -EAGAIN && r != -EBADMSG && r != -EMSGSIZE)
		abort();
	memset(&err, 0, sizeof(err));
	r = psd_ctl_parse(data, size, &m, &err);
	if (r) {
		if (r != -EBADMSG && r != -EMSGSIZE && r != -EOPNOTSUPP)
			abort();
		if (!err.msg[0])
			abort();	/* every refusal says why */
		return 0;
	}
	if (flen != size)
		abort();
	touch(&m.at, data, size);
	for (size_t i = 0; i < sizeof(nest_types) / sizeof(nest_types[0]); i++) {
		uint32_t pos = 0;

		while (psd_ctl_nest_next(&m, nest_types[i], &pos, &nest) == 1)
			touch(&nest, data, size);
	}
	/* Repeated nests keep only their first occurrence in m.at, and
	 * unknown attributes are dropped: the rebuilt frame is never longer. */
	rebuild(&m);
	return 0;
}
