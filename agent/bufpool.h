/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Data buffers for fetches: 4096-aligned (O_DIRECT), in power-of-two size
 * classes from 4 KiB to PSD_BUFPOOL_MAX, kept on per-class free lists for
 * reuse. Two limits: the bytes handed out at once (the budget a fetch
 * waits for) and the bytes kept free (the rest goes back to libc).
 */
#ifndef PSD_BUFPOOL_H
#define PSD_BUFPOOL_H

#include <stdbool.h>
#include <stddef.h>

#define PSD_BUFPOOL_ALIGN	4096u
#define PSD_BUFPOOL_MIN_SHIFT	12		/* 4 KiB */
#define PSD_BUFPOOL_MAX_SHIFT	26		/* 64 MiB */
#define PSD_BUFPOOL_MAX		(1u << PSD_BUFPOOL_MAX_SHIFT)

struct psd_bufpool;

int psd_bufpool_init(struct psd_bufpool **ret, size_t budget,
		     size_t max_free);
void psd_bufpool_uninit(struct psd_bufpool *pool);

/* The class size a request of len bytes uses; 0 if len is too large. */
size_t psd_bufpool_class_size(size_t len);

/* Whether a get of len bytes fits the budget now. */
bool psd_bufpool_fits(const struct psd_bufpool *pool, size_t len);

/* -E2BIG over PSD_BUFPOOL_MAX, -ENOBUFS over budget, -ENOMEM. */
int psd_bufpool_get(struct psd_bufpool *pool, size_t len, void **ret_buf);
void psd_bufpool_put(struct psd_bufpool *pool, void *buf, size_t len);

size_t psd_bufpool_in_use(const struct psd_bufpool *pool);

#endif /* PSD_BUFPOOL_H */
