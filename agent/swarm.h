/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's transport endpoint: one UDP socket (udp.h) in the io_uring
 * loop, the table of configured peers (peers.h), and one connection
 * (conn.h) per peer whose session is established, sealing under the
 * session's keys with its own packet numbers (docs/protocol.md, "Key
 * ownership"). On top of it, the chunk API the fetch engine uses:
 * psd_swarm_request() asks a peer (or any) for a chunk by hash and calls
 * back once with the bytes (hash-checked) or an error; incoming REQUESTs
 * are answered from the caller's lookup hook.
 *
 * Life of a request: it waits until its peer has a connection (a request
 * starts the handshake), is then sent, and completes with the whole
 * chunk, -ENOENT (NOT_FOUND), -EBADMSG (bytes that do not hash to the
 * name: the sender is at fault) or -EHOSTUNREACH (the handshake gave up;
 * retryable). A request for any peer goes to the first open connection
 * of a peer it has not tried; a peer that answers NOT_FOUND (or becomes
 * unreachable) is not asked again for it, and it fails only once every
 * configured peer was tried (-ENOENT if one said NOT_FOUND).
 *
 * A connection that ends (CLOSE, idle timeout) takes its session with
 * it; its unanswered requests go back to waiting and a new handshake
 * starts, so they complete over the next session without the caller
 * seeing anything. A peer that restarted drops our packets (it lost the
 * keys): a connection with requests out that hears nothing from its peer
 * for four PTOs (2..5 s) starts a new handshake at once, and the new
 * session gets a new connection at both ends (docs/protocol.md,
 * "Restarts"), long before the 25 s idle timeout.
 *
 * Time: CLOCK_MONOTONIC in ns. The caller wakes up at
 * psd_swarm_next_deadline() and calls psd_swarm_on_timer(); datagrams
 * come in by the socket's callback (or psd_swarm_on_datagram()).
 *
 * Serving reads the extent the lookup hook names with pread(), in the
 * loop: the bytes are expected in the page cache or on a fast device.
 */
#ifndef PSD_SWARM_H
#define PSD_SWARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "identity.h"
#include "loop.h"
#include "peers.h"
#include "udp.h"

#define PSD_SWARM_REQUESTS_MAX	1024	/* waiting and in flight */
#define PSD_SWARM_CHUNK_MAX	(64u << 20)	/* PSD_REQUEST_LEN_MAX */

enum psd_swarm_class {
	PSD_SWARM_DEMAND,	/* a read waits for it */
	PSD_SWARM_SCAVENGER,	/* prefetch, hydration: yields to demand */
};

/* Where the bytes of a chunk this host serves are. */
struct psd_swarm_extent {
	int fd;
	uint64_t offset, len;
};

/* 0 and *ret for a chunk held, -ENOENT if not. */
typedef int psd_swarm_lookup_fn(void *ctx,
				const uint8_t hash[PSD_OBJECT_ID_LEN],
				struct psd_swarm_extent *ret);

/* err 0: len bytes (valid during the call); else -errno, bytes NULL. */
typedef void psd_swarm_done_fn(void *ctx, int err, const uint8_t *bytes,
			       size_t len);

struct psd_swarm_config {
	struct psd_loop *loop;
	const struct psd_identity *id;
	const char *listen;		/* udp.h: literal, "::" for any */
	uint16_t port;			/* 0: ephemeral */
	bool gso, gro;
	uint64_t realtime_offset_ns;	/* peer.h */
	uint64_t seed;			/* jitter, packet number skipping */
	uint64_t idle_timeout;		/* conn.h; 0: PSD_IDLE_TIMEOUT */
	uint64_t keepalive;		/* conn.h; 0: PSD_KEEPALIVE */
	const struct psd_cc_ops *cc;	/* demand traffic's; NULL: BBR */
	psd_swarm_lookup_fn *lookup;	/* NULL: serves nothing */
	void *lookup_ctx;
};

struct psd_swarm_stats {
	uint64_t requests_done, requests_failed, requests_retried;
	uint64_t requests_rerouted;	/* NOT_FOUND: to another peer */
	uint64_t sessions_renewed;	/* peer silent: new handshake */
	uint64_t conns_opened, conns_closed, served, not_found_sent;
	uint64_t dropped;		/* datagrams the peer layer refused */
	uint64_t tx_no_slot;		/* datagrams the socket had no room for */
};

struct psd_swarm;

/* Opens the socket and an empty peer table. -errno with err. */
int psd_swarm_new(const struct psd_swarm_config *cfg, struct psd_swarm **ret,
		  char *err, size_t errlen);
/* Fails every request with -ECANCELED, wipes all keys, closes the socket
 * (after psd_loop_quiesce()). Accepts NULL. */
void psd_swarm_free(struct psd_swarm *sw);

/* Configures a peer (peers.h: psd_peers_add). */
int psd_swarm_add_peer(struct psd_swarm *sw, const uint8_t key[PSD_PUBKEY_LEN],
		       const struct sockaddr *addr, socklen_t len);

/* Resolves and configures every peer of cfg (peers.h: psd_peers_load). */
int psd_swarm_load_peers(struct psd_swarm *sw, const struct psd_config *cfg,
			 char *err, size_t errlen);

/*
 * Asks peer key (NULL: any configured peer, the first with a connection
 * that has not answered NOT_FOUND for it) for the chunk named hash,
 * length bytes (1..PSD_SWARM_CHUNK_MAX); done is called exactly once,
 * never from inside this call. -EINVAL, -ENOENT (no
 * such peer, or none configured), -EBUSY (PSD_SWARM_REQUESTS_MAX).
 */
int psd_swarm_request(struct psd_swarm *sw, const uint8_t *key,
		      const uint8_t hash[PSD_OBJECT_ID_LEN], uint64_t length,
		      enum psd_swarm_class cls, psd_swarm_done_fn *done,
		      void *ctx);

/* One datagram from the socket (the socket's callback calls it). */
void psd_swarm_on_datagram(struct psd_swarm *sw, const uint8_t *dgram,
			   size_t len, const struct sockaddr *src,
			   socklen_t src_len);

/* When psd_swarm_on_timer() has work (CLOCK_MONOTONIC ns); UINT64_MAX: none. */
uint64_t psd_swarm_next_deadline(struct psd_swarm *sw);
/* Runs every due timer of peers and connections, sends what is ready. */
void psd_swarm_on_timer(struct psd_swarm *sw);

/* The socket's bound address; the peer table; counters. */
int psd_swarm_local(const struct psd_swarm *sw, struct sockaddr_in6 *ret);
struct psd_peers *psd_swarm_peers(struct psd_swarm *sw);
const struct psd_swarm_stats *psd_swarm_stats(const struct psd_swarm *sw);
/* The connection to peer key, or NULL (tests, stats). */
struct psd_conn *psd_swarm_conn(struct psd_swarm *sw,
				const uint8_t key[PSD_PUBKEY_LEN]);
/* The monotonic clock the swarm runs on, ns. */
uint64_t psd_swarm_now(void);
/* CLOCK_REALTIME minus that clock, now (psd_swarm_config's offset). */
uint64_t psd_swarm_realtime_offset(void);

#endif /* PSD_SWARM_H */
