#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs the unit test binaries (printing their KTAP output), then each
# libFuzzer target for a bounded time, and ends with one summary line:
#   unit: N passed, N failed, N skipped
# Usage: run-tests.sh TEST... -- [FUZZER...] -- SECONDS
# Exit status: 0 if nothing failed.
set -u

pass=0 fail=0 skip=0

tests=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do tests="$tests $1"; shift; done
shift
fuzzers=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do fuzzers="$fuzzers $1"; shift; done
shift
seconds=${1:-20}

here=$(cd "$(dirname "$0")" && pwd)
corpora=$here/../fuzz/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Adds a binary's "# Totals: pass:P fail:F xfail:X xpass:Y skip:S error:E".
count_totals()
{
	totals=$(sed -n 's/^# Totals: pass:\([0-9]*\) fail:\([0-9]*\) xfail:\([0-9]*\) xpass:\([0-9]*\) skip:\([0-9]*\) error:\([0-9]*\).*/\1 \2 \3 \4 \5 \6/p' "$1" | tail -n 1)
	if [ -z "$totals" ]; then
		fail=$((fail + 1))	# crashed before its summary
		return
	fi
	set -- $totals
	pass=$((pass + $1 + $3))
	fail=$((fail + $2 + $4 + $6))
	skip=$((skip + $5))
}

for t in $tests; do
	echo "# ---- $t"
	"$t" >"$tmp/out" 2>&1
	rc=$?
	cat "$tmp/out"
	count_totals "$tmp/out"
	if [ $rc -ne 0 ] && [ $rc -ne 4 ] && ! grep -q '^# Totals:.*fail:[1-9]' "$tmp/out"; then
		echo "# $t exited $rc"
		fail=$((fail + 1))
	fi
done

n=0
for f in $fuzzers; do
	n=$((n + 1))
	name=$(basename "$f")
	mkdir -p "$tmp/$name"
	echo "# ---- $name for ${seconds}s"
	if "$f" -max_total_time="$seconds" -artifact_prefix="$tmp/" \
		"$tmp/$name" "$corpora/${name#fuzz_}" >"$tmp/fuzz.log" 2>&1; then
		runs=$(grep -o 'Done [0-9]* runs' "$tmp/fuzz.log" | tail -n 1)
		echo "ok $n $name # $runs"
		pass=$((pass + 1))
	else
		tail -n 40 "$tmp/fuzz.log"
		echo "not ok $n $name"
		fail=$((fail + 1))
	fi
done

echo "unit: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
