#!/bin/bash
# Snapshots (the `peersnap` CLI and the agent's store):
#
#   publish    `peersnap publish` of a 64 MiB image of random data (64 KiB
#              chunks: hashing every chunk, building and signing the
#              manifest, the agent verifying and storing it) against
#              `b2sum -l 256` of the same file, both from the page cache,
#              one CPU: MB/s each, median of REPS runs, and their ratio.
#   commit     `peersnap commit` of a hydrated 64 MiB writable volume
#              (64 KiB chunks, 1024 of them) after whole-chunk writes to
#              1%, 10% and 100% of its chunks: seconds each. A commit reads
#              and hashes only the dirty chunks, so its time should follow
#              the dirty fraction, with publish's full hashing as the 100%
#              reference.
#
# The VM's CPU is plain x86-64 (qemu64): with `-cpu max` libsodium picks
# its AVX2 BLAKE2b, which TCG emulates about 5x slower than b2sum's plain
# code (64 MiB: 10.2 s against 1.8 s), so the ratio would measure TCG.
# vm-cpu: qemu64
#
# Results: snap.publish.mbps (the whole command), snap.publish_hash.mbps
# (its hashing, as it reports it), snap.b2sum.mbps (and their .rN),
# snap.commit.{1,10,100}pct.seconds, snap.commit.{..}.chunks.
. "$PEERSNAP_TOP/tests/bench/lib.sh"

CONF=/tmp/peersnap.conf
IMG=/tmp/image
SIZE_MIB=64
CHUNK=65536
CHUNKS=$((SIZE_MIB * 1048576 / CHUNK))
REPS=${PEERSNAP_BENCH_SNAP_REPS:-3}
PEERSNAP=$(private_copy "$PEERSNAP_TOP/agent/peersnap")

psn() {
	"$PEERSNAP" --config $CONF "$@"
}

# seconds CMD...: wall time of CMD in seconds (3 decimals); fails with it.
seconds() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null || return 1
	t1=$(date +%s%N)
	awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f\n", ns / 1e9 }'
}

mbps() {
	awk -v s="$1" -v mib=$SIZE_MIB 'BEGIN { printf "%.1f\n", mib * 1.048576 / s }'
}

# commit_after PCT: writes whole chunks to PCT% of a fresh volume's
# chunks (spread evenly), commits, reports the time.
commit_after() {
	local pct=$1 n step c t id
	n=$((CHUNKS * pct / 100))
	step=$((CHUNKS / n))
	dd if=/dev/zero of=/dev/ram0 bs=1M count=1 oflag=direct status=none
	psn attach "$ID" --metadata /dev/ram0 --cache /dev/ram1 vol >/dev/null ||
		bail_out "attach failed"
	psn hydrate vol >/dev/null || bail_out "hydrate failed"
	for ((c = 0; c < CHUNKS; c += step)); do
		head -c $CHUNK /dev/urandom
	done | dd of=/tmp/chunks bs=1M iflag=fullblock status=none
	# Whole chunks at their offsets (no read-modify-write): one dd per
	# chunk, or one for the whole device.
	if [ "$step" = 1 ]; then
		dd if=/tmp/chunks of=/dev/mapper/vol bs=1M oflag=direct status=none
	else
		for ((c = 0; c < n; c++)); do
			dd if=/tmp/chunks of=/dev/mapper/vol bs=$CHUNK skip=$c \
				seek=$((c * step)) count=1 oflag=direct status=none
		done
	fi
	assert_eq "$n" "$(ps_field vol dirty)" "commit $pct%: $n chunks dirty"
	t=$(seconds psn commit vol --name "v-$pct") || bail_out "commit failed"
	result snap.commit.${pct}pct.seconds "$t" s
	result snap.commit.${pct}pct.chunks "$n" chunks
	psn detach vol || bail_out "detach failed"
}

require_cmd b2sum
load_module
make_brd 2 $SIZE_MIB
make_image $IMG $((SIZE_MIB << 20))
printf '[agent]\nstate_dir = /run/peersnapd\n' >$CONF
mkdir -p /run/peersnapd
psn keygen >/dev/null || bail_out "keygen failed"
start_agent
cat $IMG >/dev/null

phase "publish vs b2sum"
for r in $(seq "$REPS"); do
	tb=$(seconds taskset -c 0 b2sum -l 256 $IMG) || bail_out "b2sum failed"
	# Each run a new name: a new snapshot id, so nothing is skipped. The
	# CLI reports its own hashing rate ("hashed at X MiB/s") on stderr.
	tp=$(seconds taskset -c 0 "$PEERSNAP" --config $CONF publish $IMG \
		--name "bench-$r" --chunk-size 64k 2>/tmp/publish.err) ||
		bail_out "publish failed: $(cat /tmp/publish.err)"
	hash=$(sed -n 's/.*hashed at \([0-9.]*\) MiB\/s.*/\1/p' /tmp/publish.err)
	[ -n "$hash" ] || bail_out "publish did not report its hashing rate"
	hash=$(awk -v m="$hash" 'BEGIN { printf "%.1f\n", m * 1.048576 }')
	result snap.b2sum.mbps.r$r "$(mbps "$tb")" MB/s
	result snap.publish.mbps.r$r "$(mbps "$tp")" MB/s
	result snap.publish_hash.mbps.r$r "$hash" MB/s
	pub[r]=$(mbps "$tp")
	hashed[r]=$hash
	b2[r]=$(mbps "$tb")
done
result snap.publish.mbps "$(median "${pub[@]}")" MB/s
result snap.publish_hash.mbps "$(median "${hashed[@]}")" MB/s
result snap.b2sum.mbps "$(median "${b2[@]}")" MB/s

phase "commit vs dirty fraction"
ID=$(psn publish $IMG --name base --chunk-size 64k 2>/dev/null) || bail_out "publish failed"
for pct in 1 10 100; do
	commit_after $pct
done

ktap_finish
