#!/bin/bash
# A metadata device that starts failing writes: the next commit fails, the
# metadata turns read-only (status "ro"), a dm event is raised, the flush
# that needed the commit fails with EIO, and reads keep returning the
# image's data. No oops, no hang.
#
#   /dev/ram0 -> md (dm-linear, later an "error" table) -> peersnap metadata
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=3232323232323232323232323232323232323232323232323232323232323232
IMG=/tmp/image

cleanup() {
	stop_agent
	dmsetup remove ps >/dev/null 2>&1
	dmsetup remove md >/dev/null 2>&1
	true
}

event_nr() {
	dmsetup info -c --noheadings -o events ps
}

load_module
make_brd 2 64
make_image $IMG $((8 << 20))
start_agent "$ID=$IMG"
dm_create md "0 131072 linear /dev/ram0 0"
dmsetup create ps --table "0 16384 peersnap /dev/mapper/md /dev/ram1 128 $ID"
dd if=/dev/mapper/ps of=/dev/null bs=64k count=10 iflag=direct status=none
expect_success "a flush commits while the metadata device works" sync /dev/mapper/ps
assert_eq rw "$(dmsetup status ps | awk '{print $NF}')" "metadata mode rw"

# From now on every write to the metadata device fails.
dmsetup suspend md
dmsetup reload md --table "0 131072 error"
dmsetup resume md
events=$(event_nr)
dd if=/dev/mapper/ps of=/dev/null bs=64k skip=20 count=1 iflag=direct status=none
expect_failure "a flush that needs a commit fails" sync /dev/mapper/ps
assert_eq ro "$(dmsetup status ps | awk '{print $NF}')" "metadata mode is now ro"
[ "$(event_nr)" -gt "$events" ] && ok "a dm event was raised" ||
	not_ok "a dm event was raised"
expect_failure "later flushes fail too (nothing can be made durable)" sync /dev/mapper/ps
assert_eq "$(dd if=$IMG bs=64k count=21 status=none | sha256sum)" \
	"$(dd if=/dev/mapper/ps bs=64k count=21 iflag=direct status=none | sha256sum)" \
	"reads still return the image's data"
expect_success "the device can be removed" dmsetup remove ps

ktap_finish
