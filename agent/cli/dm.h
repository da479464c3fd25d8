/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Device-mapper through libdevmapper, as dmsetup does it: create (and
 * resume) a one-target device, remove, message, status. Without a running
 * udev (the test VM has none) udev synchronisation is off and the
 * /dev/mapper nodes are made here, like 'dmsetup mknodes'.
 *
 * Functions return -errno (the ioctl's, when the kernel refused);
 * libdevmapper prints its own diagnostics on stderr, and the kernel's
 * reason for refusing a table is in the kernel log.
 */
#ifndef PSC_DM_H
#define PSC_DM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_DM_DIR	"/dev/mapper"

/*
 * Creates NAME with one target "0 sectors type params", loads and resumes
 * it, and makes its /dev/mapper node. On failure nothing is left behind.
 */
int cli_dm_create(const char *name, uint64_t sectors, const char *type,
		  const char *params, bool read_only);

/* Removes NAME and its node. -ENXIO if there is no such device. */
int cli_dm_remove(const char *name);

/* 'dmsetup message NAME 0 MSG'. */
int cli_dm_message(const char *name, const char *msg);

/*
 * The kernel's name of the mapped device NAME, "<major>:<minor>": what
 * dm_device_name() gives the target, so what its netlink dumps carry as
 * DEVICE_NAME. -ENXIO if there is no such device.
 */
int cli_dm_kernel_name(const char *name, char *ret, size_t cap);

/*
 * NAME's single target: its type and its status line (table = false) or
 * table parameters (table = true). -ENXIO no such device, -EINVAL not
 * exactly one target, -ENOSPC a buffer too small.
 */
int cli_dm_query(const char *name, bool table, char *ret_type,
		 size_t type_cap, char *ret_params, size_t params_cap);

#endif /* PSC_DM_H */
