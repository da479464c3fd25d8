#!/bin/bash
# Snapshots as signed manifests, end to end through the `peersnap` CLI:
# publish an ext4 image, attach it by id, read files lazily, pull it,
# hydrate it; a chunk corrupted in the origin file fails its read with
# EIO instead of returning wrong data; version 2 with 1% of its chunks
# changed, attached on the cache device that holds version 1, copies
# exactly the changed chunks; `commit` of a written volume publishes a
# snapshot whose pull equals the device.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

CONF=/tmp/peersnap.conf
IMG=/tmp/image.ext4
MNT=/mnt/ps
CHUNK=65536
# The image (MIB), the random data in it (FILL_MIB), version 2's changed
# chunks (1 %) and the volume's written 4 KiB blocks (the last one too).
# On the debug kernel, where every fetch and hash is several times slower,
# half the image takes the same paths.
if [ -z "${PEERSNAP_DEBUG_KERNEL:-}" ]; then
	MIB=48 FILL_MIB=20
	CHANGED="7 100 222 333 444 555 666 767"
	WRITTEN="3 700 2000 9000 12287"
else
	MIB=24 FILL_MIB=8
	CHANGED="7 50 111 166 222 277 333 383"
	WRITTEN="3 700 2000 4500 6143"
fi
CHUNKS=$((MIB * 1048576 / CHUNK))
PEERSNAP=$(private_copy "${PEERSNAP_CLI:-$PEERSNAP_TOP/agent/peersnap}")

cleanup() {
	umount $MNT 2>/dev/null
	stop_agent
	dmsetup remove_all >/dev/null 2>&1
	true
}

psn() {
	"$PEERSNAP" --config $CONF "$@"
}

# counter NAME: one of the agent's counters.
counter() {
	agent_counter "$1" psn
}

# change_chunks FILE CHUNK...: new random bytes in 4 KiB of each chunk.
change_chunks() {
	local f=$1 c
	shift
	for c in "$@"; do
		dd if=/dev/urandom of="$f" bs=4096 seek=$((c * CHUNK / 4096 + 3)) \
			count=1 conv=notrunc status=none
	done
}

load_module
make_brd 4 64
mkdir -p /tmp/src $MNT
cp -r /usr/include/linux /tmp/src/include
# Random data too, so that not most chunks are all zeros.
head -c $((FILL_MIB << 20)) /dev/urandom >/tmp/src/fill
(cd /tmp/src && find . -type f -print0 | xargs -0 sha256sum) >/tmp/src.sums
mkfs.ext4 -q -F -b 4096 -d /tmp/src $IMG ${MIB}M || bail_out "mkfs.ext4 failed"

cat >$CONF <<EOF
[agent]
state_dir = /run/peersnapd
EOF
mkdir -p /run/peersnapd
expect_success "keygen" psn keygen
start_agent

# 1. publish, attach by id, lazy reads.
ID=$(psn publish $IMG --name base --chunk-size 64k) || bail_out "publish failed"
assert_eq 64 "${#ID}" "publish prints a 64-hex id"
expect_success "ls lists it" sh -c "'$PEERSNAP' --config $CONF ls | grep -q '^$ID\\|${ID:0:16}'"
line="0 $((MIB << 11)) peersnap /dev/ram0 /dev/ram1 128 $ID"
assert_eq "$line" "$(psn table "${ID:0:12}" --metadata /dev/ram0 --cache /dev/ram1)" \
	"table by id prefix prints the dmsetup line"
expect_success "attach" psn attach "$ID" --metadata /dev/ram0 --cache /dev/ram1 ps
assert_eq "0 $((MIB << 11)) peersnap 1:0 1:1 128 $ID" "$(dmsetup table ps)" \
	"attach created the device that table prints"
assert_eq "0/$CHUNKS" "$(ps_field ps present)" "attached cold: nothing present"
expect_success "mount the cold image" mount -t ext4 -o ro /dev/mapper/ps $MNT
expect_success "its files are intact" sh -c "cd $MNT && sha256sum --quiet -c /tmp/src.sums"
umount $MNT
present=$(chunks_present ps)
[ "$present" -gt 0 ] && [ "$present" -lt "$CHUNKS" ] &&
	ok "reading files fetched only part of it ($present/$CHUNKS)" ||
	not_ok "reading files fetched only part of it ($present/$CHUNKS)"

