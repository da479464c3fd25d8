# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The benchmarks' result lines and arithmetic, for the VM benchmarks
# (through tests/bench/lib.sh) and the host ones (sourced directly).
# RESULTS names the file result lines are appended to.

# result NAME VALUE UNIT: one machine-readable result line.
result() {
	echo "bench: $1 $2 $3" | tee -a "${RESULTS:-/dev/null}"
}

# median VALUE...: the median (mean of the middle two for an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '
		{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# field LINE NAME: the value of NAME=... in a key=value line (peersnap-perf's).
field() {
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}
