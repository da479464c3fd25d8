// SPDX-License-Identifier: GPL-2.0
/* The INI parser: a full file, defaults, and every error quoting its line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "config.h"

#define ID_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
/* What an error message keeps of a line: its first 60 bytes. */
#define ID_A60 "00112233445566778899aabbccddeeff00112233445566778899aabbccdd"
#define ID_B "FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100"

static int parse(const char *text, struct psd_config *cfg, char *err,
		 size_t errlen)
{
	return psd_config_parse(text, strlen(text), "t.conf", cfg, err,
				errlen);
}

TEST(defaults_from_empty_buffer)
{
	struct psd_config cfg;
	char err[256];
	char *id;

	ASSERT_EQ(0, parse("", &cfg, err, sizeof(err)));
	EXPECT_STREQ(PSD_DEFAULT_LISTEN, cfg.listen);
	EXPECT_EQ(PSD_DEFAULT_PORT, cfg.port);
	EXPECT_STREQ(PSD_DEFAULT_STATE_DIR, cfg.state_dir);
	EXPECT_STREQ(PSD_DEFAULT_CONTROL_SOCKET, cfg.control_socket);
	EXPECT_EQ(PSD_DEFAULT_MAX_INFLIGHT, cfg.max_inflight);
	EXPECT_EQ(PSD_DEFAULT_MAX_QUEUED, cfg.max_queued);
	EXPECT_EQ(PSD_DEFAULT_MAX_BUFFER_MIB, cfg.max_buffer_mib);
	EXPECT_EQ(PSD_CONGESTION_BBR, cfg.congestion);
	EXPECT_EQ(0, cfg.n_origins);
	EXPECT_EQ(NULL, cfg.identity);
	id = psd_config_identity_path(&cfg);
	EXPECT_STREQ("/var/lib/peersnap/identity.key", id);
	free(id);
	psd_config_free(&cfg);
}

TEST(full_file)
{
	static const char text[] =
		"# peersnapd test configuration\r\n"
		"; another comment style\n"
		"\n"
		"[agent]\n"
		"  listen = 127.0.0.1  \n"
		"port=9000\n"
		"identity = /etc/peersnap/id#1.key\n"
		"state_dir = /srv/ps\n"
		"control_socket = /run/ps.sock\n"
		"max_inflight = 4096\n"
		"max_queued = 1\n"
		"max_buffer_mib = 64\n"
		"congestion = cubic\n"
		"[ origin ]\n"
		ID_A " = /images/a.img\n"
		ID_B "=/images/b with space.img\n";
	struct psd_config cfg;
	char err[256];
	char *id;

	ASSERT_EQ(0, parse(text, &cfg, err, sizeof(err))) TH_LOG("%s", err);
	EXPECT_STREQ("127.0.0.1", cfg.listen);
	EXPECT_EQ(9000, cfg.port);
	EXPECT_STREQ("/etc/peersnap/id#1.key", cfg.identity);
	EXPECT_STREQ("/srv/ps", cfg.state_dir);
	EXPECT_STREQ("/run/ps.sock", cfg.control_socket);
	EXPECT_EQ(4096, cfg.max_inflight);
	EXPECT_EQ(1, cfg.max_queued);
	EXPECT_EQ(64, cfg.max_buffer_mib);
	EXPECT_EQ(PSD_CONGESTION_CUBIC, cfg.congestion);
	ASSERT_EQ(2, cfg.n_origins);
	EXPECT_EQ(0x00, cfg.origins[0].id[0]);
	EXPECT_EQ(0xff, cfg.origins[0].id[31]);
	EXPECT_STREQ("/images/a.img", cfg.origins[0].path);
	EXPECT_EQ(0xff, cfg.origins[1].id[0]);
	EXPECT_STREQ("/images/b with space.img", cfg.origins[1].path);
	id = psd_config_identity_path(&cfg);
	EXPECT_STREQ("/etc/peersnap/id#1.key", id);
	free(id);
	psd_config_free(&cfg);
}

