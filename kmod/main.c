// SPDX-License-Identifier: GPL-2.0
/*
 * dm-peersnap: a device-mapper target that exposes a peer-to-peer snapshot
 * as a block device usable before its data is local. The inits run in
 * dependency order and unwind in reverse.
 */
#include <linux/module.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>

#include "fetch.h"
#include "genl.h"
#include "peersnap.h"

struct workqueue_struct *ps_wq;

static int __init ps_init(void)
{
	int r;

	ps_wq = alloc_workqueue("peersnap", WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!ps_wq)
		return -ENOMEM;
	r = ps_fetch_init();
	if (r)
		goto err_destroy_wq;
	r = ps_genl_init();
	if (r)
		goto err_fetch_exit;
	r = ps_target_init();
	if (r)
		goto err_genl_exit;
	return 0;

err_genl_exit:
	ps_genl_exit();
err_fetch_exit:
	ps_fetch_exit();
err_destroy_wq:
	destroy_workqueue(ps_wq);
	return r;
}

static void __exit ps_exit(void)
{
	ps_target_exit();
	ps_genl_exit();
	ps_fetch_exit();
	destroy_workqueue(ps_wq);
}

module_init(ps_init);
module_exit(ps_exit);

MODULE_DESCRIPTION("dm target for lazily fetched peer-to-peer snapshots");
MODULE_AUTHOR("The peersnap authors");
MODULE_LICENSE("GPL");
MODULE_ALIAS_GENL_FAMILY(PEERSNAP_GENL_NAME);