# 2. pull, hydrate, detach.
expect_success "pull" psn pull "$ID" /tmp/pulled
expect_success "the pulled file equals the image" cmp $IMG /tmp/pulled
expect_success "hydrate" psn hydrate ps
assert_eq "$CHUNKS/$CHUNKS" "$(ps_field ps present)" "hydrated: every chunk present"
assert_eq "$(sha256sum <$IMG)" "$(device_sum ps)" "hydrated: the device equals the image"
assert_eq 0 "$(counter fetch.hash_mismatch)" "no chunk failed its hash"
expect_success "detach" psn detach ps
expect_failure "detached: the device is gone" dmsetup info ps

# 3. version 2: 8 chunks changed (1 % of 768; 2 % of the debug kernel's
# 384), on the cache that holds version 1: exactly those are copied from
# the origin.
cp $IMG /tmp/image.v2
change_chunks /tmp/image.v2 $CHANGED
ID2=$(psn publish /tmp/image.v2 --name base --parent "$ID" --chunk-size 64k) ||
	bail_out "publish v2 failed"
expect_success "show v2 names its parent" sh -c "'$PEERSNAP' --config $CONF show $ID2 | grep -q $ID"
wipe_metadata
origin0=$(counter fetch.chunks_origin)
in_place0=$(counter fetch.chunks_in_place)
zero0=$(counter fetch.chunks_zero)
expect_success "attach v2 on v1's cache" psn attach "$ID2" --metadata /dev/ram0 --cache /dev/ram1 ps
expect_success "hydrate v2" psn hydrate ps
assert_eq "$(sha256sum </tmp/image.v2)" "$(device_sum ps)" "v2: the device equals image v2"
assert_eq 8 "$(($(counter fetch.chunks_origin) - origin0))" \
	"v2: exactly the 8 changed chunks came from the origin"
assert_eq $((CHUNKS - 8)) "$(($(counter fetch.chunks_in_place) - in_place0 + $(counter fetch.chunks_zero) - zero0))" \
	"v2: every other chunk was found in place (or is all zeros)"
expect_success "detach v2" psn detach ps

# 4. a chunk corrupted in the origin file: EIO, not wrong data. Chunks 50
# and 51 are made unique first: a chunk that other snapshots share would
# be read from one of their copies instead (and rightly so).
cp $IMG /tmp/image.bad
change_chunks /tmp/image.bad 50 51
ID3=$(psn publish /tmp/image.bad --name bad --chunk-size 64k) || bail_out "publish bad failed"
dd if=/dev/urandom of=/tmp/image.bad bs=1 seek=$((50 * CHUNK + 17)) count=1 \
	conv=notrunc status=none
wipe_metadata
dd if=/dev/zero of=/dev/ram2 bs=1M count=$MIB status=none
expect_success "attach the snapshot with a corrupt origin" \
	psn attach "$ID3" --metadata /dev/ram0 --cache /dev/ram2 bad
mismatch0=$(counter fetch.hash_mismatch)
expect_failure "reading the corrupted chunk fails" \
	dd if=/dev/mapper/bad of=/dev/null bs=$CHUNK skip=50 count=1 iflag=direct status=none
assert_eq 1 "$(($(counter fetch.hash_mismatch) - mismatch0))" "the mismatch is counted"
assert_eq "$(dd if=/tmp/image.bad bs=$CHUNK skip=51 count=1 status=none | sha256sum)" \
	"$(dd if=/dev/mapper/bad bs=$CHUNK skip=51 count=1 iflag=direct status=none | sha256sum)" \
	"the next chunk reads correctly"
expect_success "detach" psn detach bad

# 5. commit a written volume: a new snapshot whose pull equals the device.
wipe_metadata
dd if=/dev/zero of=/dev/ram3 bs=1M count=$MIB status=none
expect_success "attach writable" psn attach "$ID" --metadata /dev/ram0 --cache /dev/ram3 vol
for b in $WRITTEN; do
	dd if=/dev/urandom of=/dev/mapper/vol bs=4096 seek=$b count=1 oflag=direct status=none
done
sync
dirty=$(ps_field vol dirty)
assert_eq 5 "$dirty" "five written chunks are dirty"
ID4=$(psn commit vol --name base-edited) || bail_out "commit failed"
assert_eq 64 "${#ID4}" "commit prints the new id"
expect_success "the commit's parent is the attached snapshot" \
	sh -c "'$PEERSNAP' --config $CONF show $ID4 | grep -q $ID"
expect_success "pull the commit" psn pull "$ID4" /tmp/committed
assert_eq "$(device_sum vol)" "$(sha256sum </tmp/committed)" "the commit's pull equals the device"
expect_success "detach the volume" psn detach vol

ktap_finish
