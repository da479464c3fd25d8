// SPDX-License-Identifier: GPL-2.0
/* dev_t decoding, uevent DEVNAME parsing, opening a device by dev_t. */
#include <string.h>
#include <sys/sysmacros.h>

#include "kselftest_harness.h"

#include "cache.h"
#include "loopdev.h"

TEST(decode_known_values)
{
	unsigned int maj, min;

	psd_dev_decode(0x800, &maj, &min);		/* sda: 8:0 */
	EXPECT_EQ(8, maj);
	EXPECT_EQ(0, min);
	psd_dev_decode(0xfe01, &maj, &min);		/* 254:1 */
	EXPECT_EQ(254, maj);
	EXPECT_EQ(1, min);
	psd_dev_decode(0x10300, &maj, &min);		/* 259:0 */
	EXPECT_EQ(259, maj);
	EXPECT_EQ(0, min);
	psd_dev_decode(0x00100703, &maj, &min);		/* 7:259 */
	EXPECT_EQ(7, maj);
	EXPECT_EQ(259, min);
	psd_dev_decode(0xffffffff, &maj, &min);		/* widest */
	EXPECT_EQ(0xfff, maj);
	EXPECT_EQ(0xfffff, min);
}

/* Every major and a spread of minors survive encode -> decode. */
TEST(decode_inverts_new_encode_dev)
{
	unsigned int maj, min, m, n;

	for (maj = 0; maj < 4096; maj++) {
		for (min = 0; min < (1u << 20); min += 4093) {
			psd_dev_decode(encode_dev(maj, min), &m, &n);
			ASSERT_EQ(maj, m);
			ASSERT_EQ(min, n);
		}
	}
}

TEST(decode_matches_libc_makedev)
{
	unsigned int maj, min;
	dev_t d = makedev(259, 70000);

	psd_dev_decode(encode_dev(major(d), minor(d)), &maj, &min);
	EXPECT_EQ(major(d), maj);
	EXPECT_EQ(minor(d), min);
}

static int devname(const char *text, char *out, size_t cap)
{
	return psd_uevent_devname(text, strlen(text), out, cap);
}

TEST(uevent_devname)
{
	char name[32] = "untouched";

	ASSERT_EQ(0, devname("MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\n",
			     name, sizeof(name)));
	EXPECT_STREQ("loop0", name);
	ASSERT_EQ(0, devname("DEVNAME=dm-12", name, sizeof(name)));
	EXPECT_STREQ("dm-12", name);
	ASSERT_EQ(0, devname("DEVNAME=cciss/c0d0\n", name, sizeof(name)));
	EXPECT_STREQ("cciss/c0d0", name);
}

TEST(uevent_devname_rejects)
{
	char name[8] = "keep";

	EXPECT_EQ(-ENOENT, devname("MAJOR=7\nMINOR=0\n", name, sizeof(name)));
	EXPECT_EQ(-ENOENT, devname("XDEVNAME=sda\n", name, sizeof(name)));
	EXPECT_EQ(-EINVAL, devname("DEVNAME=\n", name, sizeof(name)));
	EXPECT_EQ(-EINVAL, devname("DEVNAME=../sda\n", name, sizeof(name)));
	EXPECT_EQ(-EINVAL, devname("DEVNAME=a/../../etc\n", name,
				   sizeof(name)));
	EXPECT_EQ(-EINVAL, devname("DEVNAME=/etc/passwd\n", name,
				   sizeof(name)));
	EXPECT_EQ(-EINVAL, devname("DEVNAME=sd a\n", name, sizeof(name)));
	EXPECT_EQ(-EINVAL, devname("DEVNAME=verylongname\n", name,
				   sizeof(name)));
	EXPECT_STREQ("keep", name);
}

TEST(open_by_dev_t_and_share)
{
	struct psd_cache *cache;
	struct loopdev ld;
	uint32_t dev;
	int fd1, fd2, flags;

	if (loopdev_create(&ld, 1 << 20) < 0)
		SKIP(return, "no loop device: %s", strerror(errno));
	dev = encode_dev(major(ld.rdev), minor(ld.rdev));
	ASSERT_EQ(0, psd_cache_init(&cache, "/tmp/psd-no-state-dir"));
	ASSERT_EQ(0, psd_cache_get(cache, dev, &fd1));
	flags = fcntl(fd1, F_GETFL);
	EXPECT_TRUE(flags & O_DIRECT);
	EXPECT_TRUE(flags & O_DSYNC);
	EXPECT_EQ(O_RDWR, flags & O_ACCMODE);
	ASSERT_EQ(0, psd_cache_get(cache, dev, &fd2));
	EXPECT_EQ(fd1, fd2);
	EXPECT_EQ(1, psd_cache_open_count(cache));
	psd_cache_put(cache, dev);
	EXPECT_EQ(1, psd_cache_open_count(cache));
	psd_cache_put(cache, dev);
	/* Closed with its last user: nothing keeps the device busy. */
	EXPECT_EQ(0, psd_cache_open_count(cache));
	psd_cache_uninit(cache);
	loopdev_destroy(&ld);
}

/* No /dev node (no devtmpfs): a private node under the state dir. */
TEST(open_via_private_node)
{
	char state[] = "/tmp/psd-state-XXXXXX", hidden[80], devdir[64];
	struct psd_cache *cache;
	struct loopdev ld;
	uint32_t dev;
	int fd;

	if (loopdev_create(&ld, 1 << 20) < 0)
		SKIP(return, "no loop device: %s", strerror(errno));
	ASSERT_NE(NULL, mkdtemp(state));
	snprintf(hidden, sizeof(hidden), "%s.psd-hidden", ld.node);
	ASSERT_EQ(0, rename(ld.node, hidden));
	dev = encode_dev(major(ld.rdev), minor(ld.rdev));
	ASSERT_EQ(0, psd_cache_init(&cache, state));
	EXPECT_EQ(0, psd_cache_get(cache, dev, &fd));
	EXPECT_EQ(0, rename(hidden, ld.node));
	psd_cache_put(cache, dev);
	psd_cache_uninit(cache);
	/* The node was unlinked right after it was opened. */
	snprintf(devdir, sizeof(devdir), "%s/dev", state);
	EXPECT_EQ(0, rmdir(devdir));
	EXPECT_EQ(0, rmdir(state));
	loopdev_destroy(&ld);
}

TEST(missing_device)
{
	struct psd_cache *cache;
	int fd;

	ASSERT_EQ(0, psd_cache_init(&cache, "/tmp/psd-no-such-state-dir"));
	EXPECT_EQ(-ENODEV, psd_cache_get(cache, encode_dev(0, 5), &fd));
	/* Unknown to sysfs: refused without a mknod (see cache.h). */
	EXPECT_EQ(-ENODEV, psd_cache_get(cache, encode_dev(4095, 1048575),
					 &fd));
	EXPECT_EQ(-ENODEV, psd_cache_get(cache, encode_dev(7, 1048575), &fd));
	EXPECT_NE(0, access("/sys/dev/block/7:1048575", F_OK));
	EXPECT_EQ(0, psd_cache_open_count(cache));
	psd_cache_uninit(cache);
}

TEST_HARNESS_MAIN
