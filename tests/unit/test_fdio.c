// SPDX-License-Identifier: GPL-2.0
/* Whole reads and writes (agent/fdio.c): offsets, short transfers, ends. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#include "fdio.h"

/* More than a pipe or socket buffer holds: the transfer must loop. */
#define BIG	(1u << 20)

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 8));
}

TEST(pwrite_and_pread_at_offsets)
{
	static uint8_t out[BIG], in[BIG];
	int fd = memfd_create("fdio", MFD_CLOEXEC);
	size_t i, got = 0;

	ASSERT_LE(0, fd);
	for (i = 0; i < BIG; i++)
		out[i] = pattern(i);
	ASSERT_EQ(0, psd_pwrite_full(fd, out, BIG, 4096));
	ASSERT_EQ(0, psd_pread_full(fd, in, BIG, 4096, &got));
	EXPECT_EQ(BIG, got);
	EXPECT_EQ(0, memcmp(out, in, BIG));
	/* Fewer only at the end of the file. */
	ASSERT_EQ(0, psd_pread_full(fd, in, BIG, BIG, &got));
	EXPECT_EQ(4096, got);
	EXPECT_EQ(0, memcmp(out + BIG - 4096, in, 4096));
	ASSERT_EQ(0, psd_pread_full(fd, in, 16, BIG + 4096, &got));
	EXPECT_EQ(0, got);
	close(fd);
}

/* A writer child fills the socket in pieces; the reader gets it all. */
TEST(send_and_read_whole_through_a_socket)
{
	static uint8_t out[BIG], in[BIG + 1];
	int sv[2], status;
	size_t i, got = 0;
	pid_t pid;

	for (i = 0; i < BIG; i++)
		out[i] = pattern(i);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(sv[0]);
		_exit(psd_send_full(sv[1], out, BIG) ? 1 : 0);
	}
	close(sv[1]);
	ASSERT_EQ(0, psd_read_full(sv[0], in, sizeof(in), &got));
	EXPECT_EQ(BIG, got);
	EXPECT_EQ(0, memcmp(out, in, BIG));
	close(sv[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A closed peer is -EPIPE, not a SIGPIPE that would kill the CLI. */
TEST(send_to_a_closed_socket_is_epipe)
{
	uint8_t b = 1;
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	close(sv[1]);
	EXPECT_EQ(-EPIPE, psd_send_full(sv[0], &b, 1));
	close(sv[0]);
}

TEST(write_errors_are_negative_errno)
{
	uint8_t b[64] = { 0 };
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-ENOSPC, psd_write_full(fd, b, sizeof(b)));
	close(fd);
	EXPECT_EQ(-EBADF, psd_write_full(fd, b, sizeof(b)));
	EXPECT_EQ(-EBADF, psd_pwrite_full(fd, b, sizeof(b), 0));
}

TEST(read_errors_are_negative_errno)
{
	uint8_t b[16];
	size_t got = 99;
	int p[2];

	ASSERT_EQ(0, pipe(p));
	close(p[0]);
	EXPECT_EQ(-EBADF, psd_read_full(p[0], b, sizeof(b), &got));
	EXPECT_EQ(-ESPIPE, psd_pread_full(p[1], b, sizeof(b), 0, &got));
	EXPECT_EQ(99, got);
	close(p[1]);
}

TEST_HARNESS_MAIN
