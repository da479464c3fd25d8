#!/bin/bash
# Background fetching: `hydrate` makes every chunk present and stops at
# 100%; `prefetch` fetches exactly its range; demand reads overtake a
# running hydration. The cache device sits behind dm-delay (100 ms per
# write) so that hydration takes long enough to race with.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=9999999999999999999999999999999999999999999999999999999999999999
IMG=/tmp/image

hydration_idle() {
	[ "$(ps_field ps hydration)" = idle ]
}

load_module
make_brd 2 64
make_image $IMG $((32 << 20))
start_agent "$ID=$IMG"
want=$(sha256sum <$IMG)

# 1. hydrate: 512 chunks of 64 KiB, all fetched, then idle.
ps_create ps 65536 128 $ID
dmsetup message ps 0 hydrate
assert_eq hydrating "$(ps_field ps hydration)" "hydrate starts"
wait_for "hydration done" hydration_idle
assert_eq "512/512" "$(ps_field ps present)" "hydrate: every chunk present"
assert_eq 512 "$(ps_field ps fetched)" "hydrate: each fetched once"
assert_eq "$want" "$(dd if=/dev/mapper/ps bs=1M iflag=direct status=none | sha256sum)" \
	"hydrate: the device equals the image"
assert_eq 512 "$(ps_field ps fetched)" "hydrate: reading it all fetches nothing more"
dmsetup remove ps

# 2. prefetch 100 50: exactly that range.
wipe_metadata
ps_create ps 65536 128 $ID
dmsetup message ps 0 prefetch 100 50
wait_for "prefetch done" hydration_idle
assert_eq "50/512" "$(ps_field ps present)" "prefetch 100 50: 50 chunks present"
dd if=/dev/mapper/ps of=/dev/null bs=64k skip=100 count=50 iflag=direct status=none
assert_eq 50 "$(ps_field ps fetched)" "prefetch: chunks 100-149 were those"
dd if=/dev/mapper/ps of=/dev/null bs=64k skip=99 count=1 iflag=direct status=none
assert_eq 51 "$(ps_field ps fetched)" "prefetch: chunk 99 was not"
if dmsetup message ps 0 prefetch 500 13 2>/dev/null; then
	not_ok "prefetch beyond the last chunk is refused"
else
	ok "prefetch beyond the last chunk is refused"
fi
dmsetup remove ps

# 3. demand reads during hydration, on a slow cache device (100 ms per
# write: hydrating 8192 chunks of 4 KiB, 32 at a time, takes about 25 s):
# reads of the last chunks finish while the hydration front is far behind.
wipe_metadata
dm_create slow "0 131072 delay /dev/ram1 0 0 /dev/ram1 0 100"
dmsetup create ps --table "0 65536 peersnap /dev/ram0 /dev/mapper/slow 8 $ID"
dmsetup message ps 0 hydrate
lat=()
for c in 8100 8120 8140 8160 8180; do
	t0=${EPOCHREALTIME/./}
	dd if=/dev/mapper/ps of=/tmp/d bs=4k skip=$c count=1 iflag=direct status=none
	lat+=($(((${EPOCHREALTIME/./} - t0) / 1000)))
	cmp -s -n 4096 -i 0:$((c * 4096)) /tmp/d $IMG || bad=1
done
# One status snapshot: the hydration state and the front, together.
read -r -a status <<<"$(dmsetup status ps)"
present=${status[5]%%/*} hydration=${status[12]}
diag "demand read latency during hydration (ms): ${lat[*]}; present then: $present/8192"
assert_eq "" "${bad:-}" "demand reads during hydration return the image's data"
assert_eq hydrating "$hydration" "demand reads finished while hydration still ran"
[ "$present" -lt 8100 ] && ok "demand reads overtook the hydration front ($present/8192)" ||
	not_ok "demand reads overtook the hydration front ($present/8192)"
dmsetup message ps 0 stop_hydration
wait_for "hydration stopped" hydration_idle
assert_eq idle "$(ps_field ps hydration)" "stop_hydration stops it"
dmsetup remove ps

ktap_finish
