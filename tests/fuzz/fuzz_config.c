// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the peersnapd INI parser on arbitrary bytes. Every
 * input must end in a parsed config or in an error message that names
 * the file, without crashing, leaking or reading out of bounds.
 * Built and run by tests/unit's "make run" when clang is present.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct psd_config cfg;
	char err[512];

	if (size > PSD_CONFIG_MAX_FILE)
		return 0;
	err[0] = '\0';
	if (psd_config_parse((const char *)data, size, "fuzz.conf", &cfg, err,
			     sizeof(err)) == 0) {
		if (!cfg.listen || !cfg.state_dir || !cfg.control_socket ||
		    cfg.port == 0 || cfg.max_inflight == 0)
			abort();
		psd_config_free(&cfg);
	} else if (strncmp(err, "fuzz.conf:", 10)) {
		abort();
	}
	return 0;
}
