// SPDX-License-Identifier: GPL-2.0
/* The CLI's argument parsers: see parse.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "origin.h"
#include "parse.h"

static int suffix_shift(const char *s, unsigned int *ret)
{
	static const char units[] = "KMG";
	const char *u;

	if (!*s) {
		*ret = 0;
		return 0;
	}
	u = strchr(units, toupper((unsigned char)*s));
	if (!u)
		return -EINVAL;
	s++;
	if (*s && strcasecmp(s, "iB") && strcasecmp(s, "B"))
		return -EINVAL;
	*ret = 10 * (unsigned int)(u - units + 1);
	return 0;
}

int cli_parse_size(const char *s, uint64_t *ret)
{
	uint64_t v = 0;
	unsigned int shift;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		uint64_t d = (uint64_t)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (suffix_shift(p, &shift))
		return -EINVAL;
	if (shift && v > UINT64_MAX >> shift)
		return -ERANGE;
	*ret = v << shift;
	return 0;
}

int cli_parse_chunk_size(const char *s, uint32_t *ret)
{
	uint64_t v;

	if (cli_parse_size(s, &v) || v < PSD_CHUNK_SIZE_MIN ||
	    v > PSD_CHUNK_SIZE_MAX || (v & (v - 1)))
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

int cli_check_id_arg(const char *s)
{
	size_t n = strlen(s);

	if (n < CLI_ID_PREFIX_MIN || n > CLI_ID_HEX_MAX ||
	    psd_hex_span(s, n) != n)
		return -EINVAL;
	return 0;
}

int cli_format_table(char *buf, size_t cap, const struct psd_manifest *m,
		     const char *metadata, const char *cache)
{
	char hex[PSD_SNAPSHOT_HEX_LEN + 1];
	uint32_t chunk_sectors = m->geo.chunk_size / 512;
	int n;

	psd_hex_id_format(m->id, hex);
	n = snprintf(buf, cap, "0 %" PRIu64 " peersnap %s %s %u %s",
		     m->geo.chunk_count * chunk_sectors, metadata, cache,
		     chunk_sectors, hex);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

const char *cli_table_params(const char *line)
{
	const char *p = line;
	int i;

	/* Skip "0", "<sectors>", "peersnap" and the spaces after them. */
	for (i = 0; i < 3; i++) {
		p = strchr(p, ' ');
		if (!p)
			return "";
		p++;
	}
	return p;
}

int cli_parse_status(const char *line, struct cli_target_status *ret)
{
	struct cli_target_status s;
	char agent[16], state[16];
	uint64_t md_used, md_total, rejected;
	int n = 0;

	if (sscanf(line,
		   "%" SCNu64 "/%" SCNu64 " %" SCNu32 " %" SCNu64 "/%" SCNu64
		   " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
		   " %15s %15s%n",
		   &md_used, &md_total, &s.chunk_sectors, &s.present, &s.total,
		   &s.dirty, &s.inflight, &s.fetched, &s.failed, &rejected,
		   agent, state, &n) != 12 || !n)
		return -EINVAL;
	if (s.present > s.total || (strcmp(state, "idle") &&
				    strcmp(state, "hydrating")) ||
	    (strcmp(agent, "connected") && strcmp(agent, "disconnected")))
		return -EINVAL;
	s.agent_connected = !strcmp(agent, "connected");
	s.hydrating = !strcmp(state, "hydrating");
	*ret = s;
	return 0;
}
