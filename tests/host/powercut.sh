#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Power cuts in the middle of writes: QEMU is killed (SIGKILL, no shutdown,
# no sync) while fio writes with O_SYNC and a second writer writes and
# flushes; the next boot re-creates the device on the same disks and checks
# that every write fio saw acknowledged is intact and that every other
# block is the image's or written data. Three cuts at different points
# (seconds into the workload; two on the debug kernel), each boot
# verifying the cut before it:
#
#   boot 1: write round 1, cut     boot 3: verify 2, write round 3, cut
#   boot 2: verify 1, write 2, cut boot 4: verify 3
#
# The guest side is tests/vm/fixtures/powercut.sh. Disks (host files):
#   md.img    -> /dev/vda (metadata)    cache.img -> /dev/vdb (cache)
#   image     the origin image          pattern   the second writer's data
#
# What a SIGKILL of QEMU loses is what the guest kernel had not yet handed
# to the virtual disks; data QEMU had written to the host files stays (the
# host page cache survives). docs/testing.md says what that covers.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd -P)
export PEERSNAP_TOP=$top
. "$top/tests/vm/lib.sh"

CUTS="2 5 10"				# seconds into each round's workload
# On the debug kernel (the debug lane) two cuts, early and late: each of
# its boots costs about four of Debian's.
[ "${KERNEL:-}" != debug ] || CUTS="2 10"
SIZE=$((64 << 20))

work=$(host_run_dir powercut) || bail_out "cannot make a run directory"
truncate -s 16M "$work/md.img"
truncate -s $SIZE "$work/cache.img"
head -c $SIZE /dev/urandom >"$work/image"
head -c $SIZE /dev/urandom >"$work/pattern"
export VM_DISKS="$work/md.img $work/cache.img"
export PEERSNAP_IMAGE=$work/image PEERSNAP_PATTERN=$work/pattern
fixture=$top/tests/vm/fixtures/powercut.sh

# qemu_of DIR: the pid of the QEMU whose run directory is DIR (not of the
# timeout(1) that runs it, whose command line holds QEMU's).
qemu_of() {
	pgrep -f -- "^qemu-system-[^ ]* .*$1/kernel.log"
}

# cut_when_ready DIR: kills DIR's QEMU once the guest asks for the cut
# (/out/cut-now). Bounded by the boot: boot() stops it when the VM ends.
cut_when_ready() {
	local pid
	while :; do
		if [ -e "$1/cut-now" ]; then
			pid=$(qemu_of "$1")
			[ -n "$pid" ] && kill -KILL "$pid"
			return 0
		fi
		sleep 0.1
	done
}

# boot NAME STEPS...: one boot running the fixture's steps in $work/NAME;
# prints its KTAP lines as diagnostics and fails on a `not ok` or, for a
# boot that is not cut, a non-zero status.
boot() {
	local name=$1 dir=$work/$1 out status cutter=
	shift
	mkdir -p "$dir"
	if [[ " $* " = *" write "* ]]; then
		cut_when_ready "$dir" &
		cutter=$!
	fi
	out=$(VM_RUN_DIR=$dir VM_TIMEOUT=400 "$top/scripts/vm" run "$fixture" "$@" 2>&1)
	status=$?
	# A guest that failed before the cut leaves the cutter waiting.
	[ -n "$cutter" ] && kill "$cutter" 2>/dev/null && wait "$cutter" 2>/dev/null
	diag "$(grep -E '^(ok|not ok|#)' <<<"$out")"
	if grep -q '^not ok' <<<"$out"; then
		return 1
	fi
	if [ -n "$cutter" ]; then
		# A killed run ends as a timeout; scripts/vm still scans the
		# kernel log up to the cut and says so if it found a report.
		! grep -q '^# vm: kernel log .* has:' <<<"$out" &&
			[ -e "$dir/cut-now" ] && [ -s "$dir/local-cut-0-verify.state" ]
	else
		[ "$status" = 0 ]
	fi
}

round=1
prev=
for seconds in $CUTS; do
	if boot "boot$round" ${prev:+verify "$prev"} write $round "$seconds"; then
		ok "boot $round: ${prev:+round $((round - 1)) verified, }cut $seconds s into round $round"
	else
		not_ok "boot $round: ${prev:+round $((round - 1)) verified, }cut $seconds s into round $round"
	fi
	prev=$work/boot$round
	round=$((round + 1))
done
if boot "boot$round" verify "$prev"; then
	ok "boot $round: round $((round - 1)) verified"
else
	not_ok "boot $round: round $((round - 1)) verified"
fi
ktap_finish
