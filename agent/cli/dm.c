// SPDX-License-Identifier: GPL-2.0
/* Device-mapper through libdevmapper: see dm.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libdevmapper.h>

#include "dm.h"

/* udev's control socket: present while udevd runs. */
#define UDEV_CONTROL	"/run/udev/control"

/* Without udev nobody would answer libdevmapper's semaphores or make the
 * nodes: turn synchronisation off, so libdevmapper makes them itself. */
static void dm_setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	if (access(UDEV_CONTROL, F_OK) < 0)
		dm_udev_set_sync_support(0);
}

/* The errno of a failed run (EIO when the library has none). */
static int task_errno(struct dm_task *t)
{
	int e = dm_task_get_errno(t);

	return e > 0 ? -e : -EIO;
}

static struct dm_task *task_new(int type, const char *name)
{
	struct dm_task *t;

	dm_setup();
	t = dm_task_create(type);
	if (t && !dm_task_set_name(t, name)) {
		dm_task_destroy(t);
		t = NULL;
	}
	return t;
}

static int get_info(const char *name, struct dm_info *ret)
{
	struct dm_task *t = task_new(DM_DEVICE_INFO, name);
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (!t)
		return -ENOMEM;
	if (!dm_task_run(t))
		r = task_errno(t);
	else if (!dm_task_get_info(t, ret))
		r = -EIO;
	dm_task_destroy(t);
	return r;
}

int cli_dm_kernel_name(const char *name, char *ret, size_t cap)
{
	struct dm_info info;
	int r = get_info(name, &info);

	if (r)
		return r;
	if (!info.exists)
		return -ENXIO;
	return (size_t)snprintf(ret, cap, "%u:%u", info.major, info.minor) < cap
		       ? 0 : -ENOSPC;
}

/* The node udev or libdevmapper should have made; dm_mknodes() if not
 * (as 'dmsetup mknodes'). */
static int make_node(const char *name)
{
	char path[256];

	dm_task_update_nodes();
	snprintf(path, sizeof(path), CLI_DM_DIR "/%s", name);
	if (access(path, F_OK) == 0)
		return 0;
	if (!dm_mknodes(name))
		return -EIO;
	dm_task_update_nodes();
	return access(path, F_OK) == 0 ? 0 : -ENOENT;
}

/*
 * Runs t, waiting for udev (when it runs) to finish with the node: a
 * cookie makes libdevmapper wait for udev's rules, or make the node
 * itself when synchronisation is off.
 */
static int run_with_node(struct dm_task *t)
{
	uint32_t cookie = 0;
	int r = 0;

	if (!dm_task_set_cookie(t, &cookie, 0))
		return -ENOMEM;
	if (!dm_task_run(t))
		r = task_errno(t);
	dm_udev_wait(cookie);
	return r;
}

/* A task that takes nothing but the name (create empty, resume). */
static int run_named(int type, const char *name)
{
	struct dm_task *t = task_new(type, name);
	int r;

	if (!t)
		return -ENOMEM;
	r = run_with_node(t);
	dm_task_destroy(t);
	return r;
}

static int load(const char *name, uint64_t sectors, const char *type,
		const char *params, bool read_only)
{
	struct dm_task *t = task_new(DM_DEVICE_RELOAD, name);
	int r = 0;

	if (!t)
		return -ENOMEM;
	if (!dm_task_add_target(t, 0, sectors, type, params) ||
	    (read_only && !dm_task_set_ro(t)))
		r = -ENOMEM;
	else if (!dm_task_run(t))
		r = task_errno(t);
	dm_task_destroy(t);
	return r;
}

/* Create, load, resume: as dmsetup, but one step at a time so that each
 * failure has its own errno and is undone. */
int cli_dm_create(const char *name, uint64_t sectors, const char *type,
		  const char *params, bool read_only)
{
	int r;

	r = run_named(DM_DEVICE_CREATE, name);
	if (r)
		return r;
	r = load(name, sectors, type, params, read_only);
	if (!r)
		r = run_named(DM_DEVICE_RESUME, name);
	if (!r)
		r = make_node(name);
	if (r)
		cli_dm_remove(name);	/* nothing left behind */
	return r;
}

int cli_dm_remove(const char *name)
{
	struct dm_task *t = task_new(DM_DEVICE_REMOVE, name);
	int r;

	if (!t)
		return -ENOMEM;
	/* A just-closed device may be briefly busy (udev-less probes). */
	dm_task_retry_remove(t);
	r = run_with_node(t);
	dm_task_destroy(t);
	return r;
}

int cli_dm_message(const char *name, const char *msg)
{
	struct dm_task *t = task_new(DM_DEVICE_TARGET_MSG, name);
	int r = 0;

	if (!t)
		return -ENOMEM;
	if (!dm_task_set_sector(t, 0) || !dm_task_set_message(t, msg))
		r = -ENOMEM;
	else if (!dm_task_run(t))
		r = task_errno(t);
	dm_task_destroy(t);
	return r;
}

static int copy_out(char *dst, size_t cap, const char *src)
{
	if (!src || strlen(src) >= cap)
		return -ENOSPC;
	strcpy(dst, src);
	return 0;
}

int cli_dm_query(const char *name, bool table, char *ret_type,
		 size_t type_cap, char *ret_params, size_t params_cap)
{
	struct dm_task *t = task_new(table ? DM_DEVICE_TABLE : DM_DEVICE_STATUS,
				     name);
	char *type = NULL, *params = NULL;
	uint64_t start, length;
	struct dm_info info = {};
	void *next;
	int r;

	if (!t)
		return -ENOMEM;
	if (!dm_task_run(t)) {
		r = task_errno(t);
		goto out;
	}
	if (!dm_task_get_info(t, &info) || !info.exists) {
		r = -ENXIO;
		goto out;
	}
	next = dm_get_next_target(t, NULL, &start, &length, &type, &params);
	r = next || !type ? -EINVAL : 0;	/* exactly one target */
	if (!r)
		r = copy_out(ret_type, type_cap, type);
	if (!r)
		r = copy_out(ret_params, params_cap, params);
out:
	dm_task_destroy(t);
	return r;
}
