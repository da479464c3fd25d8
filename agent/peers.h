/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The peer table: this host's configured peers (config.h's [peer] lines
 * and --peer options), each a psd_peer (peer.h), found by identity, by
 * X25519 static key (the handshake's trust rule: only a configured peer's
 * key may complete a handshake), by local connection id and by address
 * for incoming datagrams.
 *
 * Bounded: at most PSD_PEERS_MAX peers, allocated once, so a psd_peer
 * pointer stays valid until psd_peers_free(). Lookups scan the table
 * (256 peers, up to four connection ids each: a few microseconds at worst
 * per datagram); a hash index is for when tables grow.
 *
 * Load: when more than PSD_PEERS_LOAD_MAX handshake messages arrive within
 * PSD_PEERS_LOAD_WINDOW, the table is "under load" for PSD_PEERS_LOAD_HOLD:
 * handshakes then need a valid mac2 (a cookie reply proves the source
 * address first) and are rate-limited per source (cookie.h), so a flood
 * costs one BLAKE2b per message, not Diffie-Hellman.
 *
 * Addresses are kept as AF_INET6 (IPv4 as v4-mapped), the form a
 * dual-stack socket (udp.h) sends to and receives from. Names are
 * resolved once, by psd_peers_load() at startup (getaddrinfo, blocking).
 */
#ifndef PSD_PEERS_H
#define PSD_PEERS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "identity.h"
#include "peer.h"

#define PSD_PEERS_MAX	PSD_CONFIG_MAX_PEERS
#define PSD_PEERS_LOAD_WINDOW	(PSD_NS_PER_S / 8)
#define PSD_PEERS_LOAD_MAX	64	/* handshake messages per window */
#define PSD_PEERS_LOAD_HOLD	PSD_NS_PER_S

/* What the table's user does with the peers' output. */
struct psd_peers_io {
	void (*send)(void *ctx, struct psd_peer *peer,
		     const struct sockaddr *to, socklen_t to_len,
		     const uint8_t *dgram, size_t len);
	void (*event)(void *ctx, struct psd_peer *peer,
		      enum psd_peer_event ev);
};

struct psd_peers {
	struct psd_peer_node node;
	struct psd_peer *peers;		/* PSD_PEERS_MAX slots */
	size_t n;
	const struct psd_peers_io *io;
	void *io_ctx;
	uint64_t seed;			/* retry jitter of the next peer */
	uint64_t load_window_start;
	unsigned int load_count;	/* handshake messages in the window */
	uint64_t under_load_until;
};

/*
 * An empty table for identity id (peer.h's node: realtime_offset_ns).
 * seed: retry jitter (random in the agent, fixed in tests).
 * -EINVAL (id does not convert), -ENOMEM.
 */
int psd_peers_init(struct psd_peers *ret, const struct psd_identity *id,
		   const struct psd_peers_io *io, void *io_ctx,
		   uint64_t realtime_offset_ns, uint64_t seed);
/* Wipes and frees every peer and the node. Accepts a zeroed table. */
void psd_peers_free(struct psd_peers *t);

/*
 * Adds the peer with Ed25519 key at addr (AF_INET or AF_INET6; kept as
 * AF_INET6). -EEXIST (key already there), -E2BIG (table full), -EINVAL
 * (our own key, a key that is no curve point, another family).
 */
int psd_peers_add(struct psd_peers *t, const uint8_t key[PSD_PUBKEY_LEN],
		  const struct sockaddr *addr, socklen_t len,
		  struct psd_peer **ret);

/*
 * Resolves spec's host and port (getaddrinfo; a literal needs no DNS) to
 * the first address found, as AF_INET6. -ENOENT (or -ENOMEM) with
 * "HOST: reason" in err.
 */
int psd_peers_resolve(const struct psd_peer_spec *spec,
		      struct sockaddr_in6 *ret, char *err, size_t errlen);

/*
 * Resolves and adds every peer of cfg. On failure nothing is added, and
 * err says "peer HOST:PORT: reason".
 */
int psd_peers_load(struct psd_peers *t, const struct psd_config *cfg,
		   char *err, size_t errlen);

struct psd_peer *psd_peers_by_key(struct psd_peers *t,
				  const uint8_t key[PSD_PUBKEY_LEN]);
/* The peer whose endpoint is addr (address and port). */
struct psd_peer *psd_peers_by_addr(struct psd_peers *t,
				   const struct sockaddr *addr, socklen_t len);

/* psd_peer_node_receive() on the table's node, under_load as above. */
int psd_peers_receive(struct psd_peers *t, const uint8_t *dgram, size_t len,
		      const struct sockaddr *src, socklen_t src_len,
		      uint8_t *out, size_t cap, size_t *ret_len,
		      struct psd_peer **ret_peer, uint64_t now);

/* True while the table is under handshake load (at now). */
bool psd_peers_under_load(const struct psd_peers *t, uint64_t now);

/* The earliest deadline of any peer; UINT64_MAX: none. */
uint64_t psd_peers_next_deadline(const struct psd_peers *t);
/* Runs the timers of every peer that is due at now. */
void psd_peers_on_timer(struct psd_peers *t, uint64_t now);

#endif /* PSD_PEERS_H */
