#!/bin/bash
# The metadata device fails under load, mid-commit: dm-flakey turns its
# writes into errors one second in every four while fetches, writes and
# flushes run. The first failed commit turns the metadata read-only (a dm
# event, "ro" in the status, EIO for flushes from then on) while reads go
# on; the device is then re-created on the same, now healthy, metadata:
# it loads, and every block is the image's or written data. Bitmaps that
# cannot be read fail the resume and put the device in "fail" mode, which a
# later resume that can read them leaves.
#
#   /dev/ram0 -> md (dm-flakey error_writes; later linear; later
#                    linear superblock + error) -> peersnap metadata
#   /dev/ram1 -> cache
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=3535353535353535353535353535353535353535353535353535353535353535
IMG=/tmp/image
PATTERN=/tmp/pattern
CHUNKS=256				# of 64 KiB: 16 MiB
SIZE=$((CHUNKS << 16))
MD_SECTORS=131072
BLOCKMATCH=$(private_copy "$PEERSNAP_TOP/build/tools/blockmatch")
TABLE="0 $((SIZE / 512)) peersnap /dev/mapper/md /dev/ram1 128 $ID"
load_pid=

cleanup() {
	stop_load
	stop_agent
	dmsetup remove ps >/dev/null 2>&1
	dmsetup remove md >/dev/null 2>&1
	true
}

md_table() {
	dmsetup suspend md && dmsetup reload md --table "$1" && dmsetup resume md
}

mode() {
	dmsetup status ps | awk '{ print $NF }'
}

mode_is() {
	[ "$(mode)" = "$1" ]
}

# Reads every chunk in turn (fetches: new present bits to commit) while
# writing 16 KiB of the pattern at random places and flushing after each;
# a failed flush is expected once the metadata fails. Bounded: 400 rounds.
load() {
	local i off
	for i in $(seq 0 399); do
		off=$((RANDOM % (SIZE / 16384)))
		dd if=/dev/mapper/ps of=/dev/null bs=64k skip=$((i % CHUNKS)) count=1 \
			iflag=direct status=none
		dd if=$PATTERN of=/dev/mapper/ps bs=16k skip=$off seek=$off count=1 \
			oflag=direct conv=notrunc status=none 2>/dev/null
		sync /dev/mapper/ps 2>/dev/null
	done
}

stop_load() {
	stop_job "$load_pid"
	load_pid=
}

load_module
make_brd 2 64
make_image $IMG $SIZE
make_image $PATTERN $SIZE
start_agent "$ID=$IMG"

# 1. Failures mid-commit.
dm_create md "0 $MD_SECTORS flakey /dev/ram0 0 3 1 1 error_writes"
dmsetup create ps --table "$TABLE" && dmsetup mknodes ps
events=$(dmsetup info -c --noheadings -o events ps)
kmsg_mark
load &
load_pid=$!
if wait_for "metadata read-only" mode_is ro; then
	ok "a commit failed under load: the metadata is read-only"
else
	not_ok "a commit failed under load: the metadata is read-only (mode $(mode))"
fi
stop_load
assert_kmsg 'peersnap: metadata commit failed \(-5\): metadata is now read-only' \
	"the reason is logged"
[ "$(dmsetup info -c --noheadings -o events ps)" -gt "$events" ] &&
	ok "a dm event was raised" || not_ok "a dm event was raised"
md_table "0 $MD_SECTORS linear /dev/ram0 0"
expect_failure "a flush fails with the metadata read-only, even once it heals" \
	sync /dev/mapper/ps
matches=$("$BLOCKMATCH" 4096 /dev/mapper/ps $IMG $PATTERN | grep -v '^#')
assert_eq "0 none" "$(tail -n 1 <<<"$matches")" \
	"read-only: every block reads as the image or written data"
assert_eq 0 "$(ps_field ps failed)" "no fetch failed"
expect_success "the device can be removed" dmsetup remove ps

# 2. The same metadata, healthy again: what was committed loads.
expect_success "re-created on the metadata left by the failed commit" \
	dmsetup create ps --table "$TABLE"
assert_eq rw "$(mode)" "metadata mode rw"
matches=$("$BLOCKMATCH" 4096 /dev/mapper/ps $IMG $PATTERN | grep -v '^#')
assert_eq "0 none" "$(tail -n 1 <<<"$matches")" \
	"every block is the image's or written data"
diag "$(paste -sd' ' <<<"$matches") (blocks: image, pattern, neither)"
expect_success "a flush commits again" sync /dev/mapper/ps
dmsetup remove ps

# 3. Superblock readable, bitmaps not: no table can resume on it. A new
# device is not created; a reloaded one stays suspended in fail mode until
# a resume succeeds.
md_table "0 8 linear /dev/ram0 0
8 $((MD_SECTORS - 8)) error"
kmsg_mark
expect_failure "create on unreadable bitmaps fails" dmsetup create ps --table "$TABLE"
assert_kmsg 'peersnap: cannot read the metadata bitmaps \(-5\)' "the reason is logged"
expect_failure "... and leaves no device behind" dmsetup info ps
md_table "0 $MD_SECTORS linear /dev/ram0 0"
dmsetup create ps --table "$TABLE" && dmsetup mknodes ps
present=$(ps_field ps present)
dmsetup suspend ps
md_table "0 8 linear /dev/ram0 0
8 $((MD_SECTORS - 8)) error"
dmsetup reload ps --table "$TABLE"
expect_failure "reload on unreadable bitmaps: resume fails" dmsetup resume ps
assert_eq fail "$(mode)" "... the device is in fail mode"
md_table "0 $MD_SECTORS linear /dev/ram0 0"
expect_success "once they read again, resume succeeds" dmsetup resume ps
assert_eq rw "$(mode)" "... out of fail mode"
assert_eq "$present" "$(ps_field ps present)" "... with the same chunks present"
matches=$("$BLOCKMATCH" 4096 /dev/mapper/ps $IMG $PATTERN | grep -v '^#')
assert_eq "0 none" "$(tail -n 1 <<<"$matches")" \
	"... and every block the image's or written data"

ktap_finish
