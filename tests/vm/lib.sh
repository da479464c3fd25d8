# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Helpers for the VM tests (tests/vm/NN-*.sh), which scripts/check runs one
# per VM boot with `scripts/vm run` (on the debug kernel, several per boot
# with `scripts/vm batch`, each in a fresh root). Source it first:
#
#	#!/bin/bash
#	. "$(dirname "$0")/lib.sh"
#	ktap_plan 2
#	load_module                       # dm-mod + dm-peersnap.ko, unloaded at exit
#	make_brd 2 64                     # /dev/ram0, /dev/ram1: 64 MiB each
#	cleanup() { ...; }                # optional, runs first at exit
#	kmsg_mark
#	dm_create_fails x "0 8 peersnap ..." && ok "bad table refused"
#	assert_kmsg 'peersnap: Invalid chunk size' "reason is logged"
#	ktap_finish
#
# Output is KTAP: `ok N - what`, `not ok N - what`, `ok N - what # SKIP why`,
# diagnostics as `# ...` lines. ktap_finish exits 0 if nothing failed, 1 if
# something did, 4 (skipped) if every test was skipped.
#
# Cleanup: do not set an EXIT trap. Define cleanup() and/or register
# commands with `defer CMD ARGS...`; at exit (normal, error or signal)
# cleanup() runs, then the deferred commands, newest first. A deferred
# command that fails (rmmod of a module still in use: a reference leak) turns
# a passing run into a failure. Helpers that defer take the name of a
# variable to set instead of printing a result, because $(...) would run them
# in a subshell and lose the defer.

if [ -z "${PEERSNAP_TOP:-}" ]; then
	echo "Bail out! PEERSNAP_TOP is not set: run this with scripts/vm run $0" >&2
	exit 1
fi

_ktap_started=0
_ktap_finished=0
_ktap_plan=
_ktap_n=0
_ktap_pass=0
_ktap_fail=0
_ktap_skip=0
_lib_deferred=()
_kmsg_mark=
_kmsg_marks=0

# The helpers on the tests' hot paths (polls, kernel log checks, status
# fields) start as few programs as they can, and those static: on the
# debug kernel a dynamically linked program takes about 0.5 s to start
# (each mapping of each library allocates, and KASAN and kmemleak record a
# stack trace per allocation), busybox about 0.15 s, a shell builtin
# nothing. docs/testing.md has the profile.

# ---- KTAP output -----------------------------------------------------------

_ktap_header() {
	[ "$_ktap_started" = 1 ] && return
	_ktap_started=1
	echo "KTAP version 1"
}

# ktap_plan N: announce N tests (optional: without it the plan is printed
# by ktap_finish).
ktap_plan() {
	_ktap_header
	_ktap_plan=$1
	echo "1..$1"
}

# diag TEXT...: a diagnostic line (several if TEXT has newlines).
diag() {
	local line
	while IFS= read -r line; do
		echo "# $line"
	done <<<"$*"
}

_ktap_result() {
	_ktap_header
	_ktap_n=$((_ktap_n + 1))
	echo "$1 $_ktap_n - $2"
}

ok() {
	_ktap_pass=$((_ktap_pass + 1))
	_ktap_result ok "$*"
}

not_ok() {
	_ktap_fail=$((_ktap_fail + 1))
	_ktap_result "not ok" "$*"
}

# skip DESC [REASON]
skip() {
	_ktap_skip=$((_ktap_skip + 1))
	_ktap_result ok "$1 # SKIP${2:+ $2}"
}

# assert_eq EXPECTED ACTUAL DESC...
assert_eq() {
	local expected=$1 actual=$2
	shift 2
	if [ "$expected" = "$actual" ]; then
		ok "$*"
		return 0
	fi
	diag "expected: $expected"
	diag "actual:   $actual"
	not_ok "$*"
	return 1
}

# expect_success DESC CMD ARGS...: ok if CMD succeeds; else its output is
# shown.
expect_success() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$desc"
		return 0
	fi
	diag "command failed: $*"
	diag "$out"
	not_ok "$desc"
	return 1
}

