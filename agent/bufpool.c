// SPDX-License-Identifier: GPL-2.0
/* Aligned, pooled data buffers: see bufpool.h. */
#include <errno.h>
#include <stdlib.h>

#include "bufpool.h"

#define NR_CLASSES	(PSD_BUFPOOL_MAX_SHIFT - PSD_BUFPOOL_MIN_SHIFT + 1)

/* A free buffer stores the list link in its own first bytes. */
struct free_buf {
	struct free_buf *next;
};

struct psd_bufpool {
	struct free_buf *free[NR_CLASSES];
	size_t budget, in_use;
	size_t max_free, free_bytes;
};

static int class_of(size_t len)
{
	int c = 0;

	if (len > PSD_BUFPOOL_MAX)
		return -1;
	while (((size_t)1 << (PSD_BUFPOOL_MIN_SHIFT + c)) < len)
		c++;
	return c;
}

size_t psd_bufpool_class_size(size_t len)
{
	int c = class_of(len);

	return c < 0 ? 0 : (size_t)1 << (PSD_BUFPOOL_MIN_SHIFT + c);
}

int psd_bufpool_init(struct psd_bufpool **ret, size_t budget,
		     size_t max_free)
{
	struct psd_bufpool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->budget = budget;
	p->max_free = max_free;
	*ret = p;
	return 0;
}

void psd_bufpool_uninit(struct psd_bufpool *p)
{
	int c;

	if (!p)
		return;
	for (c = 0; c < NR_CLASSES; c++) {
		while (p->free[c]) {
			struct free_buf *b = p->free[c];

			p->free[c] = b->next;
			free(b);
		}
	}
	free(p);
}

bool psd_bufpool_fits(const struct psd_bufpool *p, size_t len)
{
	size_t size = psd_bufpool_class_size(len);

	return size && p->in_use + size <= p->budget;
}

int psd_bufpool_get(struct psd_bufpool *p, size_t len, void **ret_buf)
{
	int c = class_of(len);
	size_t size;
	void *buf;

	if (c < 0)
		return -E2BIG;
	size = (size_t)1 << (PSD_BUFPOOL_MIN_SHIFT + c);
	if (p->in_use + size > p->budget)
		return -ENOBUFS;
	if (p->free[c]) {
		buf = p->free[c];
		p->free[c] = p->free[c]->next;
		p->free_bytes -= size;
	} else {
		buf = aligned_alloc(PSD_BUFPOOL_ALIGN, size);
		if (!buf)
			return -ENOMEM;
	}
	p->in_use += size;
	*ret_buf = buf;
	return 0;
}

void psd_bufpool_put(struct psd_bufpool *p, void *buf, size_t len)
{
	int c = class_of(len);
	size_t size;
	struct free_buf *b = buf;

	if (!buf || c < 0)
		return;
	size = (size_t)1 << (PSD_BUFPOOL_MIN_SHIFT + c);
	p->in_use -= size;
	if (p->free_bytes + size > p->max_free) {
		free(buf);
		return;
	}
	b->next = p->free[c];
	p->free[c] = b;
	p->free_bytes += size;
}

size_t psd_bufpool_in_use(const struct psd_bufpool *p)
{
	return p->in_use;
}
