/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The inside of the control socket server (control.h), shared by
 * control.c (the socket, clients, framing, limits), control_requests.c
 * (the request handlers) and control_add.c (the ADD_* session). Nothing
 * outside these three files includes it.
 */
#ifndef PSD_CONTROL_INTERNAL_H
#define PSD_CONTROL_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "control.h"
#include "ctl.h"

enum client_state {
	CL_FREE,
	CL_RECV,
	CL_BUSY,
	CL_SEND,
};

struct add_state;		/* control_add.c */

struct client {
	int fd;
	uint16_t gen;
	enum client_state state;
	bool hello;
	bool close_after;		/* the reply being sent is the last */
	uint8_t *rx;
	size_t rx_cap;
	size_t rx_len;
	uint32_t rx_need;		/* 0: header not read yet */
	struct psd_ctl_buf tx;
	size_t tx_off;
	struct add_state *add;
	struct psd_control *owner;
	/* A READ waiting for the fetch engine. */
	bool reading;
	uint64_t read_id;
	uint64_t read_first;
	uint32_t read_count;
	uint32_t read_seq;
	size_t read_len;		/* DATA bytes: up to the image's end */
};

struct psd_control {
	struct psd_loop *loop;
	struct psd_store *store;
	struct psd_fetch *fetch;
	char *path;
	char *version;
	int lfd;
	bool shut;
	struct __kernel_timespec retry_ts;
	struct timespec started;
	unsigned int adds;		/* open ADD_BEGINs, all clients */
	struct client clients[PSD_CTL_MAX_CLIENTS];
	struct psd_control_stats stats;
};

/* What a handler says about its request. */
struct reply_err {
	int err;			/* -errno */
	char msg[256];
};

/* Fills e: a message quoting the bad input, and err; returns err. */
__attribute__((format(printf, 3, 4)))
static inline int say(struct reply_err *e, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->err = err;
	return err;
}

/*
 * A request handler: 0 with the reply begun in cl->tx, 1 if the reply
 * comes later from a completion, or -errno with e filled.
 */
typedef int (*control_handler_fn)(struct psd_control *c, struct client *cl,
				  const struct psd_ctl_msg *m,
				  struct reply_err *e);

/* Starts the reply to m in cl->tx. */
static inline void begin_reply(struct client *cl, const struct psd_ctl_msg *m)
{
	psd_ctl_begin(&cl->tx, m->type | PSD_CTL_REPLY, m->seq);
}

/* Sending (control.c): the finished frame in cl->tx, or an ERROR
 * replacing it. On failure the client is closed, counted as dropped. */
void control_send_reply(struct psd_control *c, struct client *cl);
void control_send_error(struct psd_control *c, struct client *cl,
			uint32_t seq, const struct reply_err *e);

/* Runs the handler of a well-formed request after HELLO
 * (control_requests.c); returns as a control_handler_fn. */
int control_request(struct psd_control *c, struct client *cl,
		    const struct psd_ctl_msg *m, struct reply_err *e);

/* The ADD_* handlers (control_add.c). */
int control_add_begin(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e);
int control_add_index(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e);
int control_add_present(struct psd_control *c, struct client *cl,
			const struct psd_ctl_msg *m, struct reply_err *e);
int control_add_commit(struct psd_control *c, struct client *cl,
		       const struct psd_ctl_msg *m, struct reply_err *e);
int control_add_abort(struct psd_control *c, struct client *cl,
		      const struct psd_ctl_msg *m, struct reply_err *e);

/* Ends the client's open add, if any, storing nothing. */
void control_add_end(struct psd_control *c, struct client *cl);

#endif /* PSD_CONTROL_INTERNAL_H */
