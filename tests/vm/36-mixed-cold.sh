#!/bin/bash
# Writes racing fetches of the same chunks: on a cold device, two fio jobs
# write (4 KiB random, crc32c verify, each in its own half) while two read
# (16 KiB random, all over the device), all QD32, so writes land on chunks
# whose fetch a read started and reads fetch chunks that are being
# written. fio verifies every written block; afterwards every other block
# is the image's (blockmatch), also after re-creating the device.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=3636363636363636363636363636363636363636363636363636363636363636
IMG=/tmp/image
SIZE=$((32 << 20))			# 512 chunks of 64 KiB
HALF=$((SIZE / 2))
BLOCKMATCH=$(private_copy "$PEERSNAP_TOP/build/tools/blockmatch")

require_cmd fio
load_module
make_brd 2 64
make_image $IMG $SIZE
start_agent "$ID=$IMG"
ps_create ps $((SIZE / 512)) 128 $ID || bail_out "cannot create the device"

if timeout 600 fio --filename=/dev/mapper/ps --direct=1 --ioengine=libaio \
	--iodepth=32 --output-format=terse \
	--name=w0 --rw=randwrite --bs=4k --offset=0 --size=$HALF --io_size=4m \
	--verify=crc32c --verify_fatal=1 --write_iolog=/tmp/w0.iolog \
	--name=w1 --rw=randwrite --bs=4k --offset=$HALF --size=$HALF --io_size=4m \
	--verify=crc32c --verify_fatal=1 --write_iolog=/tmp/w1.iolog \
	--name=r0 --rw=randread --bs=16k --size=$SIZE --io_size=8m \
	--name=r1 --rw=randread --bs=16k --size=$SIZE --io_size=8m \
	>/tmp/fio.out 2>&1; then
	ok "2 writers + 2 readers, QD32, cold device: every written block verifies"
else
	not_ok "2 writers + 2 readers, QD32, cold device: every written block verifies"
	diag "$(tail -n 20 /tmp/fio.out)"
fi
assert_eq 0 "$(ps_field ps failed)" "no fetch failed"
chunks=$(ps_field ps fetched)
diag "fetched $chunks chunks, $(ps_field ps dirty) dirty"

written=$(awk '$3 == "write" { print $4 }' /tmp/w0.iolog /tmp/w1.iolog | sort -u | wc -l)
matches=$("$BLOCKMATCH" 4096 /dev/mapper/ps $IMG | grep -v '^#' | paste -sd'|')
assert_eq "$((SIZE / 4096 - written)) $IMG|$written none" "$matches" \
	"the $written blocks written are fio's, every other block the image's"
dmsetup remove ps
ps_create ps $((SIZE / 512)) 128 $ID
assert_eq "$matches" "$("$BLOCKMATCH" 4096 /dev/mapper/ps $IMG | grep -v '^#' | paste -sd'|')" \
	"re-created: the same blocks"

ktap_finish
