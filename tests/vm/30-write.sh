#!/bin/bash
# Writes through a cold device: fio randwrite with crc32c verify at 4 KiB,
# 16 KiB and exactly one chunk, re-verified after the device is removed and
# re-created; a partial write to an absent chunk keeps the rest of the chunk
# equal to the image; a whole-chunk write needs no fetch; every written
# chunk is dirty; a read-only table refuses writes without fetching;
# discards count whole chunks only.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=3030303030303030303030303030303030303030303030303030303030303030
IMG=/tmp/image
CHUNK=128	# 64 KiB
SIZE=$((32 << 20))
# On the debug kernel, where each fetch and write is several times slower,
# half the data takes the same paths.
[ -z "${PEERSNAP_DEBUG_KERNEL:-}" ] || SIZE=$((16 << 20))

load_module
make_brd 2 64
make_image $IMG $SIZE
start_agent "$ID=$IMG"

fio_write() {
	fio --name=w --filename=/dev/mapper/ps --bs="$1" --size=$((SIZE / 4)) \
		--offset="$2" --rw=randwrite --direct=1 --ioengine=libaio \
		--iodepth=16 --randrepeat=1 --norandommap=0 --verify=crc32c \
		--verify_fatal=1 --output-format=terse "${@:3}" >/tmp/fio.out 2>&1
}

# 1. fio randwrite + verify, three block sizes in three quarters of a cold
# device, then verified again on a re-created device.
wipe_metadata
ps_create ps $((SIZE / 512)) $CHUNK $ID
quarter=0
for bs in 4k 16k 64k; do
	if fio_write $bs $((quarter * SIZE / 4)); then
		ok "fio randwrite bs=$bs verify crc32c over a cold device"
	else
		not_ok "fio randwrite bs=$bs verify crc32c over a cold device"
		diag "$(cat /tmp/fio.out)"
	fi
	quarter=$((quarter + 1))
done
assert_eq 0 "$(ps_field ps failed)" "no fetch failed"
dmsetup remove ps
ps_create ps $((SIZE / 512)) $CHUNK $ID
quarter=0
for bs in 4k 16k 64k; do
	if fio_write $bs $((quarter * SIZE / 4)) --verify_only; then
		ok "bs=$bs data intact after remove + re-create"
	else
		not_ok "bs=$bs data intact after remove + re-create"
		diag "$(cat /tmp/fio.out)"
	fi
	quarter=$((quarter + 1))
done
assert_eq 0 "$(ps_field ps fetched)" "re-created: verifying fetched nothing"
dmsetup remove ps

# 2. Partial and whole-chunk writes to absent chunks (64 KiB chunks).
wipe_metadata
ps_create ps $((SIZE / 512)) $CHUNK $ID
head -c 4096 /dev/urandom >/tmp/small
dd if=/tmp/small of=/dev/mapper/ps bs=4k seek=$((10 * 16 + 3)) oflag=direct conv=notrunc status=none
assert_eq 1 "$(ps_field ps fetched)" "a partial write to an absent chunk fetches it"
{ dd if=$IMG bs=4k skip=160 count=3 status=none; cat /tmp/small
  dd if=$IMG bs=4k skip=164 count=12 status=none; } >/tmp/want
assert_eq "$(sha256sum </tmp/want)" \
	"$(dd if=/dev/mapper/ps bs=64k skip=10 count=1 iflag=direct status=none | sha256sum)" \
	"... and the rest of the chunk is the image's"
head -c 65536 /dev/urandom >/tmp/whole
dd if=/tmp/whole of=/dev/mapper/ps bs=64k seek=20 oflag=direct status=none
assert_eq 1 "$(ps_field ps fetched)" "a whole-chunk write to an absent chunk fetches nothing"
assert_eq "$(sha256sum </tmp/whole)" \
	"$(dd if=/dev/mapper/ps bs=64k skip=20 count=1 iflag=direct status=none | sha256sum)" \
	"... and reads back as written"
assert_eq 2 "$(ps_field ps dirty)" "both written chunks are dirty"
assert_eq "2/$((SIZE / 65536))" "$(ps_field ps present)" "... and present"

# 3. Discard (-f: no signature probe, which would read): a sub-chunk
# discard changes nothing; a whole absent chunk is
# not fetched; a whole present chunk is marked dirty.
dd if=/dev/mapper/ps of=/dev/null bs=64k skip=30 count=1 iflag=direct status=none
expect_success "a sub-chunk discard completes" blkdiscard -f -o $((40 * 65536)) -l 4096 /dev/mapper/ps
expect_success "a whole-chunk discard of an absent chunk completes" \
	blkdiscard -f -o $((41 * 65536)) -l 65536 /dev/mapper/ps
assert_eq 2 "$(ps_field ps fetched)" "... without fetching"
expect_success "a whole-chunk discard of a present chunk completes" \
	blkdiscard -f -o $((30 * 65536)) -l 65536 /dev/mapper/ps
assert_eq 3 "$(ps_field ps dirty)" "... and marks it dirty"
assert_eq "$(dd if=$IMG bs=64k skip=41 count=1 status=none | sha256sum)" \
	"$(dd if=/dev/mapper/ps bs=64k skip=41 count=1 iflag=direct status=none | sha256sum)" \
	"a discarded absent chunk still reads as the snapshot"
blkdev=$(dmsetup info -c --noheadings -o blkdevname ps)
assert_eq $((64 << 10)) "$(cat /sys/block/$blkdev/queue/discard_granularity)" \
	"discard granularity is the chunk size"
dmsetup remove ps

# 4. A read-only table refuses writes, without fetching.
dmsetup create ps --readonly --table "0 $((SIZE / 512)) peersnap /dev/ram0 /dev/ram1 $CHUNK $ID"
if dd if=/tmp/small of=/dev/mapper/ps bs=4k seek=1000 oflag=direct conv=notrunc status=none 2>/dev/null; then
	not_ok "a read-only table refuses writes"
else
	ok "a read-only table refuses writes"
fi
assert_eq 0 "$(ps_field ps fetched)" "... without fetching"
assert_eq 3 "$(ps_field ps dirty)" "... and nothing more is dirty"

ktap_finish
