/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's view of a peersnap device over generic netlink (family
 * "peersnap", uapi/linux/peersnap.h): find a device by its dm name
 * (GET_DEVICE dump) and read its present or dirty bitmap (GET_BITMAP
 * dump). A plain synchronous libnl socket; needs CAP_NET_ADMIN.
 */
#ifndef PSC_BITMAP_H
#define PSC_BITMAP_H

#include <stdint.h>

#include <linux/peersnap.h>

struct cli_kdev {
	uint32_t id;
	uint8_t snapshot[PEERSNAP_SNAPSHOT_ID_LEN];
	uint32_t cache_dev;		/* dev_t, new_encode_dev() */
	uint32_t chunk_sectors;
	uint64_t chunks_total;
	uint64_t chunks_present;
	uint64_t chunks_dirty;
	uint64_t failed;
};

/*
 * The peersnap device whose kernel name is name ("<major>:<minor>": the
 * DEVICE_NAME the dumps carry is dm_device_name(), not the dm name;
 * cli_dm_kernel_name() maps one to the other). -ENOENT: the family is
 * missing (dm-peersnap not loaded); -ENODEV: no such device; -EPROTO: a
 * malformed reply; else the kernel's -errno.
 */
int cli_kdev_find(const char *name, struct cli_kdev *ret);

/*
 * Device d's bitmap of this kind into bits ((chunks_total + 7) / 8 bytes,
 * bit i of byte j = chunk 8j + i). -ENODEV if the device went away, -EPROTO
 * for pieces that do not cover every chunk exactly once, in order.
 */
int cli_kdev_bitmap(const struct cli_kdev *d, enum peersnap_bitmap_kind kind,
		    uint8_t *bits);

#endif /* PSC_BITMAP_H */
