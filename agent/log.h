/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Logging for peersnapd: stderr while starting (so a failed start is seen on
 * the terminal), syslog once daemonized. A function either logs or returns
 * -errno for its caller to report, not both.
 */
#ifndef PSD_LOG_H
#define PSD_LOG_H

#include <stdbool.h>

enum psd_log_level {
	PSD_LOG_ERR,
	PSD_LOG_WARN,
	PSD_LOG_INFO,
	PSD_LOG_DEBUG,
};

void psd_log_init(const char *ident, bool verbose);
void psd_log_use_syslog(void);
bool psd_log_verbose(void);
void psd_log(enum psd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define psd_err(...)	psd_log(PSD_LOG_ERR, __VA_ARGS__)
#define psd_warn(...)	psd_log(PSD_LOG_WARN, __VA_ARGS__)
#define psd_info(...)	psd_log(PSD_LOG_INFO, __VA_ARGS__)
#define psd_dbg(...)	psd_log(PSD_LOG_DEBUG, __VA_ARGS__)

#endif /* PSD_LOG_H */
