// SPDX-License-Identifier: GPL-2.0
/*
 * dm-poll: times a background copy of a device-mapper target without the
 * cost of `dmsetup` in a loop (under TCG one dmsetup run took ~0.1 s of
 * CPU, and polling with it took a fifth of the CPU being measured).
 *
 *   dm-poll [-m MESSAGE] [-i MS] [-t SECONDS] NAME WORD CONDITION
 *
 * Sends MESSAGE to sector 0 of device NAME (if given), then reads its
 * status (DM_TABLE_STATUS, the first target's parameters) every MS
 * milliseconds (default 10) until word WORD (0 = the first parameter)
 * meets CONDITION: "=TEXT" (equals TEXT) or "full" (an "a/b" with a == b).
 * Prints the microseconds from the message (or the start) to the first
 * status that met the condition. Exit status 0; 1 on an error; 2 on bad
 * usage; 3 on timeout (default 600 s).
 *
 * Built by scripts/bench into build/bench/dm-poll (benchmarks only).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE	16384

static union {
	struct dm_ioctl io;
	char bytes[BUF_SIZE];
} buf;

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void dm_init(const char *name)
{
	memset(&buf, 0, sizeof(buf));
	buf.io.version[0] = DM_VERSION_MAJOR;
	buf.io.data_size = sizeof(buf);
	buf.io.data_start = sizeof(struct dm_ioctl);
	snprintf(buf.io.name, sizeof(buf.io.name), "%s", name);
}

static int dm_message(int fd, const char *name, const char *msg)
{
	struct dm_target_msg *tm;

	dm_init(name);
	tm = (struct dm_target_msg *)(buf.bytes + buf.io.data_start);
	tm->sector = 0;
	if (strlen(msg) >= sizeof(buf) - buf.io.data_start - sizeof(*tm))
		return -E2BIG;
	strcpy(tm->message, msg);
	return ioctl(fd, DM_TARGET_MSG, &buf.io) < 0 ? -errno : 0;
}

/* The first target's status parameters, or NULL (errno set). */
static const char *dm_status(int fd, const char *name)
{
	struct dm_target_spec *spec;

	dm_init(name);
	if (ioctl(fd, DM_TABLE_STATUS, &buf.io) < 0)
		return NULL;
	if (buf.io.target_count < 1 || (buf.io.flags & DM_BUFFER_FULL_FLAG)) {
		errno = ENODATA;
		return NULL;
	}
	spec = (struct dm_target_spec *)(buf.bytes + buf.io.data_start);
	return (const char *)(spec + 1);
}

/* Copies word @n of @s into @out; false if @s has no such word. */
static int nth_word(const char *s, int n, char *out, size_t cap)
{
	size_t len;

	for (;;) {
		s += strspn(s, " ");
		len = strcspn(s, " ");
		if (!len)
			return 0;
		if (n-- == 0)
			break;
		s += len;
	}
	if (len >= cap)
		len = cap - 1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 1;
}

static int condition_met(const char *word, const char *cond)
{
	unsigned long long a, b;
	char dummy;

	if (cond[0] == '=')
		return strcmp(word, cond + 1) == 0;
	if (sscanf(word, "%llu/%llu%c", &a, &b, &dummy) != 2)
		return 0;
	return a == b;
}

static int usage(void)
{
	fprintf(stderr, "usage: dm-poll [-m MESSAGE] [-i MS] [-t SECONDS] NAME WORD =TEXT|full\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *msg = NULL, *status;
	long interval_ms = 10, timeout_s = 600;
	uint64_t start, deadline;
	char word[256];
	int fd, opt, n, r;

	while ((opt = getopt(argc, argv, "m:i:t:")) != -1) {
		if (opt == 'm')
			msg = optarg;
		else if (opt == 'i')
			interval_ms = atol(optarg);
		else if (opt == 't')
			timeout_s = atol(optarg);
		else
			return usage();
	}
	if (argc - optind != 3 || interval_ms < 1 || timeout_s < 1)
		return usage();
	if (strcmp(argv[optind + 2], "full") && argv[optind + 2][0] != '=')
		return usage();
	n = atoi(argv[optind + 1]);

	fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("dm-poll: /dev/mapper/control");
		return 1;
	}
	start = now_us();
	deadline = start + (uint64_t)timeout_s * 1000000;
	if (msg) {
		r = dm_message(fd, argv[optind], msg);
		if (r < 0) {
			fprintf(stderr, "dm-poll: message '%s' to %s: %s\n", msg,
				argv[optind], strerror(-r));
			return 1;
		}
	}
	for (;;) {
		status = dm_status(fd, argv[optind]);
		if (!status) {
			fprintf(stderr, "dm-poll: status of %s: %s\n",
				argv[optind], strerror(errno));
			return 1;
		}
		if (nth_word(status, n, word, sizeof(word)) &&
		    condition_met(word, argv[optind + 2]))
			break;
		if (now_us() > deadline) {
			fprintf(stderr, "dm-poll: %s: timed out, status: %s\n",
				argv[optind], status);
			return 3;
		}
		usleep((useconds_t)interval_ms * 1000);
	}
	printf("%llu\n", (unsigned long long)(now_us() - start));
	return 0;
}
