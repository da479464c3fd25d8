/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's control socket (docs/control.md): a unix stream socket
 * served inside the io_uring loop, frames decoded by ctl.h, requests
 * answered from the store (store.h) and the fetch engine (fetch.h).
 *
 * Each client has at most one operation in flight at a time (a receive,
 * a send, or a store read for READ): it is read from only while no
 * request of it is being answered, so a client controls at most one
 * frame of receive buffer and one of reply. Anything a client sends that
 * the codec refuses closes that client (counted); other clients and the
 * daemon go on.
 *
 * Shutdown: psd_control_shutdown() before psd_loop_quiesce() (it stops
 * accepting and removes the socket file; the quiesce cancels what is in
 * flight), psd_control_uninit() after it (closes and frees).
 */
#ifndef PSD_CONTROL_H
#define PSD_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "fetch.h"
#include "loop.h"
#include "store.h"

struct psd_control;

struct psd_control_stats {
	uint64_t accepted;	/* connections taken */
	uint64_t refused;	/* peer not root */
	uint64_t busy;		/* too many clients */
	uint64_t malformed;	/* closed for a frame the codec refused */
	uint64_t requests;	/* well-formed requests handled */
	uint64_t errors;	/* ERROR replies sent */
	uint64_t dropped;	/* clients gone mid-request or mid-add */
	uint64_t clients;	/* connected now */
};

struct psd_control_params {
	const char *path;		/* the socket's path (absolute) */
	const char *daemon_version;	/* HELLO's DAEMON_VERSION */
	struct psd_loop *loop;
	struct psd_store *store;
	struct psd_fetch *fetch;
};

/*
 * Creates the socket (parent directory 0700 if missing, a stale socket
 * file removed, the socket mode 0600) and starts accepting. -EADDRINUSE
 * if a daemon listens there already, -EEXIST if the path is not a socket,
 * -ENAMETOOLONG, or the -errno of the socket calls; err says which, with
 * the path.
 */
int psd_control_init(struct psd_control **ret,
		     const struct psd_control_params *p,
		     char *err, size_t errlen);

/* Stops accepting and removes the socket file. Accepts NULL. */
void psd_control_shutdown(struct psd_control *c);

/* Closes every client and frees; the loop must be quiesced. NULL ok. */
void psd_control_uninit(struct psd_control *c);

const struct psd_control_stats *psd_control_get_stats(
	const struct psd_control *c);

#endif /* PSD_CONTROL_H */
