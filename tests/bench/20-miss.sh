#!/bin/bash
# Miss path: a 256 MiB image read cold through peersnap, at several chunk
# sizes, against dm-clone over a local source device with the same image.
#
#   /tmp/image (tmpfs) --peersnapd--> /dev/ram1 (cache)  <-- peersnap "ps"
#        |                            /dev/ram0 (metadata)
#        '--dd--> /dev/ram2 (source) --dm-clone--> /dev/ram1 (destination)
#                                     /dev/ram3 (dm-clone metadata)
#
# For each chunk size (PEERSNAP_BENCH_CHUNKS, in sectors), on a new cold
# device each time, PEERSNAP_BENCH_MISS_REPS runs next to as many dm-clone
# runs of the same kind, in ABBA order, so that each ratio compares two
# measurements seconds apart (TCG on a shared host drifts by 2x and more
# within minutes); .rN is run N, the name alone the median:
#   miss.dmclone.<size>.seq_read    cold read through dm-clone (no_hydration:
#                                   a read of an unhydrated region is a remap
#                                   to the source, no copy)
#   miss.peersnap.<size>.seq_read   cold sequential read, 1 MiB O_DIRECT, QD1
#   miss.dmclone.<size>.hydrate     dm-clone background hydration, 64 KiB
#                                   regions, hydration_batch_size 16
#   miss.peersnap.<size>.hydrate    `dmsetup message ps 0 hydrate`
#   miss.peersnap.<size>.cold4k_*   one 4 KiB read per random cold chunk, QD1
# then the medians miss.dmclone.{seq_read,hydrate}, 4 KiB chunks for the
# cold-read latency only (the fixed cost of one fetch: netlink round trip,
# agent, a tiny copy), and miss.source.seq_read, the brd source itself.
#
# The cache device's pages stay allocated between runs (6.1's brd has no
# discard): it is zeroed once for each device's data check, and a new
# metadata device makes the next run cold (the fetch counters prove it).
. "$PEERSNAP_TOP/tests/bench/lib.sh"

ID=2727272727272727272727272727272727272727272727272727272727272727
IMG=/tmp/image
SIZE_MIB=256
SECTORS=$((SIZE_MIB * 2048))
COLD_IOS=200
CLONE_REGION=128
DM_CLONE_KO=${PEERSNAP_BENCH_DM_CLONE:-$PEERSNAP_TOP/build/dm-clone/dm-clone.ko}

# size_name SECTORS: 128 -> 64k, 2048 -> 1m.
size_name() {
	local kib=$(($1 / 2))
	if [ $((kib % 1024)) = 0 ]; then
		echo "$((kib / 1024))m"
	else
		echo "${kib}k"
	fi
}

# seq_read DEV: sequential read of the whole device; prints KiB/s.
seq_read() {
	local line
	line=$(fio_terse --filename="$1" --rw=read --bs=1M --iodepth=1 \
		--ioengine=libaio --direct=1 --size=${SIZE_MIB}M) || return 1
	[ "$(read_field "$line" kib)" = $((SIZE_MIB << 10)) ] || {
		diag "fio read $(read_field "$line" kib) KiB of $1, not $((SIZE_MIB << 10))"
		return 1
	}
	read_field "$line" bw
}

# ---- peersnap --------------------------------------------------------------

fresh_ps() {
	wipe_metadata
	ps_create ps $SECTORS "$1" $ID || bail_out "cannot create peersnap ($1 sectors)"
}

remove_ps() {
	dmsetup remove ps || bail_out "cannot remove peersnap"
}

# ps_seq_read CHUNK NAME REP [check]
ps_seq_read() {
	local chunk=$1 name=$2 rep=$3 check=${4:-} kib
	[ -z "$check" ] || zero_dev /dev/ram1
	fresh_ps "$chunk"
	kib=$(seq_read /dev/mapper/ps) || bail_out "cold read of peersnap failed"
	result "miss.peersnap.$name.seq_read.r$rep" "$(kib_to_mb "$kib")" MB/s
	ps_reads+=("$(kib_to_mb "$kib")")
	assert_eq $((SECTORS / chunk)) "$(ps_field ps fetched)" \
		"peersnap $name: cold read $rep fetched each chunk once"
	[ -z "$check" ] || check_image /dev/mapper/ps $IMG "peersnap $name: the cold read returned the image"
	remove_ps
}

# ps_hydrate CHUNK NAME REP
ps_hydrate() {
	local chunk=$1 name=$2 rep=$3 us rate total=$((SECTORS / $1))
	fresh_ps "$chunk"
	# Status parameter 9 is the hydration state.
	timed_copy us ps hydrate 9 =idle || bail_out "peersnap $name: hydration did not finish"
	rate=$(rate_mb $((SIZE_MIB << 20)) "$us")
	result "miss.peersnap.$name.hydrate.r$rep" "$rate" MB/s
	ps_hydrates+=("$rate")
	assert_eq "$total/$total" "$(ps_field ps present)" \
		"peersnap $name: hydration $rep made every chunk present"
	remove_ps
}

ps_cold_latency() {
	local chunk=$1 name=$2 line total=$((SECTORS / $1)) n
	fresh_ps "$chunk"
	n=$((COLD_IOS < total ? COLD_IOS : total))
	cold_iolog /tmp/cold.iolog /dev/mapper/ps $n $((chunk * 512)) $total
	line=$(fio_terse --read_iolog=/tmp/cold.iolog --ioengine=psync --direct=1) ||
		bail_out "peersnap $name: cold 4k reads failed"
	result "miss.peersnap.$name.cold4k_p50" "$(read_field "$line" p50)" us
	result "miss.peersnap.$name.cold4k_p99" "$(read_field "$line" p99)" us
	result "miss.peersnap.$name.cold4k_mean" "$(read_field "$line" clat_mean)" us
	assert_eq "$n" "$(ps_field ps fetched)" "peersnap $name: each cold 4k read was one fetch"
	remove_ps
}

