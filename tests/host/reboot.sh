#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Persistence across a machine reset: one VM fetches chunks and is reset
# without a clean shutdown (sysrq b) after some were committed and some not;
# a second VM boots on the same metadata and cache disks and checks that
# committed chunks are not fetched again, uncommitted ones are, and the
# device never returns anything but the image.
#
#   build/vm-runs/reboot-*/md.img    -> /dev/vda (metadata, 16 MiB)
#   build/vm-runs/reboot-*/cache.img -> /dev/vdb (cache, 16 MiB)
#   build/vm-runs/reboot-*/image     origin image, read by the guest over 9p
set -u
top=$(cd "$(dirname "$0")/../.." && pwd -P)
export PEERSNAP_TOP=$top
. "$top/tests/vm/lib.sh"

work=$(host_run_dir reboot) || bail_out "cannot make a run directory"
truncate -s 16M "$work/md.img" "$work/cache.img"
head -c $((16 << 20)) /dev/urandom >"$work/image"

export VM_DISKS="$work/md.img $work/cache.img" PEERSNAP_IMAGE=$work/image
fixture=$top/tests/vm/fixtures/reboot.sh

out=$(VM_RUN_DIR=$work/crash VM_TIMEOUT=300 "$top/scripts/vm" run "$fixture" crash 2>&1)
fetched=$(cat "$work/crash/fetched-before-reset" 2>/dev/null)
if [ "$fetched" = 100 ] && ! grep -q "^not ok" <<<"$out"; then
	ok "first boot: fetched 100 chunks, reset before the last commit"
else
	diag "$out"
	not_ok "first boot: fetched ${fetched:-?} chunks (want 100) before the reset"
fi

out=$(VM_RUN_DIR=$work/verify VM_TIMEOUT=300 "$top/scripts/vm" run "$fixture" verify 2>&1)
status=$?
diag "$(grep -E '^(ok|not ok|#)' <<<"$out")"
assert_eq 0 "$status" "second boot: committed chunks kept, the rest refetched, data intact"
ktap_finish
