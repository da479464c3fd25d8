/* SPDX-License-Identifier: GPL-2.0 */
/*
 * peersnapd configuration: defaults, the INI file and its parser.
 *
 *   # comment (also ';'), only at the start of a line, so values may hold '#'
 *   [agent]
 *   listen = ::                 UDP listen address (IPv4 or IPv6 literal)
 *   port = 7390                 UDP port, 1..65535
 *   identity = <state_dir>/identity.key
 *   state_dir = /var/lib/peersnap
 *   control_socket = /run/peersnap/control.sock
 *   max_inflight = 64           concurrent fetches, 1..4096
 *   max_queued = 65536          FETCHes waiting for a slot, 1..1048576
 *   max_buffer_mib = 256        data buffers of in-flight fetches, 64..65536
 *   [origin]
 *   <64 hex snapshot id> = /absolute/path/to/image
 *   [trust]
 *   publisher = <64 hex Ed25519 public key>   repeatable, up to 1024
 *   [peer]
 *   peer = HOST:PORT <64 hex Ed25519 public key>   repeatable, up to 256
 *
 * A peer's HOST is an IPv4 literal, an IPv6 literal in brackets
 * ([2001:db8::1]:7390) or a DNS name (resolved at startup, peers.h); its
 * key is the peer's identity (identity.h) and the only one that may
 * complete a handshake from it. --peer HOST:PORT=KEY is the same.
 *
 * The agent accepts manifests signed by a [trust] publisher or by its own
 * identity (main.c adds that key when the identity file exists).
 *
 * Every key has a default, so no file at all is a valid configuration.
 * Unknown sections and keys, a key given twice and out-of-range numbers are
 * errors: a typo must not silently fall back to a default. The parser does
 * no I/O, so the unit tests and the fuzzer call it on plain buffers.
 */
#ifndef PSD_CONFIG_H
#define PSD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <linux/peersnap.h>

#define PSD_CONFIG_DEFAULT_PATH		"/etc/peersnap/peersnapd.conf"
#define PSD_CONFIG_MAX_FILE		(1u << 20)
#define PSD_CONFIG_MAX_LINE		4096
#define PSD_CONFIG_MAX_ORIGINS		4096
#define PSD_CONFIG_MAX_PUBLISHERS	1024
#define PSD_CONFIG_KEY_LEN		32	/* an Ed25519 public key */
#define PSD_CONFIG_MAX_PEERS		256
#define PSD_PEER_HOST_MAX		253	/* a DNS name's limit */

#define PSD_DEFAULT_LISTEN		"::"
#define PSD_DEFAULT_PORT		7390
#define PSD_DEFAULT_STATE_DIR		"/var/lib/peersnap"
#define PSD_IDENTITY_FILE		"identity.key"
#define PSD_DEFAULT_CONTROL_SOCKET	"/run/peersnap/control.sock"
#define PSD_DEFAULT_MAX_INFLIGHT	64
#define PSD_MAX_MAX_INFLIGHT		4096
#define PSD_DEFAULT_MAX_QUEUED		65536
#define PSD_MAX_MAX_QUEUED		1048576
#define PSD_DEFAULT_MAX_BUFFER_MIB	256
#define PSD_MIN_MAX_BUFFER_MIB		64	/* one largest fetch must fit */
#define PSD_MAX_MAX_BUFFER_MIB		65536

struct psd_origin_entry {
	uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN];
	char *path;
};

/* A configured peer, its address not yet resolved. */
struct psd_peer_spec {
	char host[PSD_PEER_HOST_MAX + 1];	/* literal without brackets, or name */
	uint16_t port;
	uint8_t key[PSD_CONFIG_KEY_LEN];
};

/* The congestion controller of demand traffic to peers (cc.h). */
enum psd_congestion {
	PSD_CONGESTION_BBR,	/* the default: holds its rate under loss */
	PSD_CONGESTION_CUBIC,	/* RFC 9438, TCP's default */
};

struct psd_config {
	char *listen;
	uint16_t port;
	enum psd_congestion congestion;
	char *identity;		/* NULL: <state_dir>/identity.key */
	char *state_dir;
	char *control_socket;
	unsigned int max_inflight;
	unsigned int max_queued;
	unsigned int max_buffer_mib;
	struct psd_origin_entry *origins;
	size_t n_origins;
	uint8_t (*publishers)[PSD_CONFIG_KEY_LEN];	/* [trust] */
	size_t n_publishers;
	struct psd_peer_spec *peers;		/* [peer], --peer */
	size_t n_peers;
};

/* Fills *ret with the defaults. -ENOMEM. */
int psd_config_init(struct psd_config *ret);

/*
 * Parses an INI buffer over the defaults into *ret. On failure returns
 * -EINVAL (or -ENOMEM), leaves *ret untouched and writes
 * "FILE:LINE: reason: 'bad text'" to err.
 */
int psd_config_parse(const char *buf, size_t len, const char *file,
		     struct psd_config *ret, char *err, size_t errlen);

/* Reads and parses a file (at most PSD_CONFIG_MAX_FILE bytes). */
int psd_config_load(const char *path, struct psd_config *ret,
		    char *err, size_t errlen);

/* Adds or replaces the origin for id (command-line --origin wins). */
int psd_config_set_origin(struct psd_config *cfg,
			  const uint8_t id[PEERSNAP_SNAPSHOT_ID_LEN],
			  const char *path);

/* Trusts one more publisher key (a duplicate is a no-op). -E2BIG past
 * PSD_CONFIG_MAX_PUBLISHERS, -ENOMEM. */
int psd_config_add_publisher(struct psd_config *cfg,
			     const uint8_t key[PSD_CONFIG_KEY_LEN]);

/* Replaces a string option; -ENOMEM. */
int psd_config_set_string(char **field, const char *value);

/* The identity path after defaults are applied; caller frees. */
char *psd_config_identity_path(const struct psd_config *cfg);

/*
 * Parses "HOST:PORT" (len bytes) into ret's host and port. -EINVAL with
 * *why set: a missing or bad port, an IPv6 literal without brackets, a
 * host that is neither a literal nor a valid DNS name.
 */
int psd_peer_endpoint_parse(const char *s, size_t len,
			    struct psd_peer_spec *ret, const char **why);

/* Parses --peer's "HOST:PORT=KEY". -EINVAL with *why set. */
int psd_peer_arg_parse(const char *arg, struct psd_peer_spec *ret,
		       const char **why);

/* Adds a peer, or replaces the one with the same key (the command line
 * wins). -E2BIG past PSD_CONFIG_MAX_PEERS, -ENOMEM. */
int psd_config_set_peer(struct psd_config *cfg,
			const struct psd_peer_spec *spec);

void psd_config_free(struct psd_config *cfg);

#endif /* PSD_CONFIG_H */
