#!/bin/bash
# Hit path: 4 KiB random reads (QD32, libaio, O_DIRECT) on a fully present
# peersnap device against dm-linear over the same cache device, in this
# one VM, measured two ways:
#
#   alternating  one device at a time, PEERSNAP_BENCH_REPS runs each of
#                PEERSNAP_BENCH_RUNTIME s in ABBA order; each peersnap run
#                is paired with its dm-linear neighbour.
#   shared       both devices at once, one fio job each, both jobs pinned
#                to CPU 0: the scheduler gives them equal CPU time, brd
#                completes in the submitter's context, so the IOPS ratio is
#                the inverse ratio of the CPU cost per I/O, and whatever
#                slows TCG down slows both jobs at the same instant. A
#                control pairs dm-linear with a second dm-linear.
#
#   /dev/ram1 (cache) <-- dm-linear "lin" (and "lin2")
#             ^-------- peersnap "ps" (/dev/ram0: metadata), hydrated first
#
# Results: hit.{linear,peersnap}.iops (medians) and .rN (run pair N);
# hit.shared.ratio (peersnap / dm-linear) and hit.shared.control
# (dm-linear / dm-linear), medians, and their .rN.
. "$PEERSNAP_TOP/tests/bench/lib.sh"

ID=5151515151515151515151515151515151515151515151515151515151515151
IMG=/tmp/image
SIZE_MIB=128
CHUNK=128			# 64 KiB: the hit path does not depend on it
SECTORS=$((SIZE_MIB * 2048))

require_cmd fio
load_module
make_brd 2 $SIZE_MIB
make_image $IMG $((SIZE_MIB << 20))
start_agent "$ID=$IMG"

ps_create ps $SECTORS $CHUNK $ID || bail_out "cannot create the peersnap device"
us=''
timed_copy us ps hydrate 9 =idle || bail_out "hydration did not finish"
diag "hydrated $SIZE_MIB MiB in $((us / 1000)) ms"
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
# shared_run A B: one run of A and B together; prints "IOPS_A IOPS_B".
shared_run() {
	local out
	out=$(timeout -k 5 "$FIO_TIMEOUT" fio --output-format=terse --terse-version=3 \
		--rw=randread --bs=4k --iodepth=32 --ioengine=libaio --direct=1 \
		--time_based --runtime="$SHARED_RUNTIME" --ramp_time=1 \
		--randrepeat=0 --norandommap --cpus_allowed=0 \
		--name="$1" --filename="/dev/mapper/$1" \
		--name="$2" --filename="/dev/mapper/$2" 2>&1) || {
		diag "fio $1 + $2 failed:"
		diag "$out"
		return 1
	}
	grep '^3;' <<<"$out" | cut -d';' -f8 | paste -sd' '
}

# shared_ratio NAME NUM DEN REP [swap]: a result NUM/DEN from one shared run;
# with "swap" the jobs start in the other order.
shared_ratio() {
	local name=$1 num=$2 den=$3 rep=$4 iops r
	if [ "${5:-}" = swap ]; then
		iops=$(shared_run "$den" "$num") || bail_out "fio $num + $den failed"
		r=$(awk -v d="${iops% *}" -v n="${iops#* }" 'BEGIN { printf "%.3f", n / d }')
	else
		iops=$(shared_run "$num" "$den") || bail_out "fio $num + $den failed"
		r=$(awk -v n="${iops% *}" -v d="${iops#* }" 'BEGIN { printf "%.3f", n / d }')
	fi
	result "hit.shared.$name.r$rep" "$r" x
	shared+=("$r")
}

SHARED_RUNTIME=$(((BENCH_RUNTIME + 1) / 2))
dm_create lin2 "0 $SECTORS linear /dev/ram1 0" || bail_out "cannot create dm-linear"
shared=()
for i in $(seq "$BENCH_REPS"); do
	[ $((i % 2)) = 1 ] && swap= || swap=swap
	shared_ratio ratio ps lin "$i" $swap
done
result hit.shared.ratio "$(median "${shared[@]}")" x
shared=()
for i in 1 2; do
	[ $((i % 2)) = 1 ] && swap= || swap=swap
	shared_ratio control lin2 lin "$i" $swap
done
result hit.shared.control "$(median "${shared[@]}")" x

assert_eq "$fetched" "$(ps_field ps fetched)" "reads of a present device fetch nothing"
assert_eq 0 "$(ps_field ps failed)" "no failed fetch"

ktap_finish
