#!/bin/bash
# The module loads and unloads cleanly, registers the target and the
# generic netlink family, refuses to unload while a device uses it, and
# survives being loaded again.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=5555555555555555555555555555555555555555555555555555555555555555

cleanup() {
	dmsetup remove ps >/dev/null 2>&1
	true
}

load_module
make_brd 2 16
expect_success "dmsetup targets lists peersnap v1.0.0" \
	sh -c 'dmsetup targets | grep -Eq "^peersnap +v1\.0\.0$"'
expect_success "the generic netlink family is registered with its events group" \
	sh -c 'genl ctrl get name peersnap | grep -q "name: events"'

ps_create ps 8192 8 $ID
if rmmod dm_peersnap 2>/dev/null; then
	not_ok "rmmod is refused while a device exists"
else
	ok "rmmod is refused while a device exists"
fi
dmsetup remove ps

for round in 1 2; do
	expect_success "unload (round $round)" rmmod dm_peersnap
	expect_success "the target is gone" sh -c '! dmsetup targets | grep -q peersnap'
	expect_success "the family is gone" sh -c '! genl ctrl get name peersnap 2>/dev/null'
	expect_success "load again (round $round)" insmod "$PEERSNAP_KO"
	expect_success "a device works after reloading" ps_create ps 8192 8 $ID
	dmsetup remove ps
done

ktap_finish