TEST(ipv6_listen_and_no_trailing_newline)
{
	struct psd_config cfg;
	char err[256];

	ASSERT_EQ(0, parse("[agent]\nlisten = fe80::1", &cfg, err,
			   sizeof(err)));
	EXPECT_STREQ("fe80::1", cfg.listen);
	psd_config_free(&cfg);
}

TEST(failure_leaves_output_untouched)
{
	struct psd_config cfg = { .port = 4242 };
	char err[256];

	ASSERT_EQ(-EINVAL, parse("[agent]\nport = 1\nbogus = 2\n", &cfg, err,
				 sizeof(err)));
	EXPECT_EQ(4242, cfg.port);
	EXPECT_EQ(NULL, cfg.listen);
}

TEST(set_origin_replaces_same_id)
{
	struct psd_config cfg;
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN] = { 1 };
	char err[256];

	ASSERT_EQ(0, parse("", &cfg, err, sizeof(err)));
	ASSERT_EQ(0, psd_config_set_origin(&cfg, id, "/a"));
	ASSERT_EQ(0, psd_config_set_origin(&cfg, id, "/b"));
	ASSERT_EQ(1, cfg.n_origins);
	EXPECT_STREQ("/b", cfg.origins[0].path);
	psd_config_free(&cfg);
}

/* One bad input, and the exact message it must produce. */
struct bad_case {
	const char *text;
	const char *err;
};

static const struct bad_case bad_cases[] = {
	{ "[agent]\nprot = 7\n", "t.conf:2: unknown key in [agent]: 'prot = 7'" },
	{ "[agnet]\n", "t.conf:1: unknown section: '[agnet]'" },
	{ "[agent\n", "t.conf:1: section header without ']': '[agent'" },
	{ "port = 7\n", "t.conf:1: key outside a section: 'port = 7'" },
	{ "[agent]\nport 7\n", "t.conf:2: expected 'key = value': 'port 7'" },
	{ "[agent]\n= 7\n", "t.conf:2: empty key: '= 7'" },
	{ "[agent]\nport =\n", "t.conf:2: empty value: 'port ='" },
	{ "[agent]\nport = 1\nport = 2\n", "t.conf:3: duplicate key: 'port = 2'" },
	{ "[agent]\nport = 0\n", "t.conf:2: port must be 1..65535: 'port = 0'" },
	{ "[agent]\nport = 65536\n", "t.conf:2: port must be 1..65535: 'port = 65536'" },
	{ "[agent]\nport = 12a\n", "t.conf:2: port must be 1..65535: 'port = 12a'" },
	{ "[agent]\nport = -1\n", "t.conf:2: port must be 1..65535: 'port = -1'" },
	{ "[agent]\nport = +1\n", "t.conf:2: port must be 1..65535: 'port = +1'" },
	{ "[agent]\nport = 99999999999999999999999\n",
	  "t.conf:2: port must be 1..65535: 'port = 99999999999999999999999'" },
	{ "[agent]\nmax_inflight = 4097\n",
	  "t.conf:2: max_inflight must be 1..4096: 'max_inflight = 4097'" },
	{ "[agent]\nmax_queued = 0\n",
	  "t.conf:2: max_queued must be 1..1048576: 'max_queued = 0'" },
	{ "[agent]\nmax_buffer_mib = 63\n",
	  "t.conf:2: max_buffer_mib must be 64..65536: 'max_buffer_mib = 63'" },
	{ "[agent]\ncongestion = reno\n",
	  "t.conf:2: congestion must be bbr or cubic: 'congestion = reno'" },
	{ "[agent]\nlisten = localhost\n",
	  "t.conf:2: listen must be an IPv4 or IPv6 address: 'listen = localhost'" },
	{ "[agent]\nstate_dir = var/lib\n",
	  "t.conf:2: path must be absolute: 'state_dir = var/lib'" },
	{ "[agent]\ncontrol_socket = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	  "t.conf:2: path too long: 'control_socket = /run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'" },
	{ "[origin]\n0011 = /a\n",
	  "t.conf:2: origin key must be a 64-hex-digit snapshot id: '0011 = /a'" },
	{ "[origin]\n" ID_A "0 = /a\n",
	  "t.conf:2: origin key must be a 64-hex-digit snapshot id: '" ID_A60 "...'" },
	{ "[origin]\n" ID_A " = a.img\n",
	  "t.conf:2: path must be absolute: '" ID_A60 "...'" },
	{ "[origin]\n" ID_A " = /a\n" ID_A " = /b\n",
	  "t.conf:3: duplicate origin: '" ID_A60 "...'" },
	{ "[agent]\nlisten = 1.2.3.4\x01\n",
	  "t.conf:2: listen must be an IPv4 or IPv6 address: 'listen = 1.2.3.4\\x01'" },
	{ "[trust]\nkey = " ID_A "\n",
	  "t.conf:2: unknown key in [trust] (expected 'publisher'): 'key = 00112233445566778899aabbccddeeff00112233445566778899aa...'" },
	{ "[trust]\npublisher = 0011\n",
	  "t.conf:2: publisher must be a 64-hex-digit public key: 'publisher = 0011'" },
	{ "[trust]\npublisher = " ID_A "\npublisher = " ID_A "\n",
	  "t.conf:3: duplicate publisher: 'publisher = 00112233445566778899aabbccddeeff0011223344556677...'" },
	{ "[agent]\nport = 'x'\n",
	  "t.conf:2: port must be 1..65535: 'port = \\x27x\\x27'" },
};

TEST(every_bad_case_quotes_its_line)
{
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct psd_config cfg;
		char err[512];

		EXPECT_EQ(-EINVAL, parse(bad_cases[i].text, &cfg, err,
					 sizeof(err)))
			TH_LOG("case %zu", i);
		EXPECT_STREQ(bad_cases[i].err, err) TH_LOG("case %zu", i);
	}
}

