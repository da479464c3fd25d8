// SPDX-License-Identifier: GPL-2.0
/*
 * blockmatch: which of several files each block of a device came from.
 *
 *   blockmatch [-o OFFSET] [-l LENGTH] BLOCK_SIZE TARGET CANDIDATE...
 *
 * Reads TARGET (a device or file) in BLOCK_SIZE blocks over [OFFSET,
 * OFFSET + LENGTH) (default: all of it) and compares each block with the
 * block at the same offset in every CANDIDATE, in order. Prints one line
 * per candidate, "<count> <candidate>", the number of blocks whose first
 * match it was, then "<count> none" and, for up to 8 blocks that matched
 * no candidate, "# none at <offset>". Exit status 0 if the counts were
 * printed (whatever they are), 2 on a usage or I/O error.
 *
 * The power-cut and write tests use it to show that every block of a
 * device is either the image or data written to it, never anything else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CANDIDATES 8
#define MAX_REPORTED 8

struct source {
	const char *path;
	int fd;
	unsigned long long matches;
};

static void die(const char *what, const char *path)
{
	fprintf(stderr, "blockmatch: %s %s: %s\n", what, path, strerror(errno));
	exit(2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: blockmatch [-o OFFSET] [-l LENGTH] BLOCK_SIZE TARGET CANDIDATE...\n");
	exit(2);
}

static unsigned long long parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		usage();
	return v;
}

/* Reads exactly len bytes at off; returns 0 at or past the end of file. */
static size_t read_block(int fd, const char *path, void *buf, size_t len,
			 off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("cannot read", path);
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return done;
}

int main(int argc, char **argv)
{
	unsigned long long offset = 0, length = ~0ULL, none = 0, pos;
	struct source target, cand[MAX_CANDIDATES];
	int opt, ncand, i;
	char *buf, *other;
	size_t bs;

	while ((opt = getopt(argc, argv, "o:l:")) != -1) {
		if (opt == 'o')
			offset = parse_size(optarg);
		else if (opt == 'l')
			length = parse_size(optarg);
		else
			usage();
	}
	ncand = argc - optind - 2;
	if (ncand < 1 || ncand > MAX_CANDIDATES)
		usage();
	bs = parse_size(argv[optind]);
	if (bs == 0 || bs > (64u << 20))
		usage();
	target.path = argv[optind + 1];
	target.fd = open(target.path, O_RDONLY);
	if (target.fd < 0)
		die("cannot open", target.path);
	/* What is on the device now, not what a page cache remembers. */
	posix_fadvise(target.fd, 0, 0, POSIX_FADV_DONTNEED);
	for (i = 0; i < ncand; i++) {
		cand[i].path = argv[optind + 2 + i];
		cand[i].matches = 0;
		cand[i].fd = open(cand[i].path, O_RDONLY);
		if (cand[i].fd < 0)
			die("cannot open", cand[i].path);
	}
	buf = malloc(bs);
	other = malloc(bs);
	if (!buf || !other)
		die("out of memory for", "blocks");

	for (pos = offset; pos - offset < length; pos += bs) {
		size_t n = read_block(target.fd, target.path, buf, bs, (off_t)pos);

		if (n == 0)
			break;
		for (i = 0; i < ncand; i++) {
			if (read_block(cand[i].fd, cand[i].path, other, n,
				       (off_t)pos) == n &&
			    !memcmp(buf, other, n))
				break;
		}
		if (i < ncand) {
			cand[i].matches++;
			continue;
		}
		if (none++ < MAX_REPORTED)
			printf("# none at %llu\n", pos);
	}
	for (i = 0; i < ncand; i++)
		printf("%llu %s\n", cand[i].matches, cand[i].path);
	printf("%llu none\n", none);
	free(buf);
	free(other);
	return 0;
}