# ---- dm-clone --------------------------------------------------------------

load_dm_clone() {
	local dep
	[ -f "$DM_CLONE_KO" ] || return 1
	for dep in dm-mod dm-persistent-data dm-bio-prison; do
		modprobe "$dep" || return 1
	done
	[ -d /sys/module/dm_clone ] || insmod "$DM_CLONE_KO" || return 1
	defer rmmod dm_clone
}

# dm-clone's "<hydrated>/<total>" regions.
clone_hydrated() {
	dmsetup status clone | cut -d' ' -f7
}

# A zeroed metadata device: dm-clone formats it and starts cold.
fresh_clone() {
	zero_dev /dev/ram3 1
	dmsetup create clone --table "0 $SECTORS clone /dev/ram3 /dev/ram1 /dev/ram2 $CLONE_REGION 1 no_hydration 2 hydration_batch_size 16" ||
		bail_out "cannot create dm-clone"
	dmsetup mknodes clone
}

# clone_seq_read NAME REP
clone_seq_read() {
	local name=$1 rep=$2 kib
	fresh_clone
	kib=$(seq_read /dev/mapper/clone) || bail_out "cold read of dm-clone failed"
	result "miss.dmclone.$name.seq_read.r$rep" "$(kib_to_mb "$kib")" MB/s
	clone_reads+=("$(kib_to_mb "$kib")")
	all_clone_reads+=("$(kib_to_mb "$kib")")
	dmsetup remove clone
}

# clone_hydrate NAME REP [check]
clone_hydrate() {
	local name=$1 rep=$2 check=${3:-} us rate total=$((SECTORS / CLONE_REGION))
	[ -z "$check" ] || zero_dev /dev/ram1
	fresh_clone
	# Status parameter 3 is <hydrated>/<total> regions.
	timed_copy us clone enable_hydration 3 full || bail_out "dm-clone hydration did not finish"
	rate=$(rate_mb $((SIZE_MIB << 20)) "$us")
	result "miss.dmclone.$name.hydrate.r$rep" "$rate" MB/s
	clone_hydrates+=("$rate")
	all_clone_hydrates+=("$rate")
	assert_eq "$total/$total" "$(clone_hydrated)" "dm-clone: hydration $rep hydrated every region"
	[ -z "$check" ] || check_image /dev/mapper/clone $IMG "dm-clone: the hydrated device is the image"
	dmsetup remove clone
}

# pair_runs KIND CHUNK NAME: BENCH_MISS_REPS runs of dm-clone and peersnap
# in ABBA order (dm-clone first in odd runs), then the medians.
pair_runs() {
	local kind=$1 chunk=$2 name=$3 rep first
	ps_reads=() ps_hydrates=() clone_reads=() clone_hydrates=()
	for rep in $(seq "$BENCH_MISS_REPS"); do
		first=$((rep % 2))
		if [ $first = 1 ] && [ -n "$have_clone" ]; then
			clone_$kind "$name" "$rep" $check
		fi
		ps_$kind "$chunk" "$name" "$rep" $check
		if [ $first = 0 ] && [ -n "$have_clone" ]; then
			clone_$kind "$name" "$rep"
		fi
		check=
	done
	if [ "$kind" = seq_read ]; then
		result "miss.peersnap.$name.seq_read" "$(median "${ps_reads[@]}")" MB/s
		[ -z "$have_clone" ] ||
			result "miss.dmclone.$name.seq_read" "$(median "${clone_reads[@]}")" MB/s
	else
		result "miss.peersnap.$name.hydrate" "$(median "${ps_hydrates[@]}")" MB/s
		[ -z "$have_clone" ] ||
			result "miss.dmclone.$name.hydrate" "$(median "${clone_hydrates[@]}")" MB/s
	fi
}

# ---- the runs --------------------------------------------------------------

require_cmd fio shuf cmp
phase setup
load_module
have_clone=1
load_dm_clone || have_clone=
make_brd 4 $SIZE_MIB
make_image $IMG $((SIZE_MIB << 20))
zero_dev /dev/ram1
dd if=$IMG of=/dev/ram2 bs=1M oflag=direct status=none
start_agent "$ID=$IMG"

phase "source read"
kib=$(seq_read /dev/ram2) || bail_out "read of the source failed"
result miss.source.seq_read "$(kib_to_mb "$kib")" MB/s

[ -n "$have_clone" ] ||
	skip "dm-clone baseline" "no loadable $DM_CLONE_KO (run scripts/build-dm-clone)"
all_clone_reads=()
all_clone_hydrates=()
for chunk in $BENCH_CHUNKS; do
	name=$(size_name "$chunk")
	# The first chunk size's first runs start from a zeroed cache device
	# and check the data they produced.
	[ "$chunk" = "${BENCH_CHUNKS%% *}" ] && check=check || check=
	phase "$name: cold sequential reads"
	pair_runs seq_read "$chunk" "$name"
	[ "$chunk" = "${BENCH_CHUNKS%% *}" ] && check=check || check=
	phase "$name: hydration"
	pair_runs hydrate "$chunk" "$name"
done
if [ -n "$have_clone" ]; then
	result miss.dmclone.seq_read "$(median "${all_clone_reads[@]}")" MB/s
	result miss.dmclone.hydrate "$(median "${all_clone_hydrates[@]}")" MB/s
fi
# The latencies back to back, so that they share the host's mood.
phase "cold 4k reads"
for chunk in $BENCH_CHUNKS 8; do
	ps_cold_latency "$chunk" "$(size_name "$chunk")"
done
phase finished

ktap_finish