TEST(nul_byte)
{
	static const char text[] = "[agent]\nport = 1\0x\n";
	struct psd_config cfg;
	char err[256];

	ASSERT_EQ(-EINVAL, psd_config_parse(text, sizeof(text) - 1, "t.conf",
					    &cfg, err, sizeof(err)));
	EXPECT_STREQ("t.conf:2: NUL byte in line: 'port = 1\\x00x'", err);
}

TEST(line_too_long)
{
	size_t len = PSD_CONFIG_MAX_LINE + 10;
	char *text = malloc(len + 1);
	struct psd_config cfg;
	char err[256];

	ASSERT_NE(NULL, text);
	memcpy(text, "[agent]\n#", 9);
	memset(text + 9, 'x', len - 9);
	text[len] = '\0';
	ASSERT_EQ(-EINVAL, parse(text, &cfg, err, sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "t.conf:2: line too long: '#xxx", 30))
		TH_LOG("%s", err);
	free(text);
}

TEST(too_many_origins)
{
	size_t n = PSD_CONFIG_MAX_ORIGINS + 1, i, len = 0;
	char *text = malloc(n * 80 + 16);
	struct psd_config cfg;
	char err[256];

	ASSERT_NE(NULL, text);
	len += (size_t)sprintf(text, "[origin]\n");
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "%064zx = /img\n", i);
	ASSERT_EQ(-EINVAL, parse(text, &cfg, err, sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "t.conf:4098: too many origins:", 30))
		TH_LOG("%s", err);
	free(text);
}

TEST(trusted_publishers)
{
	static const char text[] =
		"[trust]\n"
		"publisher = " ID_A "\n"
		"publisher=" ID_B "\n";
	uint8_t b[PSD_CONFIG_KEY_LEN];
	struct psd_config cfg;
	char err[256];

	ASSERT_EQ(0, parse(text, &cfg, err, sizeof(err))) TH_LOG("%s", err);
	ASSERT_EQ(2, cfg.n_publishers);
	EXPECT_EQ(0x00, cfg.publishers[0][0]);
	EXPECT_EQ(0x11, cfg.publishers[0][1]);
	EXPECT_EQ(0xff, cfg.publishers[1][0]);
	EXPECT_EQ(0x00, cfg.publishers[1][31]);
	/* The agent's own key is added the same way; twice is once. */
	memset(b, 0x5a, sizeof(b));
	EXPECT_EQ(0, psd_config_add_publisher(&cfg, b));
	EXPECT_EQ(0, psd_config_add_publisher(&cfg, b));
	EXPECT_EQ(3, cfg.n_publishers);
	psd_config_free(&cfg);
}

