// SPDX-License-Identifier: GPL-2.0
/* The peer table (peers.h): lookups, resolving, the node's callbacks. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "peers.h"

static struct psd_peer *by_static(void *ctx, const uint8_t pub[PSD_NOISE_KEY_LEN])
{
	struct psd_peers *t = ctx;

	for (size_t i = 0; i < t->n; i++)
		if (!memcmp(t->peers[i].noise.static_pub, pub,
			    PSD_NOISE_KEY_LEN))
			return &t->peers[i];
	return NULL;
}

static struct psd_peer *by_cid(void *ctx, const uint8_t cid[PSD_CID_LEN])
{
	struct psd_peers *t = ctx;

	for (size_t i = 0; i < t->n; i++)
		if (psd_peer_owns_cid(&t->peers[i], cid))
			return &t->peers[i];
	return NULL;
}

static void forward_send(void *ctx, struct psd_peer *peer,
			 const struct sockaddr *to, socklen_t to_len,
			 const uint8_t *dgram, size_t len)
{
	struct psd_peers *t = ctx;

	t->io->send(t->io_ctx, peer, to, to_len, dgram, len);
}

static void forward_event(void *ctx, struct psd_peer *peer,
			  enum psd_peer_event ev)
{
	struct psd_peers *t = ctx;

	t->io->event(t->io_ctx, peer, ev);
}

static const struct psd_peer_ops table_ops = {
	.send = forward_send,
	.event = forward_event,
	.by_static = by_static,
	.by_cid = by_cid,
};

int psd_peers_init(struct psd_peers *ret, const struct psd_identity *id,
		   const struct psd_peers_io *io, void *io_ctx,
		   uint64_t realtime_offset_ns, uint64_t seed)
{
	int err;

	memset(ret, 0, sizeof(*ret));
	ret->peers = calloc(PSD_PEERS_MAX, sizeof(*ret->peers));
	if (!ret->peers)
		return -ENOMEM;
	err = psd_peer_node_init(&ret->node, id, &table_ops, ret, 0,
				 realtime_offset_ns);
	if (err) {
		free(ret->peers);
		ret->peers = NULL;
		return err;
	}
	ret->io = io;
	ret->io_ctx = io_ctx;
	ret->seed = seed;
	return 0;
}

void psd_peers_free(struct psd_peers *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		psd_peer_free(&t->peers[i]);
	free(t->peers);
	psd_peer_node_free(&t->node);
	memset(t, 0, sizeof(*t));
}

/* AF_INET becomes v4-mapped AF_INET6; -EINVAL for anything else. */
static int to_inet6(const struct sockaddr *sa, socklen_t len,
		    struct sockaddr_in6 *ret)
{
	const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;

	memset(ret, 0, sizeof(*ret));
	if (sa->sa_family == AF_INET6 && len >= sizeof(*ret)) {
		memcpy(ret, sa, sizeof(*ret));
		return 0;
	}
	if (sa->sa_family != AF_INET || len < sizeof(*in4))
		return -EINVAL;
	ret->sin6_family = AF_INET6;
	ret->sin6_port = in4->sin_port;
	ret->sin6_addr.s6_addr[10] = 0xff;
	ret->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&ret->sin6_addr.s6_addr[12], &in4->sin_addr, 4);
	return 0;
}

struct psd_peer *psd_peers_by_key(struct psd_peers *t,
				  const uint8_t key[PSD_PUBKEY_LEN])
{
	for (size_t i = 0; i < t->n; i++)
		if (!memcmp(t->peers[i].noise.identity, key, PSD_PUBKEY_LEN))
			return &t->peers[i];
	return NULL;
}

struct psd_peer *psd_peers_by_addr(struct psd_peers *t,
				   const struct sockaddr *addr, socklen_t len)
{
	struct sockaddr_in6 want;

	if (to_inet6(addr, len, &want))
		return NULL;
	for (size_t i = 0; i < t->n; i++) {
		const struct sockaddr_in6 *e =
			(const struct sockaddr_in6 *)&t->peers[i].endpoint;

		if (e->sin6_family == AF_INET6 &&
		    e->sin6_port == want.sin6_port &&
		    !memcmp(&e->sin6_addr, &want.sin6_addr,
			    sizeof(want.sin6_addr)))
			return &t->peers[i];
	}
	return NULL;
}

int psd_peers_add(struct psd_peers *t, const uint8_t key[PSD_PUBKEY_LEN],
		  const struct sockaddr *addr, socklen_t len,
		  struct psd_peer **ret)
{
	struct sockaddr_in6 a;
	int err;

