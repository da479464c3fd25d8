#!/bin/bash
# 64 concurrent readers of one absent chunk make exactly one fetch; then
# fio reads the (still mostly cold) device from 4 jobs at iodepth 32 and
# verifies every block against crc32c headers written into the image.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=2222222222222222222222222222222222222222222222222222222222222222
IMG=/tmp/image
SIZE=$((32 << 20))

load_module
make_brd 2 64

# The same job writes the image and then verifies the device: fio's verify
# headers carry the offset and a crc32c of each 4 KiB block.
fio_job() {
	fio --name=verify --filename="$1" --size=$((SIZE / 4)) --numjobs=4 \
		--offset_increment=$((SIZE / 4)) --bs=4k --rw=randwrite \
		--randrepeat=1 --verify=crc32c --verify_fatal=1 \
		--group_reporting --output-format=terse "${@:2}"
}

truncate -s $SIZE $IMG
fio_job $IMG --ioengine=psync --do_verify=0 >/dev/null
start_agent "$ID=$IMG"
ps_create ps $((SIZE / 512)) 128 $ID
# 64 readers of chunk 300 (absent): one request to the agent.
before=$(ps_field ps fetched)
pids=()
for ((i = 1; i <= 64; i++)); do
	dd if=/dev/mapper/ps of=/tmp/r.$i bs=4k skip=$((300 * 16 + i % 16)) \
		count=1 iflag=direct status=none &
	pids+=($!)
done
wait "${pids[@]}"
assert_eq $((before + 1)) "$(ps_field ps fetched)" \
	"64 concurrent readers of one absent chunk: one fetch"
bad=0
for ((i = 1; i <= 64; i++)); do
	cmp -s -n 4096 -i 0:$(((300 * 16 + i % 16) * 4096)) /tmp/r.$i $IMG ||
		bad=$((bad + 1))
done
assert_eq 0 $bad "all 64 readers got the image's data"


if fio_job /dev/mapper/ps --verify_only --ioengine=libaio --iodepth=32 \
	--direct=1 >/tmp/fio.out 2>&1; then
	ok "fio verify_only crc32c, 4 jobs x QD32, over a cold device"
else
	not_ok "fio verify_only crc32c, 4 jobs x QD32, over a cold device"
	sed 's/^/# /' /tmp/fio.out
fi
assert_eq 0 "$(ps_field ps failed)" "no fetch failed"
assert_eq 0 "$(ps_field ps inflight)" "nothing left in flight"

ktap_finish
