/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A one-line progress bar on stderr for long work (publish hashing, pull,
 * hydrate): percentage, bytes done of total, rate and ETA. Drawn only when
 * stderr is a terminal, at most ten times a second; the formatting is
 * pure so the unit tests check it.
 */
#ifndef PSC_PROGRESS_H
#define PSC_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_PROGRESS_LINE	96

struct cli_progress {
	const char *label;
	uint64_t total;		/* bytes */
	double start;		/* monotonic seconds */
	double last_draw;
	bool enabled;
};

/* "1023 B", "1.5 KiB", "12.0 MiB", "3.25 GiB" (three significant digits). */
void cli_format_bytes(char *buf, size_t cap, double bytes);

/* "0:07", "12:34", "1:02:03"; "--:--" for an unknown or absurd time. */
void cli_format_eta(char *buf, size_t cap, double seconds);

/*
 * The bar's text: "LABEL  42%  1.00 GiB/2.38 GiB  512 MiB/s  ETA 0:03".
 * elapsed <= 0 or done 0: no rate, ETA "--:--".
 */
void cli_progress_format(char *buf, size_t cap, const char *label,
			 uint64_t done, uint64_t total, double elapsed);

/* Starts a bar (enabled only if stderr is a terminal). */
void cli_progress_start(struct cli_progress *p, const char *label,
			uint64_t total);
void cli_progress_update(struct cli_progress *p, uint64_t done);
/* Erases the bar (the caller prints the result). */
void cli_progress_end(struct cli_progress *p);

double cli_now(void);

#endif /* PSC_PROGRESS_H */