TEST(too_many_publishers)
{
	size_t n = PSD_CONFIG_MAX_PUBLISHERS + 1, i, len = 0;
	char *text = malloc(n * 80 + 16);
	struct psd_config cfg;
	char err[256];

	ASSERT_NE(NULL, text);
	len += (size_t)sprintf(text, "[trust]\n");
	for (i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "publisher = %064zx\n", i);
	ASSERT_EQ(-EINVAL, parse(text, &cfg, err, sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "t.conf:1026: too many publishers:", 33))
		TH_LOG("%s", err);
	free(text);
}

TEST(load_missing_file)
{
	struct psd_config cfg;
	char err[256];

	ASSERT_EQ(-ENOENT, psd_config_load("/nonexistent/peersnapd.conf", &cfg,
					   err, sizeof(err)));
	EXPECT_STREQ("/nonexistent/peersnapd.conf: No such file or directory",
		     err);
}

/* [peer] and --peer: endpoints, keys, and the errors that quote them. */
TEST(peers_section)
{
	static const char text[] =
		"[peer]\n"
		"peer = 192.0.2.7:7390 " ID_A "\n"
		"peer=[2001:db8::1]:9 \t" ID_B "\n"
		"peer = peer-a.example.org:65535 "
		"0000000000000000000000000000000000000000000000000000000000000001\n";
	struct psd_config cfg;
	char err[256];

	ASSERT_EQ(0, parse(text, &cfg, err, sizeof(err)));
	ASSERT_EQ(3, cfg.n_peers);
	EXPECT_STREQ("192.0.2.7", cfg.peers[0].host);
	EXPECT_EQ(7390, cfg.peers[0].port);
	EXPECT_EQ(0x00, cfg.peers[0].key[0]);
	EXPECT_EQ(0xff, cfg.peers[0].key[31]);
	EXPECT_STREQ("2001:db8::1", cfg.peers[1].host);
	EXPECT_EQ(9, cfg.peers[1].port);
	EXPECT_EQ(0xff, cfg.peers[1].key[0]);
	EXPECT_STREQ("peer-a.example.org", cfg.peers[2].host);
	EXPECT_EQ(65535, cfg.peers[2].port);
	EXPECT_EQ(1, cfg.peers[2].key[31]);
	psd_config_free(&cfg);
}

/* A bad peer line (the last of text) and the reason given for it. */
struct bad_peer {
	const char *text;
	const char *why;
};

static const struct bad_peer bad_peers[] = {
	{ "[peer]\npeer = 192.0.2.7:7390\n",
	  "expected 'peer = HOST:PORT PUBKEY'" },
	{ "[peer]\nhost = 192.0.2.7:7390 " ID_A "\n",
	  "unknown key in [peer] (expected 'peer')" },
	{ "[peer]\npeer = 2001:db8::1:7390 " ID_A "\n",
	  "an IPv6 address needs brackets: [ADDRESS]:PORT" },
	{ "[peer]\npeer = [2001:db8::1]7390 " ID_A "\n",
	  "expected [IPV6]:PORT" },
	{ "[peer]\npeer = [192.0.2.1]:1 " ID_A "\n",
	  "bad IPv6 address" },
	{ "[peer]\npeer = 192.0.2:1 " ID_A "\n",
	  "bad IPv4 address" },
	{ "[peer]\npeer = bad_name:1 " ID_A "\n",
	  "bad host name" },
	{ "[peer]\npeer = -a.example:1 " ID_A "\n",
	  "bad host name" },
	{ "[peer]\npeer = a..example:1 " ID_A "\n",
	  "bad host name" },
	{ "[peer]\npeer = :1 " ID_A "\n",
	  "bad host" },
	{ "[peer]\npeer = 192.0.2.7:0 " ID_A "\n",
	  "port must be 1..65535" },
	{ "[peer]\npeer = 192.0.2.7:65536 " ID_A "\n",
	  "port must be 1..65535" },
	{ "[peer]\npeer = 192.0.2.7: " ID_A "\n",
	  "port must be 1..65535" },
	{ "[peer]\npeer = 192.0.2.7:+1 " ID_A "\n",
	  "port must be 1..65535" },
	{ "[peer]\npeer = 192.0.2.7:1 0011\n",
	  "peer key must be 64 hex digits" },
	{ "[peer]\npeer = 192.0.2.7:1 " ID_A "\npeer = 192.0.2.8:1 " ID_A "\n",
	  "duplicate peer" },
};

