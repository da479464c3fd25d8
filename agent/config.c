// SPDX-License-Identifier: GPL-2.0
/* peersnapd configuration: see config.h for the file format. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "origin.h"

enum section {
	SECTION_NONE,
	SECTION_AGENT,
	SECTION_ORIGIN,
	SECTION_TRUST,
	SECTION_PEER,
};

/* Parser state for one buffer; why is the reason for the current error. */
struct parser {
	struct psd_config cfg;
	enum section section;
	unsigned int seen;	/* bit per agent_keys[] entry */
	const char *why;
};

struct agent_key {
	const char *name;
	int (*set)(struct parser *p, const char *value);
};

#define SUN_PATH_MAX	(sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

int psd_config_set_string(char **field, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

int psd_config_init(struct psd_config *ret)
{
	struct psd_config c = {
		.port = PSD_DEFAULT_PORT,
		.max_inflight = PSD_DEFAULT_MAX_INFLIGHT,
		.max_queued = PSD_DEFAULT_MAX_QUEUED,
		.max_buffer_mib = PSD_DEFAULT_MAX_BUFFER_MIB,
	};

	if (psd_config_set_string(&c.listen, PSD_DEFAULT_LISTEN) ||
	    psd_config_set_string(&c.state_dir, PSD_DEFAULT_STATE_DIR) ||
	    psd_config_set_string(&c.control_socket,
				  PSD_DEFAULT_CONTROL_SOCKET)) {
		psd_config_free(&c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void psd_config_free(struct psd_config *cfg)
{
	size_t i;

	free(cfg->listen);
	free(cfg->identity);
	free(cfg->state_dir);
	free(cfg->control_socket);
	for (i = 0; i < cfg->n_origins; i++)
		free(cfg->origins[i].path);
	free(cfg->origins);
	free(cfg->publishers);
	free(cfg->peers);
	memset(cfg, 0, sizeof(*cfg));
}

char *psd_config_identity_path(const struct psd_config *cfg)
{
	char *s;

	if (cfg->identity)
		return strdup(cfg->identity);
	if (asprintf(&s, "%s/%s", cfg->state_dir, PSD_IDENTITY_FILE) < 0)
		return NULL;
	return s;
}

int psd_config_set_origin(struct psd_config *cfg,
			  const uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN],
			  const char *path)
{
	struct psd_origin_entry *v;
	size_t i;

	for (i = 0; i < cfg->n_origins; i++)
		if (!memcmp(cfg->origins[i].id, id, PEERSNAP_SNAPSHOT_ID_LEN))
			return psd_config_set_string(&cfg->origins[i].path,
						     path);
	if (cfg->n_origins >= PSD_CONFIG_MAX_ORIGINS)
		return -E2BIG;
	v = realloc(cfg->origins, (cfg->n_origins + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	cfg->origins = v;
	v[cfg->n_origins].path = strdup(path);
	if (!v[cfg->n_origins].path)
		return -ENOMEM;
	memcpy(v[cfg->n_origins].id, id, PEERSNAP_SNAPSHOT_ID_LEN);
	cfg->n_origins++;
	return 0;
}

static bool has_publisher(const struct psd_config *cfg,
			  const uint8_t key[PSD_CONFIG_KEY_LEN])
{
	size_t i;

	for (i = 0; i < cfg->n_publishers; i++)
		if (!memcmp(cfg->publishers[i], key, PSD_CONFIG_KEY_LEN))
			return true;
	return false;
}

int psd_config_add_publisher(struct psd_config *cfg,
			     const uint8_t key[PSD_CONFIG_KEY_LEN])
{
	uint8_t (*v)[PSD_CONFIG_KEY_LEN];

	if (has_publisher(cfg, key))
		return 0;
	if (cfg->n_publishers >= PSD_CONFIG_MAX_PUBLISHERS)
		return -E2BIG;
	v = realloc(cfg->publishers, (cfg->n_publishers + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v[cfg->n_publishers++], key, PSD_CONFIG_KEY_LEN);
	cfg->publishers = v;
	return 0;
}

/* Strict unsigned decimal: digits only, no sign, no spaces, in range. */
static int parse_uint(const char *s, unsigned long min, unsigned long max,
		      unsigned long *ret)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned long)v;
	return 0;
}

static int set_uint(struct parser *p, const char *value, unsigned long min,
		    unsigned long max, const char *why, unsigned long *ret)
{
	if (parse_uint(value, min, max, ret) < 0) {
		p->why = why;
		return -EINVAL;
	}
	return 0;
}

static int set_path(struct parser *p, char **field, const char *value,
		    size_t max)
{
	if (value[0] != '/') {
		p->why = "path must be absolute";
		return -EINVAL;
	}
	if (strlen(value) > max) {
		p->why = "path too long";
		return -EINVAL;
	}
	return psd_config_set_string(field, value);
}

static int set_listen(struct parser *p, const char *value)
{
	unsigned char addr[16];

	if (inet_pton(AF_INET, value, addr) != 1 &&
	    inet_pton(AF_INET6, value, addr) != 1) {
		p->why = "listen must be an IPv4 or IPv6 address";
		return -EINVAL;
	}
	return psd_config_set_string(&p->cfg.listen, value);
}

static int set_port(struct parser *p, const char *value)
{
	unsigned long v;
	int r = set_uint(p, value, 1, 65535, "port must be 1..65535", &v);

	if (!r)
		p->cfg.port = (uint16_t)v;
	return r;
}

static int set_identity(struct parser *p, const char *value)
{
	return set_path(p, &p->cfg.identity, value, PATH_MAX - 1);
}

static int set_state_dir(struct parser *p, const char *value)
{
	return set_path(p, &p->cfg.state_dir, value, PATH_MAX - 64);
}

static int set_control_socket(struct parser *p, const char *value)
{
	return set_path(p, &p->cfg.control_socket, value, SUN_PATH_MAX);
}

static int set_max_inflight(struct parser *p, const char *value)
{
	unsigned long v;
	int r = set_uint(p, value, 1, PSD_MAX_MAX_INFLIGHT,
			 "max_inflight must be 1..4096", &v);

	if (!r)
		p->cfg.max_inflight = (unsigned int)v;
	return r;
}

static int set_max_queued(struct parser *p, const char *value)
{
	unsigned long v;
	int r = set_uint(p, value, 1, PSD_MAX_MAX_QUEUED,
			 "max_queued must be 1..1048576", &v);

	if (!r)
		p->cfg.max_queued = (unsigned int)v;
	return r;
}

static int set_max_buffer_mib(struct parser *p, const char *value)
{
	unsigned long v;
	int r = set_uint(p, value, PSD_MIN_MAX_BUFFER_MIB,
			 PSD_MAX_MAX_BUFFER_MIB,
			 "max_buffer_mib must be 64..65536", &v);

	if (!r)
		p->cfg.max_buffer_mib = (unsigned int)v;
	return r;
}

static int set_congestion(struct parser *p, const char *value)
{
	if (!strcmp(value, "bbr"))
		p->cfg.congestion = PSD_CONGESTION_BBR;
	else if (!strcmp(value, "cubic"))
		p->cfg.congestion = PSD_CONGESTION_CUBIC;
	else {
		p->why = "congestion must be bbr or cubic";
		return -EINVAL;
	}
	return 0;
}

static const struct agent_key agent_keys[] = {
	{ "listen", set_listen },
	{ "port", set_port },
	{ "identity", set_identity },
	{ "state_dir", set_state_dir },
	{ "control_socket", set_control_socket },
	{ "max_inflight", set_max_inflight },
	{ "max_queued", set_max_queued },
	{ "max_buffer_mib", set_max_buffer_mib },
	{ "congestion", set_congestion },
};

static int agent_key(struct parser *p, const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < sizeof(agent_keys) / sizeof(agent_keys[0]); i++) {
		if (strcmp(key, agent_keys[i].name))
			continue;
		if (p->seen & (1u << i)) {
			p->why = "duplicate key";
			return -EINVAL;
		}
		p->seen |= 1u << i;
		return agent_keys[i].set(p, value);
	}
	p->why = "unknown key in [agent]";
	return -EINVAL;
}

static int origin_key(struct parser *p, const char *key, const char *value)
{
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
	size_t i;

	if (psd_hex_id_parse(key, strlen(key), id) < 0) {
		p->why = "origin key must be a 64-hex-digit snapshot id";
		return -EINVAL;
	}
	for (i = 0; i < p->cfg.n_origins; i++) {
		if (!memcmp(p->cfg.origins[i].id, id, sizeof(id))) {
			p->why = "duplicate origin";
			return -EINVAL;
		}
	}
	if (value[0] != '/') {
		p->why = "path must be absolute";
		return -EINVAL;
	}
	if (p->cfg.n_origins >= PSD_CONFIG_MAX_ORIGINS) {
		p->why = "too many origins";
		return -EINVAL;
	}
	return psd_config_set_origin(&p->cfg, id, value);
}

static int trust_key(struct parser *p, const char *key, const char *value)
{
	uint8_t pk[PSD_CONFIG_KEY_LEN];

	if (strcmp(key, "publisher")) {
		p->why = "unknown key in [trust] (expected 'publisher')";
		return -EINVAL;
	}
	/* Public keys are written like snapshot ids: 64 hex digits. */
	if (psd_hex_id_parse(value, strlen(value), pk) < 0) {
		p->why = "publisher must be a 64-hex-digit public key";
		return -EINVAL;
	}
	if (has_publisher(&p->cfg, pk)) {
		p->why = "duplicate publisher";
		return -EINVAL;
	}
	if (p->cfg.n_publishers >= PSD_CONFIG_MAX_PUBLISHERS) {
		p->why = "too many publishers";
		return -EINVAL;
	}
	return psd_config_add_publisher(&p->cfg, pk);
}

/* ---- [peer] and --peer: a peer's endpoint and key (no resolving) ---- */

/* Letters, digits and '-' in labels of 1..63, dots between: RFC 1123. */
static bool dns_name_valid(const char *s, size_t len)
{
	size_t label = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && !(c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return len > 0;
}

static bool digits_and_dots(const char *s)
{
	return strspn(s, "0123456789.") == strlen(s);
}

/* Checks host (NUL-terminated) as an IPv4 literal or a DNS name. */
static int check_plain_host(const char *host, const char **why)
{
	struct in_addr a4;

	if (digits_and_dots(host)) {
		if (inet_pton(AF_INET, host, &a4) != 1) {
			*why = "bad IPv4 address";
			return -EINVAL;
		}
		return 0;
	}
	if (!dns_name_valid(host, strlen(host))) {
		*why = "bad host name";
		return -EINVAL;
	}
	return 0;
}

/* Splits "[V6]:PORT" or "HOST:PORT"; host copied to ret->host. */
static int split_endpoint(const char *s, size_t len, struct psd_peer_spec *ret,
			  const char **ret_port, const char **why)
{
	const char *host = s, *colon, *close;
	size_t host_len;

	if (len && s[0] == '[') {
		close = memchr(s, ']', len);
		if (!close || close + 1 == s + len || close[1] != ':') {
			*why = "expected [IPV6]:PORT";
			return -EINVAL;
		}
		host = s + 1;
		colon = close + 1;
		host_len = (size_t)(close - host);
	} else {
		colon = memrchr(s, ':', len);
		if (!colon) {
			*why = "expected HOST:PORT";
			return -EINVAL;
		}
		host_len = (size_t)(colon - s);
		if (memchr(s, ':', host_len)) {
			*why = "an IPv6 address needs brackets: [ADDRESS]:PORT";
			return -EINVAL;
		}
	}
	if (host_len == 0 || host_len > PSD_PEER_HOST_MAX ||
	    memchr(host, '\0', host_len)) {
		*why = "bad host";
		return -EINVAL;
	}
	memcpy(ret->host, host, host_len);
	ret->host[host_len] = '\0';
	*ret_port = colon + 1;
	return 0;
}

int psd_peer_endpoint_parse(const char *s, size_t len,
			    struct psd_peer_spec *ret, const char **why)
{
	struct psd_peer_spec spec;
	char port[8];
	const char *port_start;
	struct in6_addr a6;
	unsigned long v;
	size_t port_len;
	int r;

	memset(&spec, 0, sizeof(spec));
	r = split_endpoint(s, len, &spec, &port_start, why);
	if (r < 0)
		return r;
	if (s[0] == '[') {
		if (inet_pton(AF_INET6, spec.host, &a6) != 1) {
			*why = "bad IPv6 address";
			return -EINVAL;
		}
	} else if (check_plain_host(spec.host, why) < 0) {
		return -EINVAL;
	}
	port_len = (size_t)(s + len - port_start);
	if (port_len == 0 || port_len >= sizeof(port)) {
		*why = "port must be 1..65535";
		return -EINVAL;
	}
	memcpy(port, port_start, port_len);
	port[port_len] = '\0';
	if (parse_uint(port, 1, 65535, &v) < 0) {
		*why = "port must be 1..65535";
		return -EINVAL;
	}
	spec.port = (uint16_t)v;
	memcpy(ret->host, spec.host, sizeof(spec.host));
	ret->port = spec.port;
	return 0;
}

int psd_peer_arg_parse(const char *arg, struct psd_peer_spec *ret,
		       const char **why)
{
	const char *eq = strrchr(arg, '=');
	struct psd_peer_spec spec;

	memset(&spec, 0, sizeof(spec));
	if (!eq) {
		*why = "expected HOST:PORT=PUBKEY";
		return -EINVAL;
	}
	if (psd_peer_endpoint_parse(arg, (size_t)(eq - arg), &spec, why) < 0)
		return -EINVAL;
	if (psd_hex_id_parse(eq + 1, strlen(eq + 1), spec.key) < 0) {
		*why = "peer key must be 64 hex digits";
		return -EINVAL;
	}
	*ret = spec;
	return 0;
}

static struct psd_peer_spec *find_peer(const struct psd_config *cfg,
				       const uint8_t key[PSD_CONFIG_KEY_LEN])
{
	for (size_t i = 0; i < cfg->n_peers; i++)
		if (!memcmp(cfg->peers[i].key, key, PSD_CONFIG_KEY_LEN))
			return &cfg->peers[i];
	return NULL;
}

int psd_config_set_peer(struct psd_config *cfg,
			const struct psd_peer_spec *spec)
{
	struct psd_peer_spec *v = find_peer(cfg, spec->key);

	if (v) {
		*v = *spec;
		return 0;
	}
	if (cfg->n_peers >= PSD_CONFIG_MAX_PEERS)
		return -E2BIG;
	v = realloc(cfg->peers, (cfg->n_peers + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	v[cfg->n_peers++] = *spec;
	cfg->peers = v;
	return 0;
}

/* peer = HOST:PORT KEY */
static int peer_key(struct parser *p, const char *key, const char *value)
{
	struct psd_peer_spec spec;
	const char *sp, *hex;

	memset(&spec, 0, sizeof(spec));
	if (strcmp(key, "peer")) {
		p->why = "unknown key in [peer] (expected 'peer')";
		return -EINVAL;
	}
	sp = strpbrk(value, " \t");
	if (!sp) {
		p->why = "expected 'peer = HOST:PORT PUBKEY'";
		return -EINVAL;
	}
	if (psd_peer_endpoint_parse(value, (size_t)(sp - value), &spec,
				    &p->why) < 0)
		return -EINVAL;
	hex = sp + strspn(sp, " \t");
	if (psd_hex_id_parse(hex, strlen(hex), spec.key) < 0) {
		p->why = "peer key must be 64 hex digits";
		return -EINVAL;
	}
	if (find_peer(&p->cfg, spec.key)) {
		p->why = "duplicate peer";
		return -EINVAL;
	}
	if (p->cfg.n_peers >= PSD_CONFIG_MAX_PEERS) {
		p->why = "too many peers";
		return -EINVAL;
	}
	return psd_config_set_peer(&p->cfg, &spec);
}

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

static int section_line(struct parser *p, char *line)
{
	size_t len = strlen(line);

	if (line[len - 1] != ']') {
		p->why = "section header without ']'";
		return -EINVAL;
	}
	line[len - 1] = '\0';
	line = trim(line + 1);
	if (!strcmp(line, "agent")) {
		p->section = SECTION_AGENT;
	} else if (!strcmp(line, "origin")) {
		p->section = SECTION_ORIGIN;
	} else if (!strcmp(line, "trust")) {
		p->section = SECTION_TRUST;
	} else if (!strcmp(line, "peer")) {
		p->section = SECTION_PEER;
	} else {
		p->why = "unknown section";
		return -EINVAL;
	}
	return 0;
}

static int key_line(struct parser *p, char *line)
{
	char *eq = strchr(line, '='), *key, *value;

	if (!eq) {
		p->why = "expected 'key = value'";
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (!*key) {
		p->why = "empty key";
		return -EINVAL;
	}
	if (!*value) {
		p->why = "empty value";
		return -EINVAL;
	}
	switch (p->section) {
	case SECTION_AGENT:
		return agent_key(p, key, value);
	case SECTION_ORIGIN:
		return origin_key(p, key, value);
	case SECTION_TRUST:
		return trust_key(p, key, value);
	case SECTION_PEER:
		return peer_key(p, key, value);
	default:
		p->why = "key outside a section";
		return -EINVAL;
	}
}

/* line is NUL-terminated, without its newline, and may be modified. */
static int parse_line(struct parser *p, char *line)
{
	line = trim(line);
	if (!*line || *line == '#' || *line == ';')
		return 0;
	if (*line == '[')
		return section_line(p, line);
	return key_line(p, line);
}

/* Quotes text for an error message: escapes bytes, cuts it at 60. */
static void quote(const char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0, i;

	for (i = 0; i < len && o + 8 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 60) {
			o += (size_t)snprintf(out + o, outlen - o, "...");
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x",
					      c);
	}
	out[o] = '\0';
}

static void report(const char *file, unsigned int lineno, const char *why,
		   const char *line, size_t len, char *err, size_t errlen)
{
	char q[256];

	quote(line, len, q, sizeof(q));
	snprintf(err, errlen, "%s:%u: %s: '%s'", file, lineno, why, q);
}

/* Checks a raw line before it is copied; returns the reason or NULL. */
static const char *raw_line_error(const char *s, size_t len)
{
	if (len >= PSD_CONFIG_MAX_LINE)
		return "line too long";
	if (memchr(s, '\0', len))
		return "NUL byte in line";
	return NULL;
}

static int parse_buffer(struct parser *p, const char *buf, size_t len,
			const char *file, char *err, size_t errlen)
{
	char line[PSD_CONFIG_MAX_LINE];
	unsigned int lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *s = buf + pos, *nl = memchr(s, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - s) : len - pos;
		int r;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && s[n - 1] == '\r')
			n--;
		p->why = raw_line_error(s, n);
		if (p->why) {
			report(file, lineno, p->why, s, n, err, errlen);
			return -EINVAL;
		}
		memcpy(line, s, n);
		line[n] = '\0';
		r = parse_line(p, line);
		if (r == -ENOMEM)
			p->why = "out of memory";
		if (r < 0) {
			report(file, lineno, p->why, s, n, err, errlen);
			return r;
		}
	}
	return 0;
}

int psd_config_parse(const char *buf, size_t len, const char *file,
		     struct psd_config *ret, char *err, size_t errlen)
{
	struct parser p = { .section = SECTION_NONE };
	int r;

	r = psd_config_init(&p.cfg);
	if (r < 0) {
		snprintf(err, errlen, "%s: out of memory", file);
		return r;
	}
	r = parse_buffer(&p, buf, len, file, err, errlen);
	if (r < 0) {
		psd_config_free(&p.cfg);
		return r;
	}
	*ret = p.cfg;
	return 0;
}

static int read_file(const char *path, char **ret_buf, size_t *ret_len)
{
	size_t len = 0;
	char *buf;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(PSD_CONFIG_MAX_FILE + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, PSD_CONFIG_MAX_FILE + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = -errno;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len > PSD_CONFIG_MAX_FILE) {
			r = -EFBIG;
			break;
		}
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int psd_config_load(const char *path, struct psd_config *ret,
		    char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int r;

	r = read_file(path, &buf, &len);
	if (r == -EFBIG) {
		snprintf(err, errlen, "%s: larger than %u bytes", path,
			 PSD_CONFIG_MAX_FILE);
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	r = psd_config_parse(buf, len, path, ret, err, errlen);
	free(buf);
	return r;
}