# expect_failure DESC CMD ARGS...: ok if CMD fails.
expect_failure() {
	local desc=$1 out
	shift
	if ! out=$("$@" 2>&1); then
		ok "$desc"
		return 0
	fi
	diag "command succeeded unexpectedly: $*"
	diag "$out"
	not_ok "$desc"
	return 1
}

# ktap_finish: totals, then exit 0 (all passed), 1 (a failure, or not as
# many tests as planned) or 4 (everything skipped).
ktap_finish() {
	_ktap_header
	[ -n "$_ktap_plan" ] || echo "1..$_ktap_n"
	if [ -n "$_ktap_plan" ] && [ "$_ktap_plan" != "$_ktap_n" ]; then
		diag "planned $_ktap_plan tests but ran $_ktap_n"
		_ktap_fail=$((_ktap_fail + 1))
	fi
	echo "# Totals: pass:$_ktap_pass fail:$_ktap_fail skip:$_ktap_skip"
	_ktap_finished=1
	[ "$_ktap_fail" = 0 ] || exit 1
	[ "$_ktap_pass" = 0 ] && [ "$_ktap_skip" -gt 0 ] && exit 4
	exit 0
}

# ktap_skip_all REASON: the whole test cannot run here (exit 4).
ktap_skip_all() {
	_ktap_header
	echo "1..0 # SKIP $*"
	_ktap_finished=1
	exit 4
}

# bail_out REASON: stop now; the test fails.
bail_out() {
	echo "Bail out! $*"
	_ktap_finished=1
	exit 1
}

# require_cmd CMD...: skip the whole test if a tool is missing.
require_cmd() {
	local cmd
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null || ktap_skip_all "$cmd is not installed"
	done
}

# host_run_dir NAME: a new directory build/vm-runs/NAME-<time>-XXXX for a
# host-side test that drives VMs (its disks, and one run directory per boot).
host_run_dir() {
	mkdir -p "$PEERSNAP_TOP/build/vm-runs" &&
		mktemp -d "$PEERSNAP_TOP/build/vm-runs/$1-$(date +%Y%m%d-%H%M%S)-XXXX"
}

# nap SECONDS: sleep without starting a process (a read that times out on
# a pipe that this shell holds open for writing, so no byte ever comes).
exec {_nap_fd}<> <(:)
nap() {
	read -r -t "$1" -u "$_nap_fd" _
	return 0
}

# ---- cleanup ---------------------------------------------------------------

# defer CMD ARGS...: run CMD at exit (newest first).
defer() {
	_lib_deferred+=("$(printf '%q ' "$@")")
}