/* "t.conf:N: WHY: 'LINE'", the line cut at 60 bytes as the parser does. */
static void expected_error(const struct bad_peer *b, char *out, size_t len)
{
	const char *end = b->text + strlen(b->text) - 1, *line = end;
	unsigned int lineno = 0;

	while (line > b->text && line[-1] != '\n')
		line--;
	for (const char *c = b->text; c < line; c++)
		lineno += *c == '\n';
	snprintf(out, len, "t.conf:%u: %s: '%.*s%s'", lineno + 1, b->why,
		 (int)(end - line > 60 ? 60 : end - line), line,
		 end - line > 60 ? "..." : "");
}

TEST(every_bad_peer_quotes_its_line)
{
	for (size_t i = 0; i < sizeof(bad_peers) / sizeof(bad_peers[0]); i++) {
		struct psd_config cfg;
		char err[256], want[256];

		expected_error(&bad_peers[i], want, sizeof(want));
		EXPECT_EQ(-EINVAL, parse(bad_peers[i].text, &cfg, err,
					 sizeof(err)));
		EXPECT_STREQ(want, err);
	}
}

TEST(peer_argument)
{
	struct psd_peer_spec spec;
	struct psd_config cfg;
	const char *why = NULL;
	char err[256];

	ASSERT_EQ(0, psd_peer_arg_parse("[::1]:7390=" ID_B, &spec, &why));
	EXPECT_STREQ("::1", spec.host);
	EXPECT_EQ(7390, spec.port);
	EXPECT_EQ(0xff, spec.key[0]);
	EXPECT_EQ(-EINVAL, psd_peer_arg_parse("[::1]:7390", &spec, &why));
	EXPECT_STREQ("expected HOST:PORT=PUBKEY", why);
	EXPECT_EQ(-EINVAL, psd_peer_arg_parse("h:1=" ID_A "0", &spec, &why));
	EXPECT_STREQ("peer key must be 64 hex digits", why);

	/* The command line replaces the file's peer of the same key. */
	ASSERT_EQ(0, parse("[peer]\npeer = 192.0.2.7:7390 " ID_B "\n", &cfg,
			   err, sizeof(err)));
	ASSERT_EQ(0, psd_config_set_peer(&cfg, &spec));
	EXPECT_EQ(1, cfg.n_peers);
	EXPECT_STREQ("::1", cfg.peers[0].host);
	psd_config_free(&cfg);
}

TEST(too_many_peers)
{
	size_t n = PSD_CONFIG_MAX_PEERS + 1, len = 7;
	char *text = malloc(n * 100 + 16);
	struct psd_config cfg;
	char err[256];

	ASSERT_NE(NULL, text);
	strcpy(text, "[peer]\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "peer = h%zu:1 %064zx\n",
				       i, i);
	EXPECT_EQ(-EINVAL, parse(text, &cfg, err, sizeof(err)));
	EXPECT_EQ(0, strncmp(err, "t.conf:258: too many peers:", 27))
		TH_LOG("%s", err);
	free(text);
}

TEST_HARNESS_MAIN
