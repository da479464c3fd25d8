// SPDX-License-Identifier: GPL-2.0
/* The progress bar: see progress.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define REDRAW_INTERVAL	0.1	/* seconds */
#define ETA_MAX		(100.0 * 3600)

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_format_bytes(char *buf, size_t cap, double bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB",
					     "PiB" };
	unsigned int u = 0;

	if (bytes < 1024) {
		snprintf(buf, cap, "%.0f B", bytes);
		return;
	}
	bytes /= 1024;
	while (bytes >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		bytes /= 1024;
		u++;
	}
	if (bytes < 10)
		snprintf(buf, cap, "%.2f %s", bytes, units[u]);
	else if (bytes < 100)
		snprintf(buf, cap, "%.1f %s", bytes, units[u]);
	else
		snprintf(buf, cap, "%.0f %s", bytes, units[u]);
}

void cli_format_eta(char *buf, size_t cap, double seconds)
{
	unsigned long s;

	if (!(seconds >= 0 && seconds < ETA_MAX)) {
		snprintf(buf, cap, "--:--");
		return;
	}
	s = (unsigned long)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, cap, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60,
			 s % 60);
	else
		snprintf(buf, cap, "%lu:%02lu", s / 60, s % 60);
}

void cli_progress_format(char *buf, size_t cap, const char *label,
			 uint64_t done, uint64_t total, double elapsed)
{
	char d[16], t[16], rate[24] = "", eta[16];
	double pct = total ? 100.0 * (double)done / (double)total : 100.0;
	double r = 0;

	cli_format_bytes(d, sizeof(d), (double)done);
	cli_format_bytes(t, sizeof(t), (double)total);
	if (elapsed > 0 && done) {
		r = (double)done / elapsed;
		cli_format_bytes(rate, sizeof(rate) - 2, r);
		snprintf(rate + strlen(rate), 3, "/s");
	}
	cli_format_eta(eta, sizeof(eta),
		       r > 0 ? (double)(total - done) / r : -1);
	snprintf(buf, cap, "%s %3.0f%%  %s/%s  %s  ETA %s", label,
		 pct > 100 ? 100 : pct, d, t, r > 0 ? rate : "-", eta);
}

void cli_progress_start(struct cli_progress *p, const char *label,
			uint64_t total)
{
	p->label = label;
	p->total = total;
	p->start = cli_now();
	p->last_draw = 0;
	p->enabled = isatty(STDERR_FILENO);
}

void cli_progress_update(struct cli_progress *p, uint64_t done)
{
	char line[CLI_PROGRESS_LINE];
	double now;

	if (!p->enabled)
		return;
	now = cli_now();
	if (now - p->last_draw < REDRAW_INTERVAL && done < p->total)
		return;
	p->last_draw = now;
	cli_progress_format(line, sizeof(line), p->label, done, p->total,
			    now - p->start);
	/* \r and "erase to end of line": the bar never scrolls. */
	fprintf(stderr, "\r%s\033[K", line);
	fflush(stderr);
}

void cli_progress_end(struct cli_progress *p)
{
	if (!p->enabled)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
}
