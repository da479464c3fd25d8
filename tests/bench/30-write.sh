#!/bin/bash
# Write path, against dm-linear over the same cache device (/dev/ram1):
#
#   randwrite  4 KiB random writes (QD32, libaio, O_DIRECT) on a fully
#              present peersnap device: each write a remap plus, the first
#              time a chunk is written, a dirty bit. Shared runs (both
#              devices at once, one fio job each, pinned to CPU 0, as in
#              10-hit.sh): the IOPS ratio is the inverse ratio of the CPU
#              cost per write. Goal >= 0.95.
#   fsync      4 KiB random writes, each followed by fsync (fio fsync=1,
#              QD1), shared runs as above: a flush after a chunk turned
#              dirty waits for a metadata commit; one that finds every bit
#              on disk goes straight to the cache device.
#   partial    4 KiB writes at offset 4 KiB of absent chunks of a cold
#              device (QD1, 64 KiB chunks): each waits for the chunk's
#              fetch, then is remapped. Latency p50 / p99 / mean, with 4 KiB
#              writes to dm-linear and cold 4 KiB reads of peersnap for
#              scale.
#
# Results: write.shared.ratio and write.fsync.ratio (peersnap / dm-linear,
# medians, and their .rN), write.partial.{p50,p99,mean},
# write.linear.{p50,p99}, write.cold_read.{p50,p99}.
. "$PEERSNAP_TOP/tests/bench/lib.sh"

ID=3030303030303030303030303030303030303030303030303030303030303030
IMG=/tmp/image
SIZE_MIB=128
CHUNK=128				# 64 KiB
SECTORS=$((SIZE_MIB * 2048))
TOTAL=$((SECTORS / CHUNK))
PARTIAL_WRITES=300

require_cmd fio
load_module
make_brd 2 $SIZE_MIB
make_image $IMG $((SIZE_MIB << 20))
start_agent "$ID=$IMG"

phase "hydrating"
ps_create ps $SECTORS $CHUNK $ID || bail_out "cannot create the peersnap device"
us=''
timed_copy us ps hydrate 9 =idle || bail_out "hydration did not finish"
assert_eq "$TOTAL/$TOTAL" "$(ps_field ps present)" "peersnap device fully present"
fetched=$(ps_field ps fetched)
dm_create lin "0 $SECTORS linear /dev/ram1 0" || bail_out "cannot create dm-linear"

# shared_run A B FIO_ARGS...: A and B at once, one job each, both pinned to
# CPU 0; prints "IOPS_A IOPS_B" (write IOPS).
shared_run() {
	local out
	out=$(timeout -k 5 "$FIO_TIMEOUT" fio --output-format=terse --terse-version=3 \
		--time_based --runtime="$SHARED_RUNTIME" --ramp_time=1 \
		--randrepeat=0 --norandommap --cpus_allowed=0 "${@:3}" \
		--name="$1" --filename="/dev/mapper/$1" \
		--name="$2" --filename="/dev/mapper/$2" 2>&1) || {
		diag "fio $1 + $2 failed:"
		diag "$out"
		return 1
	}
	grep '^3;' <<<"$out" | while read -r line; do write_field "$line" iops; done |
		paste -sd' '
}

# shared_ratios NAME FIO_ARGS...: BENCH_REPS shared runs of peersnap and
# dm-linear, alternating which job starts first; results write.NAME.ratio
# (peersnap / dm-linear, the median) and write.NAME.ratio.rN.
shared_ratios() {
	local name=$1 i iops r ratios=()
	shift
	for i in $(seq "$BENCH_REPS"); do
		if [ $((i % 2)) = 1 ]; then
			iops=$(shared_run ps lin "$@") || bail_out "fio ps + lin failed"
			r=$(awk -v n="${iops% *}" -v d="${iops#* }" 'BEGIN { printf "%.3f", n / d }')
		else
			iops=$(shared_run lin ps "$@") || bail_out "fio lin + ps failed"
			r=$(awk -v d="${iops% *}" -v n="${iops#* }" 'BEGIN { printf "%.3f", n / d }')
		fi
		result "write.$name.ratio.r$i" "$r" x
		ratios+=("$r")
	done
	result "write.$name.ratio" "$(median "${ratios[@]}")" x
}

SHARED_RUNTIME=$(((BENCH_RUNTIME + 1) / 2))
phase "randwrite, shared runs"
shared_ratios shared --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio --direct=1
assert_eq "$TOTAL" "$(ps_field ps dirty)" "random writes dirtied every chunk"

phase "fsync=1, shared runs"
# A fresh, clean device: the first write of each chunk dirties it, so the
# flush after it needs a commit; later flushes find the bits on disk.
stop_agent
dmsetup remove ps
dd if=/dev/zero of=/dev/ram0 bs=1M count=1 oflag=direct status=none
ps_create ps $SECTORS $CHUNK $ID || bail_out "cannot re-create the peersnap device"
start_agent "$ID=$IMG"
timed_copy us ps hydrate 9 =idle || bail_out "hydration did not finish"
stop_agent
shared_ratios fsync --rw=randwrite --bs=4k --fsync=1 --ioengine=psync
assert_eq rw "$(dmsetup status ps | awk '{ print $NF }')" "every commit succeeded"

phase "partial writes to absent chunks"
dmsetup remove ps
dd if=/dev/zero of=/dev/ram0 bs=1M count=1 oflag=direct status=none
ps_create ps $SECTORS $CHUNK $ID || bail_out "cannot re-create the peersnap device"
start_agent "$ID=$IMG"
half=$((PARTIAL_WRITES / 2))
# Half the chunks for cold reads, the other half for partial writes.
cold_iolog /tmp/cold.iolog /dev/mapper/ps $half $((CHUNK * 512)) $((TOTAL / 2))
line=$(fio_terse --read_iolog=/tmp/cold.iolog --ioengine=psync --direct=1) ||
	bail_out "cold 4k reads failed"
result write.cold_read.p50 "$(read_field "$line" p50)" us
result write.cold_read.p99 "$(read_field "$line" p99)" us
cold_iolog /tmp/partial.iolog /dev/mapper/ps $half $((CHUNK * 512)) $((TOTAL / 2)) \
	write 4096 $((TOTAL / 2))
line=$(fio_terse --read_iolog=/tmp/partial.iolog --ioengine=psync --direct=1) ||
	bail_out "partial writes failed"
result write.partial.p50 "$(write_field "$line" p50)" us
result write.partial.p99 "$(write_field "$line" p99)" us
result write.partial.mean "$(write_field "$line" clat_mean)" us
assert_eq $((half * 2)) "$(ps_field ps fetched)" "each cold read and partial write was one fetch"
assert_eq "$half" "$(ps_field ps dirty)" "each partial write dirtied its chunk"
line=$(fio_terse --filename=/dev/mapper/lin --rw=randwrite --bs=4k --ioengine=psync \
	--direct=1 --number_ios=$half --randrepeat=0 --norandommap) ||
	bail_out "dm-linear 4k writes failed"
result write.linear.p50 "$(write_field "$line" p50)" us
result write.linear.p99 "$(write_field "$line" p99)" us
assert_eq 0 "$(ps_field ps failed)" "no failed fetch"

ktap_finish
