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

# The fuzzers run as many at a time as there are CPUs (each is bound by
# time, not work, and keeps one CPU busy), then report in order.
run_fuzzer()
{
	name=$(basename "$1")
	mkdir -p "$tmp/$name"
	"$1" -max_total_time="$seconds" -artifact_prefix="$tmp/$name-" \
		"$tmp/$name" "$corpora/${name#fuzz_}" >"$tmp/$name.log" 2>&1
	echo $? >"$tmp/$name.rc"
}

cpus=$(nproc)
running=0
for f in $fuzzers; do
	run_fuzzer "$f" &
	running=$((running + 1))
	if [ "$running" -ge "$cpus" ]; then
		wait
		running=0
	fi
done
wait

n=0
for f in $fuzzers; do
	n=$((n + 1))
	name=$(basename "$f")
	echo "# ---- $name for ${seconds}s"
	if [ "$(cat "$tmp/$name.rc")" = 0 ]; then
		runs=$(grep -o 'Done [0-9]* runs' "$tmp/$name.log" | tail -n 1)
		echo "ok $n $name # $runs"
		pass=$((pass + 1))
	else
		tail -n 40 "$tmp/$name.log"
		echo "not ok $n $name"
		fail=$((fail + 1))
	fi
done

echo "unit: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
