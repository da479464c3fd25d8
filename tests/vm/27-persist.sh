#!/bin/bash
# Fetched chunks outlive the device: remove and re-create it (and reload
# it) and nothing read before is fetched again; the bitmap on the metadata
# device says exactly which chunks are present.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=8888888888888888888888888888888888888888888888888888888888888888
IMG=/tmp/image

load_module
make_brd 2 64
make_image $IMG $((16 << 20))
start_agent "$ID=$IMG"

# 256 chunks of 64 KiB; read chunks 10-59.
ps_create ps 32768 128 $ID
dd if=/dev/mapper/ps of=/dev/null bs=64k skip=10 count=50 iflag=direct status=none
assert_eq 50 "$(ps_field ps fetched)" "50 chunks fetched"
dmsetup remove ps

ps_create ps 32768 128 $ID
assert_eq "50/256" "$(ps_field ps present)" "re-created: the 50 chunks are present"
assert_eq "$(dd if=$IMG bs=64k skip=10 count=50 status=none | sha256sum)" \
	"$(dd if=/dev/mapper/ps bs=64k skip=10 count=50 iflag=direct status=none | sha256sum)" \
	"re-created: they read as the image"
assert_eq 0 "$(ps_field ps fetched)" "re-created: without fetching them again"

# The on-disk present bitmap (block 1 of the metadata device) has exactly
# bits 10-59: byte 1 = bits 8-15 (fc), bytes 2-6 all set, byte 7 = 0f.
dmsetup suspend ps
bitmap=$(dd if=/dev/ram0 bs=4096 skip=1 count=1 status=none | od -An -tx1 -N9 | tr -d ' \n')
dmsetup resume ps
assert_eq "00fcffffffffff0f00" "$bitmap" "on-disk present bitmap holds chunks 10-59"

# A reload (new table, same metadata) keeps them too.
dmsetup reload ps --table "0 32768 peersnap /dev/ram0 /dev/ram1 128 $ID 1 fail_if_no_agent"
dmsetup resume ps
assert_eq "50/256" "$(ps_field ps present)" "reloaded: the 50 chunks are present"
dd if=/dev/mapper/ps of=/dev/null bs=64k skip=10 count=51 iflag=direct status=none
assert_eq 1 "$(ps_field ps fetched)" "reloaded: reading 51 chunks fetches only the new one"

ktap_finish
