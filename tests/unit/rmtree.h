/* SPDX-License-Identifier: GPL-2.0 */
/* Removes a test's temporary directory tree (a store, images). */
#ifndef PSD_TEST_RMTREE_H
#define PSD_TEST_RMTREE_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int rmtree_entry(const char *path, const struct stat *st,
			       int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Depth first, without following links; errors are ignored. */
static inline void rmtree(const char *dir)
{
	nftw(dir, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* PSD_TEST_RMTREE_H */
