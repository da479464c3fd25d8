// SPDX-License-Identifier: GPL-2.0
/*
 * A deliberately broken module for the debug lane's self-test
 * (tests/debug/selftest.sh): loaded with bug=<name>, it commits that bug
 * at load time, and the debug kernel's checkers must catch it:
 *
 *   bug=uaf    reads a freed kmalloc object            -> KASAN
 *   bug=lock   takes two mutexes in both orders, on
 *              two code paths (no real deadlock)       -> lockdep
 *   bug=leak   drops the only pointers to kmalloc'ed
 *              objects                                  -> kmemleak
 *   bug=none   does nothing wrong (the control case)
 *
 * Built only against the debug kernel (scripts/debug-modules); never
 * installed or shipped.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>
#include <linux/string.h>

static char bug[8] = "none";
module_param_string(bug, bug, sizeof(bug), 0444);
MODULE_PARM_DESC(bug, "the bug to commit at load: uaf, lock, leak or none");

static noinline int broken_use_after_free(void)
{
	char *p = kmalloc(64, GFP_KERNEL);

	if (!p)
		return -ENOMEM;
	memset(p, 0x5a, 64);
	kfree(p);
	/* Keeps the compiler from seeing (and warning about) the bug. */
	OPTIMIZER_HIDE_VAR(p);
	pr_info("peersnap_broken: read %d after free\n", READ_ONCE(p[8]));
	return 0;
}

static DEFINE_MUTEX(broken_a);
static DEFINE_MUTEX(broken_b);

/* One path takes a then b (in a worker), the other b then a. */
static void broken_a_then_b(struct work_struct *work)
{
	mutex_lock(&broken_a);
	mutex_lock(&broken_b);
	mutex_unlock(&broken_b);
	mutex_unlock(&broken_a);
}

static DECLARE_WORK(broken_work, broken_a_then_b);

static noinline int broken_lock_inversion(void)
{
	schedule_work(&broken_work);
	flush_work(&broken_work);
	mutex_lock(&broken_b);
	mutex_lock(&broken_a);
	mutex_unlock(&broken_a);
	mutex_unlock(&broken_b);
	return 0;
}

/*
 * Objects nobody frees. Many independent objects, not a list: stale copies
 * of a pointer left on a kernel stack (kmemleak scans those it can reach)
 * hide that object, and those copies are overwritten for most of them.
 */
static noinline int broken_leak(void)
{
	void *p;
	int i;

	for (i = 0; i < 32; i++) {
		p = kzalloc(128, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
	}
	pr_info("peersnap_broken: leaked 32 objects\n");
	return 0;
}

static int __init broken_init(void)
{
	if (!strcmp(bug, "uaf"))
		return broken_use_after_free();
	if (!strcmp(bug, "lock"))
		return broken_lock_inversion();
	if (!strcmp(bug, "leak"))
		return broken_leak();
	if (!strcmp(bug, "none"))
		return 0;
	return -EINVAL;
}

static void __exit broken_exit(void)
{
}

module_init(broken_init);
module_exit(broken_exit);
MODULE_DESCRIPTION("peersnap debug lane self-test: deliberate kernel bugs");
MODULE_LICENSE("GPL");
