/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Cache devices, named by the dev_t the kernel sends in a FETCH.
 *
 * A device is opened O_RDWR | O_DIRECT | O_DSYNC: O_DIRECT so chunk data
 * skips the page cache (the kernel reads it through the dm target, not
 * through our page cache), O_DSYNC so every write is durable when it
 * completes (a FUA write; see fetch.c for why not FSYNC).
 *
 * Finding the node: /sys/dev/block/MAJ:MIN/uevent names it (DEVNAME), and
 * /dev/DEVNAME is opened and checked to be that very dev_t. Without sysfs
 * or without the /dev node, a private node is made under <state_dir>/dev,
 * opened and
 * unlinked at once. A dev_t that sysfs does not know is -ENODEV: never
 * mknod'ed, since opening a node can make a driver create the device.
 *
 * Lifetime: an open device is shared by every fetch in flight on it and
 * closed when the last one ends. Holding it open while idle would keep a
 * user from removing it (dmsetup remove of a dm cache device, rmmod brd)
 * after the peersnap device on top of it is gone.
 */
#ifndef PSD_CACHE_H
#define PSD_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* The kernel's new_decode_dev(): 12-bit major, 20-bit minor. */
void psd_dev_decode(uint32_t dev, unsigned int *ret_major,
		    unsigned int *ret_minor);

/*
 * Extracts DEVNAME from a uevent file's contents. Refuses names that could
 * leave /dev ("..", a leading '/') or hold odd bytes. -ENOENT, -EINVAL.
 */
int psd_uevent_devname(const char *buf, size_t len, char *ret, size_t cap);

struct psd_cache;

int psd_cache_init(struct psd_cache **ret, const char *state_dir);
void psd_cache_uninit(struct psd_cache *cache);

/* Opens (or shares) the device; each get needs one put. -errno. */
int psd_cache_get(struct psd_cache *cache, uint32_t dev, int *ret_fd);
void psd_cache_put(struct psd_cache *cache, uint32_t dev);

/* Devices currently open (for tests and the shutdown summary). */
size_t psd_cache_open_count(const struct psd_cache *cache);

#endif /* PSD_CACHE_H */
