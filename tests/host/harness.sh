#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side test of scripts/vm: what it makes of a guest's outcome. Each
# case boots a VM with a fixture mode of tests/vm/00-harness-selftest.sh
# (whose normal mode, run by scripts/check as a VM test, is the clean case):
#
#   warn       a WARNING in the kernel log   -> status 1, the line printed
#   exit 3     the script exits 3            -> status 3, /out reaches the host
#   hang       VM_TIMEOUT=3                  -> status 124
#   disks      VM_DISKS="a b"                -> /dev/vda is a, /dev/vdb is b
#
# and a batch (scripts/vm batch) whose first script leaves a mounted
# filesystem on a dm device, a RAM disk module, a process and a file in
# /dev behind: the second starts as on a fresh boot.
#
# Run by scripts/check; by hand: tests/host/harness.sh
set -u
top=$(cd "$(dirname "$0")/../.." && pwd -P)
# lib.sh's KTAP helpers work on the host too.
export PEERSNAP_TOP=$top
# shellcheck source=tests/vm/lib.sh
. "$top/tests/vm/lib.sh"

selftest=$top/tests/vm/00-harness-selftest.sh
work=$(host_run_dir harness) || bail_out "cannot make a run directory"

# vm_run NAME ARGS...: scripts/vm run the fixture into $work/NAME; sets
# $status and $output.
vm_run() {
	local name=$1
	shift
	output=$(VM_RUN_DIR=$work/$name "$top/scripts/vm" run "$selftest" "$@" 2>&1)
	status=$?
}

# show_run: the run's output, for a failing case.
show_run() {
	diag "scripts/vm said (status $status):"
	diag "$output"
}

test_warning_fails_run() {
	vm_run warn warn
	assert_eq 1 "$status" "a WARNING in the kernel log fails the run" || show_run
	if grep -q '^# vm: .*WARNING: peersnap harness self-test' <<<"$output"; then
		ok "the offending kernel log line is printed"
	else
		show_run
		not_ok "the offending kernel log line is printed"
	fi
}

test_exit_status() {
	vm_run exit exit 3
	assert_eq 3 "$status" "the script's exit status is the run's" || show_run
	assert_eq "exit 3" "$(cat "$work/exit/exit-fixture" 2>/dev/null)" \
		"a file the guest writes to /out is in the host's run directory"
}

# The VM is killed whatever it is doing (here probably still booting).
test_timeout() {
	VM_TIMEOUT=3 vm_run hang hang
	assert_eq 124 "$status" "VM_TIMEOUT kills the VM with status 124" || show_run
}

test_disks() {
	local a=$work/disk-a.img b=$work/disk-b.img
	printf 'peersnap-disk-a' >"$a" && truncate -s 1M "$a"
	printf 'peersnap-disk-b' >"$b" && truncate -s 1M "$b"
	VM_DISKS="$a $b" vm_run disks disks peersnap-disk-a peersnap-disk-b
	assert_eq 0 "$status" "VM_DISKS files are /dev/vda and /dev/vdb, in order" || show_run
}

# batch_script NAME BODY: an executable script $work/NAME.sh (in the
# project tree, so the guest sees it) that runs BODY after lib.sh.
batch_script() {
	# shellcheck disable=SC2016 # expanded in the guest
	printf '#!/bin/bash\n. "$PEERSNAP_TOP/tests/vm/lib.sh"\n%s\n' "$2" >"$work/$1.sh"
	chmod +x "$work/$1.sh"
}

test_batch_reset() {
	local dir=$work/batch
	# shellcheck disable=SC2016 # the scripts' text, expanded in the guest
	batch_script leave '
ktap_plan 1
modprobe brd rd_nr=1 rd_size=8192 &&
	mkfs.ext4 -q /dev/ram0 &&
	dmsetup create leftover --table "0 16384 linear /dev/ram0 0" &&
	dmsetup mknodes leftover && mkdir -p /mnt/left &&
	mount /dev/mapper/leftover /mnt/left && echo data >/mnt/left/f &&
	echo stray >/dev/stray-file
assert_eq 0 $? "left a mounted filesystem, brd and a file in /dev"
sleep 1000 &
ktap_finish'
	# shellcheck disable=SC2016
	batch_script fresh '
ktap_plan 3
assert_eq "No devices found" "$(dmsetup ls)" "no dm device"
assert_eq "" "$(ls -d /sys/module/brd /dev/stray-file 2>/dev/null)" "no brd, no stray file"
make_brd 1 8
assert_eq $((8 << 20)) "$(blockdev --getsize64 /dev/ram0)" "/dev/ram0 is a fresh RAM disk"
ktap_finish'
	output=$(VM_RUN_DIR=$dir "$top/scripts/vm" batch "$work/leave.sh" "$work/fresh.sh" 2>&1)
	status=$?
	assert_eq "0 0 0" "$status $(cat "$dir/leave/status" 2>/dev/null) $(cat "$dir/fresh/status" 2>/dev/null)" \
		"batch: both scripts pass" || show_run
	if grep -q "left behind: device-mapper devices (leftover) module brd file /dev/stray-file (removed)" \
		"$dir/leave/report.log"; then
		ok "batch: what the first script left is named in its report"
	else
		diag "$(cat "$dir/leave/report.log" 2>/dev/null)"
		not_ok "batch: what the first script left is named in its report"
	fi
}

# A second build with unchanged inputs must reuse the archive.
test_initramfs_cached() {
	local archive before
	archive=$("$top/scripts/mkinitramfs")
	before=$(stat -c %Y.%s "$archive")
	"$top/scripts/mkinitramfs" >/dev/null
	assert_eq "$before" "$(stat -c %Y.%s "$archive")" "the initramfs is cached"
}

ktap_plan 9
diag "runs in $work"
test_initramfs_cached
test_warning_fails_run
test_exit_status
test_timeout
test_disks
test_batch_reset
ktap_finish