_lib_exit() {
	local status=$? failed=0 i
	set +e
	if declare -F cleanup >/dev/null; then
		cleanup || { diag "cleanup failed"; failed=1; }
	fi
	for ((i = ${#_lib_deferred[@]} - 1; i >= 0; i--)); do
		eval "${_lib_deferred[i]}" || { diag "cleanup failed: ${_lib_deferred[i]}"; failed=1; }
	done
	if [ "$_ktap_started" = 1 ] && [ "$_ktap_finished" = 0 ]; then
		diag "exited (status $status) before ktap_finish"
		[ "$status" = 0 ] && status=1
	fi
	if [ "$failed" = 1 ] && { [ "$status" = 0 ] || [ "$status" = 4 ]; }; then
		status=1
	fi
	exit "$status"
}
trap _lib_exit EXIT
# A signal ends the test through the EXIT trap, with the shell's status.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the module ------------------------------------------------------------

# scripts/vm sets it to its copy of the module for the kernel it boots
# (Debian's or the debug kernel's build).
PEERSNAP_KO=${PEERSNAP_KO:-$PEERSNAP_TOP/dm-peersnap.ko}

# load_module: dm-mod and whatever else dm-peersnap.ko depends on, then the
# module itself; unloaded again at exit (see unload_module).
load_module() {
	local dep
	[ -f "$PEERSNAP_KO" ] || bail_out "no $PEERSNAP_KO (run make)"
	for dep in dm-mod $(modinfo -F depends "$PEERSNAP_KO" | tr ',' ' '); do
		modprobe "$dep" || bail_out "cannot load $dep"
	done
	if [ ! -d /sys/module/dm_peersnap ]; then
		insmod "$PEERSNAP_KO" || bail_out "insmod $PEERSNAP_KO failed"
	fi
	defer unload_module
}

# unload_module: rmmod dm_peersnap (fails if anything still holds it). On
# the debug kernel, the VM scans for leaks after the test (scripts/vm-init).
unload_module() {
	[ -d /sys/module/dm_peersnap ] || return 0
	rmmod dm_peersnap
}

# ---- block devices ---------------------------------------------------------

# make_brd COUNT SIZE_MIB: (re)load brd with COUNT zeroed RAM disks,
# /dev/ram0 ... /dev/ram<COUNT-1>, removed at exit.
make_brd() {
	rmmod brd 2>/dev/null
	modprobe brd rd_nr="$1" rd_size=$(($2 * 1024)) || bail_out "cannot load brd"
	defer rmmod brd
}

# make_loop VAR SIZE_MIB: a loop device over a sparse file in /tmp (guest
# RAM); its path is stored in VAR. Detached at exit. (The locals have odd
# names so that they cannot hide the caller's VAR.)
make_loop() {
	local _ml_file _ml_dev
	# No udev here to load loop when /dev/loop-control is first needed.
	modprobe loop || bail_out "cannot load loop"
	mkdir -p /tmp/peersnap-test
	_ml_file=$(mktemp /tmp/peersnap-test/loop.XXXXXX)
	truncate -s "$2M" "$_ml_file"
	_ml_dev=$(losetup --find --show "$_ml_file") || bail_out "losetup failed"
	defer losetup -d "$_ml_dev"
	printf -v "$1" '%s' "$_ml_dev"
}

# ---- device-mapper ---------------------------------------------------------

# dm_create NAME TABLE [DMSETUP_CREATE_OPTIONS...]: create /dev/mapper/NAME
# (no udev here: dmsetup mknodes makes the node); removed at exit.
dm_create() {
	local name=$1 table=$2
	shift 2
	dmsetup create "$name" --table "$table" "$@" || return 1
	dmsetup mknodes "$name"
	defer dm_remove "$name"
}

# dm_create_fails NAME TABLE: true if the table is refused (and removes the
# device if it was not).
dm_create_fails() {
	if dmsetup create "$1" --table "$2" 2>/dev/null; then
		dmsetup remove "$1"
		return 1
	fi
	return 0
}

# dm_remove NAME: remove the device if it still exists.
dm_remove() {
	dmsetup info "$1" >/dev/null 2>&1 || return 0
	dmsetup remove --retry "$1"
}

# ---- kernel log ------------------------------------------------------------

# kmsg_mark: remember this point of the kernel log (writes a unique marker;
# scripts/vm turns off /dev/kmsg rate limiting so none is lost).
kmsg_mark() {
	_kmsg_marks=$((_kmsg_marks + 1))
	# $SRANDOM: marks stay unique when several tests share a boot (a
	# debug-lane batch) and a PID comes round again.
	_kmsg_mark="peersnap-test: mark $$.$_kmsg_marks.$SRANDOM"
	echo "$_kmsg_mark" >/dev/kmsg
}

# kmsg_since_mark: the kernel log lines after the last kmsg_mark, without
# timestamps, e.g. "device-mapper: table: 254:0: peersnap: <ti->error>".
# (busybox reads the whole log buffer, as dmesg does, and prints each line
# as "[seconds] text".)
kmsg_since_mark() {
	[ -n "$_kmsg_mark" ] || bail_out "kmsg_since_mark without kmsg_mark"
	busybox dmesg | busybox awk -v mark="$_kmsg_mark" '
		seen { sub(/^\[[^]]*\] /, ""); print }
		index($0, mark) { seen = 1 }'
}

# assert_kmsg REGEX DESC...: ok if a kernel log line since the mark matches
# the extended regular expression.
assert_kmsg() {
	local re=$1 lines
	shift
	lines=$(kmsg_since_mark)
	if busybox grep -E -q -- "$re" <<<"$lines"; then
		ok "$*"
		return 0
	fi
	diag "no kernel log line matches: $re"
	diag "kernel log since the mark:"
	diag "${lines:-(nothing)}"
	not_ok "$*"
	return 1
}
