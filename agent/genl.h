/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's generic netlink socket (family "peersnap").
 *
 * Startup: psd_genl_init() resolves the family (-ENOENT: module not
 * loaded), psd_genl_register() sends REGISTER and waits for the kernel's
 * verdict on the still-blocking socket, psd_genl_attach() then makes the
 * socket non-blocking and has the loop poll it (multishot POLL_ADD);
 * each readiness drains it with nl_recvmsgs() until EAGAIN.
 *
 * Only messages from the kernel (port 0) are accepted: a FETCH names a
 * block device the agent will write to.
 *
 * Module reload: the socket listens to nlctrl's "notify" group. When the
 * family goes away, the owner is told (ops->family_gone: forget every
 * request, their ids mean nothing to the next module instance) and replies
 * are no longer sent; when it comes back, the agent REGISTERs with it.
 *
 * Overrun: if the socket's receive buffer overflowed (ENOBUFS), FETCHes
 * were lost. The owner is told (ops->overrun) and answers with
 * psd_genl_reregister() when it is ready for the kernel to resend every
 * pending request; duplicates of what it already has are ignored by the
 * fetch engine.
 */
#ifndef PSD_GENL_H
#define PSD_GENL_H

#include <stdint.h>

#include "loop.h"
#include "proto.h"

struct psd_genl_ops {
	/* A valid FETCH from the kernel. */
	void (*fetch)(void *ctx, const struct psd_fetch_msg *m);
	/* The receive buffer overflowed: some FETCHes were lost. */
	void (*overrun)(void *ctx);
	/* dm-peersnap was unloaded: its pending requests are gone. */
	void (*family_gone)(void *ctx);
	/* The kernel refused REGISTER (-EPERM, -EBUSY): cannot go on. */
	void (*fatal)(void *ctx, int err);
};

struct psd_genl_stats {
	uint64_t malformed;	/* dropped: not answerable */
	uint64_t invalid;	/* answered -EINVAL */
	uint64_t foreign;	/* not from the kernel */
	uint64_t refused;	/* the kernel refused a FETCH_DONE */
	uint64_t send_failed;
	uint64_t overruns;
};

struct psd_genl;

/* -ENOENT if the family is missing, else -errno. */
int psd_genl_init(struct psd_genl **ret, const struct psd_genl_ops *ops,
		  void *ctx);
void psd_genl_uninit(struct psd_genl *g);

/* Synchronous REGISTER; returns the kernel's verdict (0, -EPERM, ...). */
int psd_genl_register(struct psd_genl *g);

int psd_genl_attach(struct psd_genl *g, struct psd_loop *loop);

/*
 * Asynchronous REGISTER from inside the loop; a refusal calls ops->fatal.
 * -ENODEV while the family is gone (it REGISTERs itself on return).
 */
int psd_genl_reregister(struct psd_genl *g);

/*
 * Sends a FETCH_DONE; a refusal is logged and counted when it arrives.
 * -ENODEV while the family is gone (nothing to answer to).
 */
int psd_genl_send_done(struct psd_genl *g, const struct psd_fetch_done *d);

const struct psd_genl_stats *psd_genl_get_stats(const struct psd_genl *g);

#endif /* PSD_GENL_H */
