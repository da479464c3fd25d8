/* SPDX-License-Identifier: GPL-2.0 */
/* The generic netlink family "peersnap" (uapi/linux/peersnap.h). */
#ifndef PEERSNAP_GENL_H
#define PEERSNAP_GENL_H

#include "fetch.h"

int ps_genl_init(void);
void ps_genl_exit(void);

int ps_genl_send_fetch(u32 portid, const struct ps_fetch_msg *msg);

/* The registry of live devices, for dumps and events. */
void ps_genl_dev_add(struct ps_dev *dev);
void ps_genl_dev_remove(struct ps_dev *dev);

#endif /* PEERSNAP_GENL_H */
