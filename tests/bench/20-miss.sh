#!/bin/bash
# Miss path: a 256 MiB image read cold through peersnap, at several chunk
# sizes, against dm-clone over a local source device with the same image.
#
#   /tmp/image (tmpfs) --peersnapd--> /dev/ram1 (cache)  <-- peersnap "ps"
#        |                            /dev/ram0 (metadata)
#        '--dd--> /dev/ram2 (source) --dm-clone--> /dev/ram1 (destination)
#                                     /dev/ram3 (dm-clone metadata)
#
# For each chunk size (PEERSNAP_BENCH_CHUNKS, in sectors), on a fresh
# device each time:
#   miss.peersnap.<size>.seq_read   cold sequential read, 1 MiB O_DIRECT, QD1
#   miss.peersnap.<size>.hydrate    `dmsetup message ps 0 hydrate` rate
#   miss.peersnap.<size>.cold4k_*   one 4 KiB read per random cold chunk, QD1
# and 4 KiB chunks for the cold-read latency only (the fixed cost of one
# fetch: netlink round trip, agent, tiny copy). Baselines:
#   miss.source.seq_read            the brd source itself
#   miss.dmclone.seq_read           cold read through dm-clone (no_hydration:
#                                   a read of an unhydrated region is a remap
#                                   to the source, no copy)
#   miss.dmclone.hydrate            dm-clone background hydration, 64 KiB
#                                   regions, hydration_batch_size 16
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

# seq_read DEV: cold sequential read of the whole device; prints KiB/s.
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

device_equals_image() {
	cmp -s <(dd if="$1" bs=1M iflag=direct status=none) $IMG
}

# fresh_ps CHUNK_SECTORS [keep]: a new, cold peersnap device; the cache
# device is zeroed too unless "keep" (the fetch counter still shows that
# every read was a miss).
fresh_ps() {
	wipe_metadata
	[ "${2:-}" = keep ] || zero_dev /dev/ram1
	ps_create ps $SECTORS "$1" $ID || bail_out "cannot create peersnap ($1 sectors)"
}

remove_ps() {
	dmsetup remove ps || bail_out "cannot remove peersnap"
}

ps_seq_read() {
	local chunk=$1 name=$2 kib total=$((SECTORS / $1))
	fresh_ps "$chunk"
	kib=$(seq_read /dev/mapper/ps) || bail_out "cold read of peersnap failed"
	result "miss.peersnap.$name.seq_read" "$(kib_to_mb "$kib")" MB/s
	assert_eq "$total" "$(ps_field ps fetched)" "$name: cold read fetched each chunk once"
	device_equals_image /dev/mapper/ps && ok "$name: cold read returned the image" ||
		not_ok "$name: cold read returned the image"
	remove_ps
}

ps_hydrate() {
	local chunk=$1 name=$2 t0 ns total=$((SECTORS / $1))
	fresh_ps "$chunk"
	t0=$(now_ns)
	dmsetup message ps 0 hydrate
	wait_until 600 hydration_idle ps || bail_out "$name: hydration did not finish"
	ns=$(($(now_ns) - t0))
	result "miss.peersnap.$name.hydrate" "$(rate_mb $((SIZE_MIB << 20)) $ns)" MB/s
	assert_eq "$total/$total" "$(ps_field ps present)" "$name: hydrate made every chunk present"
	remove_ps
}

ps_cold_latency() {
	local chunk=$1 name=$2 line total=$((SECTORS / $1)) n
	fresh_ps "$chunk" keep
	n=$((COLD_IOS < total ? COLD_IOS : total))
	cold_iolog /tmp/cold.iolog /dev/mapper/ps $n $((chunk * 512)) $total
	line=$(fio_terse --read_iolog=/tmp/cold.iolog --ioengine=psync --direct=1) ||
		bail_out "$name: cold 4k reads failed"
	result "miss.peersnap.$name.cold4k_p50" "$(read_field "$line" p50)" us
	result "miss.peersnap.$name.cold4k_p99" "$(read_field "$line" p99)" us
	result "miss.peersnap.$name.cold4k_mean" "$(read_field "$line" clat_mean)" us
	assert_eq "$n" "$(ps_field ps fetched)" "$name: each cold 4k read was one fetch"
	remove_ps
}

# dm-clone's "<hydrated>/<total>" regions (status field 4 after the target).
clone_hydrated() {
	dmsetup status clone | awk '{ print $7 }'
}

clone_done() {
	local h
	h=$(clone_hydrated)
	[ "${h%/*}" = "${h#*/}" ]
}

fresh_clone() {
	zero_dev /dev/ram3 1
	zero_dev /dev/ram1
	dmsetup create clone --table "0 $SECTORS clone /dev/ram3 /dev/ram1 /dev/ram2 $CLONE_REGION 1 no_hydration 2 hydration_batch_size 16" ||
		bail_out "cannot create dm-clone"
	dmsetup mknodes clone
}

bench_dm_clone() {
	local kib t0 ns total=$((SECTORS / CLONE_REGION))
	fresh_clone
	kib=$(seq_read /dev/mapper/clone) || bail_out "cold read of dm-clone failed"
	result miss.dmclone.seq_read "$(kib_to_mb "$kib")" MB/s
	dmsetup remove clone

	fresh_clone
	t0=$(now_ns)
	dmsetup message clone 0 enable_hydration
	wait_until 600 clone_done || bail_out "dm-clone hydration did not finish"
	ns=$(($(now_ns) - t0))
	result miss.dmclone.hydrate "$(rate_mb $((SIZE_MIB << 20)) $ns)" MB/s
	assert_eq "$total/$total" "$(clone_hydrated)" "dm-clone: hydrated every region"
	device_equals_image /dev/mapper/clone && ok "dm-clone: hydrated device is the image" ||
		not_ok "dm-clone: hydrated device is the image"
	dmsetup remove clone
}

load_dm_clone() {
	local dep
	[ -f "$DM_CLONE_KO" ] || return 1
	for dep in dm-mod dm-persistent-data dm-bio-prison; do
		modprobe "$dep" || return 1
	done
	[ -d /sys/module/dm_clone ] || insmod "$DM_CLONE_KO" || return 1
	defer rmmod dm_clone
}

require_cmd fio shuf
phase setup
load_module
make_brd 4 $SIZE_MIB
make_image $IMG $((SIZE_MIB << 20))
zero_dev /dev/ram1
dd if=$IMG of=/dev/ram2 bs=1M oflag=direct status=none
start_agent "$ID=$IMG"

phase "source read"
kib=$(seq_read /dev/ram2) || bail_out "read of the source failed"
result miss.source.seq_read "$(kib_to_mb "$kib")" MB/s

phase dm-clone
if load_dm_clone; then
	bench_dm_clone
else
	skip "dm-clone baseline" "no loadable $DM_CLONE_KO (scripts/build-dm-clone)"
fi

for chunk in $BENCH_CHUNKS; do
	name=$(size_name "$chunk")
	phase "peersnap $name: cold sequential read"
	ps_seq_read "$chunk" "$name"
	phase "peersnap $name: hydrate"
	ps_hydrate "$chunk" "$name"
	phase "peersnap $name: cold 4k reads"
	ps_cold_latency "$chunk" "$name"
done
phase "peersnap 4k: cold 4k reads"
ps_cold_latency 8 4k
phase done

ktap_finish
