/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A loop device over a temporary file, for tests that need a real block
 * device (O_DIRECT, dev_t lookup). Needs root and /dev/loop-control; a
 * test that cannot get one SKIPs. LO_FLAGS_AUTOCLEAR detaches the device
 * when its last opener closes it, so a crashed test leaks nothing.
 */
#ifndef PSD_TEST_LOOPDEV_H
#define PSD_TEST_LOOPDEV_H

#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

struct loopdev {
	char backing[64];
	char node[64];
	int fd;		/* held open: the device lives as long as this */
	dev_t rdev;
};

/*
 * SKIP from a FIXTURE_SETUP: 6.1's harness runs the test's body even after
 * a SKIP in its fixture's setup, on a half-made fixture. A test child that
 * exits 255 is what the harness itself reports as skipped.
 */
#define SKIP_FROM_SETUP(fmt, ...) SKIP(_exit(255), fmt, ##__VA_ARGS__)

/* Returns 0, or -1 (with errno) when no loop device can be had. */
static inline int loopdev_create(struct loopdev *ld, off_t size)
{
	struct loop_info64 info;
	struct stat st;
	int ctl, bfd, n;

	snprintf(ld->backing, sizeof(ld->backing), "/tmp/psd-loop-XXXXXX");
	bfd = mkstemp(ld->backing);
	if (bfd < 0)
		return -1;
	unlink(ld->backing);
	if (ftruncate(bfd, size) < 0)
		goto err_close_backing;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		goto err_close_backing;
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (n < 0)
		goto err_close_backing;
	snprintf(ld->node, sizeof(ld->node), "/dev/loop%d", n);
	ld->fd = open(ld->node, O_RDWR | O_CLOEXEC);
	if (ld->fd < 0)
		goto err_close_backing;
	if (ioctl(ld->fd, LOOP_SET_FD, bfd) < 0)
		goto err_close_loop;
	close(bfd);
	memset(&info, 0, sizeof(info));
	info.lo_flags = LO_FLAGS_AUTOCLEAR;
	ioctl(ld->fd, LOOP_SET_STATUS64, &info);
	if (fstat(ld->fd, &st) < 0)
		goto err_close_loop;
	ld->rdev = st.st_rdev;
	return 0;

err_close_loop:
	close(ld->fd);
err_close_backing:
	close(bfd);
	return -1;
}

static inline void loopdev_destroy(struct loopdev *ld)
{
	ioctl(ld->fd, LOOP_CLR_FD, 0);
	close(ld->fd);
}

/* The kernel's new_encode_dev(), as the FETCH message carries it. */
static inline uint32_t encode_dev(unsigned int major, unsigned int minor)
{
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}

#endif /* PSD_TEST_LOOPDEV_H */
