// SPDX-License-Identifier: GPL-2.0
/* Logging: see log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "log.h"

static const char *log_ident = "peersnapd";
static bool log_verbose;
static bool log_syslog;

void psd_log_init(const char *ident, bool verbose)
{
	log_ident = ident;
	log_verbose = verbose;
}

void psd_log_use_syslog(void)
{
	openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = true;
}

bool psd_log_verbose(void)
{
	return log_verbose;
}

void psd_log(enum psd_log_level level, const char *fmt, ...)
{
	static const int prio[] = {
		[PSD_LOG_ERR] = LOG_ERR,
		[PSD_LOG_WARN] = LOG_WARNING,
		[PSD_LOG_INFO] = LOG_INFO,
		[PSD_LOG_DEBUG] = LOG_DEBUG,
	};
	va_list ap;

	if (level == PSD_LOG_DEBUG && !log_verbose)
		return;
	va_start(ap, fmt);
	if (log_syslog) {
		vsyslog(prio[level], fmt, ap);
	} else {
		fprintf(stderr, "%s: ", log_ident);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}
