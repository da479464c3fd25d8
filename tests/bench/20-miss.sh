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
# device each time, next to a dm-clone run of the same kind so that the
# ratio compares two measurements seconds apart (TCG on a shared host
# drifts by 2x and more over minutes):
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

cleanup() {
	stop_agent
	dmsetup remove_all >/dev/null 2>&1
	true
}

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

# check_image DEV WHAT: ok if DEV holds exactly the image.
check_image() {
	if cmp -s <(dd if="$1" bs=1M iflag=direct status=none) $IMG; then
		ok "$2"
	else
		not_ok "$2"
	fi
}

# ---- peersnap --------------------------------------------------------------

fresh_ps() {
	wipe_metadata
	ps_create ps $SECTORS "$1" $ID || bail_out "cannot create peersnap ($1 sectors)"
}

remove_ps() {
	dmsetup remove ps || bail_out "cannot remove peersnap"
}

# ps_seq_read CHUNK NAME [check]
ps_seq_read() {
	local chunk=$1 name=$2 check=${3:-} kib
	[ -z "$check" ] || zero_dev /dev/ram1
	fresh_ps "$chunk"
	kib=$(seq_read /dev/mapper/ps) || bail_out "cold read of peersnap failed"
	result "miss.peersnap.$name.seq_read" "$(kib_to_mb "$kib")" MB/s
	assert_eq $((SECTORS / chunk)) "$(ps_field ps fetched)" \
		"peersnap $name: the cold read fetched each chunk once"
	[ -z "$check" ] || check_image /dev/mapper/ps "peersnap $name: the cold read returned the image"
	remove_ps
}

ps_hydrate() {
	local chunk=$1 name=$2 t0 ns total=$((SECTORS / $1))
	fresh_ps "$chunk"
	t0=$(now_ns)
	dmsetup message ps 0 hydrate
	wait_until 600 hydration_idle ps || bail_out "peersnap $name: hydration did not finish"
	ns=$(($(now_ns) - t0))
	result "miss.peersnap.$name.hydrate" "$(rate_mb $((SIZE_MIB << 20)) $ns)" MB/s
	assert_eq "$total/$total" "$(ps_field ps present)" \
		"peersnap $name: hydrate made every chunk present"
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
	dmsetup status clone | awk '{ print $7 }'
}

clone_done() {
	local h
	h=$(clone_hydrated)
	[ "${h%/*}" = "${h#*/}" ]
}

# A zeroed metadata device: dm-clone formats it and starts cold.
fresh_clone() {
	zero_dev /dev/ram3 1
	dmsetup create clone --table "0 $SECTORS clone /dev/ram3 /dev/ram1 /dev/ram2 $CLONE_REGION 1 no_hydration 2 hydration_batch_size 16" ||
		bail_out "cannot create dm-clone"
	dmsetup mknodes clone
}

clone_seq_read() {
	local name=$1 kib
	fresh_clone
	kib=$(seq_read /dev/mapper/clone) || bail_out "cold read of dm-clone failed"
	result "miss.dmclone.$name.seq_read" "$(kib_to_mb "$kib")" MB/s
	clone_reads+=("$(kib_to_mb "$kib")")
	dmsetup remove clone
}

# clone_hydrate NAME [check]
clone_hydrate() {
	local name=$1 check=${2:-} t0 ns rate total=$((SECTORS / CLONE_REGION))
	[ -z "$check" ] || zero_dev /dev/ram1
	fresh_clone
	t0=$(now_ns)
	dmsetup message clone 0 enable_hydration
	wait_until 600 clone_done || bail_out "dm-clone hydration did not finish"
	ns=$(($(now_ns) - t0))
	rate=$(rate_mb $((SIZE_MIB << 20)) $ns)
	result "miss.dmclone.$name.hydrate" "$rate" MB/s
	clone_hydrates+=("$rate")
	assert_eq "$total/$total" "$(clone_hydrated)" "dm-clone: hydrated every region"
	[ -z "$check" ] || check_image /dev/mapper/clone "dm-clone: the hydrated device is the image"
	dmsetup remove clone
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
clone_reads=()
clone_hydrates=()
check=check
for chunk in $BENCH_CHUNKS; do
	name=$(size_name "$chunk")
	phase "$name: cold sequential reads"
	[ -z "$have_clone" ] || clone_seq_read "$name"
	ps_seq_read "$chunk" "$name" $check
	phase "$name: hydration"
	[ -z "$have_clone" ] || clone_hydrate "$name" $check
	ps_hydrate "$chunk" "$name"
	phase "$name: cold 4k reads"
	ps_cold_latency "$chunk" "$name"
	check=
done
if [ -n "$have_clone" ]; then
	result miss.dmclone.seq_read "$(median "${clone_reads[@]}")" MB/s
	result miss.dmclone.hydrate "$(median "${clone_hydrates[@]}")" MB/s
fi
phase "4k: cold 4k reads"
ps_cold_latency 8 4k
phase done

ktap_finish