	if (to_inet6(addr, len, &a))
		return -EINVAL;
	if (psd_peers_by_key(t, key))
		return -EEXIST;
	if (t->n >= PSD_PEERS_MAX)
		return -E2BIG;
	err = psd_peer_init(&t->peers[t->n], &t->node, key,
			    (const struct sockaddr *)&a, sizeof(a),
			    t->seed + t->n);
	if (err)
		return err;
	if (ret)
		*ret = &t->peers[t->n];
	t->n++;
	return 0;
}

int psd_peers_resolve(const struct psd_peer_spec *spec,
		      struct sockaddr_in6 *ret, char *err, size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_DGRAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res;
	char port[8];
	int r;

	snprintf(port, sizeof(port), "%u", spec->port);
	r = getaddrinfo(spec->host, port, &hints, &res);
	if (r) {
		snprintf(err, errlen, "%s: %s", spec->host,
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return r == EAI_MEMORY ? -ENOMEM : -ENOENT;
	}
	r = to_inet6(res->ai_addr, res->ai_addrlen, ret);
	freeaddrinfo(res);
	if (r)
		snprintf(err, errlen, "%s: no IPv4 or IPv6 address",
			 spec->host);
	return r ? -ENOENT : 0;
}

/* "peer HOST:PORT: " before a reason, brackets around IPv6. */
static void spec_error(char *err, size_t errlen,
		       const struct psd_peer_spec *spec, const char *why)
{
	bool v6 = strchr(spec->host, ':') != NULL;

	snprintf(err, errlen, "peer %s%s%s:%u: %s", v6 ? "[" : "", spec->host,
		 v6 ? "]" : "", spec->port, why);
}

static void drop_from(struct psd_peers *t, size_t n0)
{
	while (t->n > n0)
		psd_peer_free(&t->peers[--t->n]);
}

static const char *add_error(int r)
{
	switch (r) {
	case -EEXIST:
		return "key given twice";
	case -E2BIG:
		return "too many peers";
	case -EINVAL:
		return "not a usable key (our own, or not a curve point)";
	default:
		return strerror(-r);
	}
}

int psd_peers_load(struct psd_peers *t, const struct psd_config *cfg,
		   char *err, size_t errlen)
{
	size_t n0 = t->n;
	char why[320];
	int r = 0;

	for (size_t i = 0; i < cfg->n_peers && !r; i++) {
		const struct psd_peer_spec *spec = &cfg->peers[i];
		struct sockaddr_in6 a;

		r = psd_peers_resolve(spec, &a, why, sizeof(why));
		if (r) {
			spec_error(err, errlen, spec, why);
			break;
		}
		r = psd_peers_add(t, spec->key, (const struct sockaddr *)&a,
				  sizeof(a), NULL);
		if (r)
			spec_error(err, errlen, spec, add_error(r));
	}
	if (r)
		drop_from(t, n0);
	return r;
}

bool psd_peers_under_load(const struct psd_peers *t, uint64_t now)
{
	return now < t->under_load_until;
}

/* Counts handshake messages per window; too many start a load period. */
static void count_handshake(struct psd_peers *t, const uint8_t *dgram,
			    size_t len, uint64_t now)
{
	if (len < 1 || (dgram[0] != PSD_MSG_INITIATION &&
			dgram[0] != PSD_MSG_RESPONSE))
		return;
	if (now - t->load_window_start >= PSD_PEERS_LOAD_WINDOW) {
		t->load_window_start = now;
		t->load_count = 0;
	}
	if (++t->load_count > PSD_PEERS_LOAD_MAX)
		t->under_load_until = now + PSD_PEERS_LOAD_HOLD;
}

int psd_peers_receive(struct psd_peers *t, const uint8_t *dgram, size_t len,
		      const struct sockaddr *src, socklen_t src_len,
		      uint8_t *out, size_t cap, size_t *ret_len,
		      struct psd_peer **ret_peer, uint64_t now)
{
	count_handshake(t, dgram, len, now);
	return psd_peer_node_receive(&t->node, dgram, len, src, src_len,
				     psd_peers_under_load(t, now), out, cap,
				     ret_len, ret_peer, now);
}

uint64_t psd_peers_next_deadline(const struct psd_peers *t)
{
	uint64_t min = UINT64_MAX;

	for (size_t i = 0; i < t->n; i++) {
		uint64_t d = psd_peer_next_deadline(&t->peers[i]);

		if (d < min)
			min = d;
	}
	return min;
}

void psd_peers_on_timer(struct psd_peers *t, uint64_t now)
{
	for (size_t i = 0; i < t->n; i++)
		if (psd_peer_next_deadline(&t->peers[i]) <= now)
			psd_peer_on_timer(&t->peers[i], now);
}
