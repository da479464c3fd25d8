#!/bin/bash
# Hit path: 4 KiB random reads (QD32, libaio, O_DIRECT) on a fully present
# peersnap device against dm-linear over the same cache device, in this
# one VM, alternating the two so that TCG's drift hits both alike.
#
#   /dev/ram1 (cache) <-- dm-linear "lin"
#             ^-------- peersnap "ps" (/dev/ram0: metadata), hydrated first
#
# Results: hit.{linear,peersnap}.iops (medians) and .rN (run pair N).
. "$PEERSNAP_TOP/tests/bench/lib.sh"

ID=5151515151515151515151515151515151515151515151515151515151515151
IMG=/tmp/image
SIZE_MIB=128
CHUNK=128			# 64 KiB: the hit path does not depend on it
SECTORS=$((SIZE_MIB * 2048))

cleanup() {
	stop_agent
	dmsetup remove_all >/dev/null 2>&1
	true
}

require_cmd fio
load_module
make_brd 2 $SIZE_MIB
make_image $IMG $((SIZE_MIB << 20))
start_agent "$ID=$IMG"

ps_create ps $SECTORS $CHUNK $ID || bail_out "cannot create the peersnap device"
stamp t0
dmsetup message ps 0 hydrate
wait_until 300 hydration_idle ps || bail_out "hydration did not finish"
stamp t1
diag "hydrated $SIZE_MIB MiB in $(((t1 - t0) / 1000)) ms"
total=$((SECTORS / CHUNK))
assert_eq "$total/$total" "$(ps_field ps present)" "peersnap device fully present"
check_image /dev/mapper/ps $IMG "peersnap device reads back the image"
fetched=$(ps_field ps fetched)
# The agent is stopped: a hit must not need it, and it must not run.
stop_agent
dm_create lin "0 $SECTORS linear /dev/ram1 0" || bail_out "cannot create dm-linear"

hit_run() {
	fio_terse --filename="$1" --rw=randread --bs=4k --iodepth=32 \
		--ioengine=libaio --direct=1 --time_based --runtime="$BENCH_RUNTIME" \
		--ramp_time=1 --randrepeat=0 --norandommap
}

# ABBA order (lin ps, ps lin, ...): a drift in TCG's speed during the
# run then favours neither device; each run is paired with its neighbour.
lin=()
ps=()
for i in $(seq "$BENCH_REPS"); do
	order="lin ps"
	[ $((i % 2)) = 1 ] || order="ps lin"
	for dev in $order; do
		line=$(hit_run "/dev/mapper/$dev") || bail_out "fio on $dev failed"
		iops=$(read_field "$line" iops)
		if [ "$dev" = lin ]; then
			lin+=("$iops")
			result "hit.linear.iops.r$i" "$iops" IOPS
		else
			ps+=("$iops")
			result "hit.peersnap.iops.r$i" "$iops" IOPS
		fi
	done
done
result hit.linear.iops "$(median "${lin[@]}")" IOPS
result hit.peersnap.iops "$(median "${ps[@]}")" IOPS
assert_eq "$fetched" "$(ps_field ps fetched)" "reads of a present device fetch nothing"
assert_eq 0 "$(ps_field ps failed)" "no failed fetch"

ktap_finish
