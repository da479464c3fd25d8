#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The VM harness itself: the guest environment the other tests rely on
# (project at the same path, writable root, /out, dm-mod, brd, loop,
# dmsetup without udev, the kernel log helpers) and lib.sh's KTAP helpers.
#
# With an argument it is a fixture for tests/host/harness.sh, which checks
# what scripts/vm makes of a run from the host side:
#   warn          write a WARNING line to the kernel log, then pass
#   exit N        leave /out/exit-fixture, then exit N
#   hang          never finish (VM_TIMEOUT)
#   disks A B     /dev/vda starts with text A and /dev/vdb with text B
# shellcheck source=tests/vm/lib.sh
. "$(dirname "$0")/lib.sh"

fixture() {
	case $1 in
	warn)
		echo "WARNING: peersnap harness self-test" >/dev/kmsg
		exit 0
		;;
	exit)
		echo "exit $2" >/out/exit-fixture
		exit "$2"
		;;
	hang)
		sleep infinity
		;;
	disks)
		ktap_plan 2
		assert_eq "$2" "$(head -c ${#2} /dev/vda)" "/dev/vda is the first VM_DISKS file"
		assert_eq "$3" "$(head -c ${#3} /dev/vdb)" "/dev/vdb is the second VM_DISKS file"
		ktap_finish
		;;
	esac
	bail_out "unknown fixture: $*"
}

test_environment() {
	assert_eq "$PEERSNAP_TOP" "$(pwd)" "cwd is the project root"
	assert_eq "$(cd "$(dirname "$0")/../.." && pwd)" "$PEERSNAP_TOP" "PEERSNAP_TOP is this tree"
	assert_eq 1 "${DM_DISABLE_UDEV:-}" "DM_DISABLE_UDEV is exported"
	expect_success "the root is writable (RAM overlay)" touch /usr/.peersnap-overlay-test
	expect_success "/out is writable" sh -c 'echo ok >/out/selftest'
	expect_success "/tmp is writable (overlay)" sh -c 'echo x >/tmp/.selftest && rm /tmp/.selftest'
}

test_ktap_helpers() {
	local out
	out=$(
		_ktap_n=0
		ok "inner" >/dev/null
		assert_eq a b "inner mismatch"
	)
	if grep -q '^# expected: a$' <<<"$out" && grep -q '^# actual:   b$' <<<"$out" &&
		grep -q '^not ok 2 - inner mismatch$' <<<"$out"; then
		ok "assert_eq reports expected and actual"
	else
		diag "$out"
		not_ok "assert_eq reports expected and actual"
	fi
	expect_failure "expect_failure sees a failing command" false
}

test_dm_linear_on_brd() {
	local sum_ram sum_dm
	modprobe dm-mod
	expect_success "dm-mod loads and lists its targets" sh -c 'dmsetup targets | grep -q "^linear "'
	make_brd 1 64
	dd if=/dev/urandom of=/dev/ram0 bs=4k count=256 status=none
	if ! dm_create selftest-linear "0 2048 linear /dev/ram0 0"; then
		not_ok "dmsetup create linear over brd"
		return
	fi
	ok "dmsetup create linear over brd"
	assert_eq "/dev/mapper/selftest-linear" "$(ls /dev/mapper/selftest-linear)" "dmsetup mknodes made the node"
	sum_ram=$(head -c 1M /dev/ram0 | md5sum)
	sum_dm=$(dd if=/dev/mapper/selftest-linear bs=4k count=256 status=none | md5sum)
	assert_eq "$sum_ram" "$sum_dm" "data reads back through dm-linear"
	expect_success "dmsetup remove" dm_remove selftest-linear
}

test_kmsg_helpers() {
	kmsg_mark
	if dm_create_fails selftest-bad "0 8 linear /dev/peersnap-no-such-dev 0"; then
		ok "a bad table is refused"
	else
		not_ok "a bad table is refused"
	fi
	assert_kmsg '^device-mapper: table: [0-9]+:[0-9]+: linear: ' "its ti->error is in the kernel log after the mark"
	kmsg_mark
	assert_eq "" "$(kmsg_since_mark | grep 'linear: ')" "a new mark hides older lines"
}

test_loop() {
	local dev
	make_loop dev 16
	assert_eq $((16 << 20)) "$(blockdev --getsize64 "$dev")" "make_loop gives a 16 MiB device"
}

main() {
	[ $# -eq 0 ] || fixture "$@"
	ktap_plan 17
	test_environment
	test_ktap_helpers
	test_dm_linear_on_brd
	test_kmsg_helpers
	test_loop
	ktap_finish
}

main "$@"
