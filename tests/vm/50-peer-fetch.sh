#!/bin/bash
# Chunks from a peer over the transport, end to end: agent A serves two
# published 32 MiB images (8 MiB on the debug kernel) from its network
# namespace without registering with the kernel (--no-kernel); agent B, in
# the root namespace (the module takes its agent from init_net only), has no
# copy of any chunk, only the manifests (copied from A's store: the interim
# way until manifests travel over the swarm). A veth pair joins them,
# segmentation offloads off (or netem drops whole GSO batches as one loss),
# netem 5 ms delay and 1% loss each way. B's device passes fio's verify of
# the first image (written by fio with crc32c headers in every 4 KiB block:
# the verify reads it cold, 16 reads in flight), reads whole and equals the
# image, every chunk counted as a peer's, none from an origin; then A is
# killed mid-hydration of the second image and restarted: the hydration
# completes and the device equals that image.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

require_cmd ip tc ethtool fio

NS=psA
IP_A=10.99.0.1
IP_B=10.99.0.2
PORT=7390
CHUNK=65536
# The debug kernel moves data several times slower (publishing hashes at
# about 6 MiB/s there): 8 MiB (128 chunks) take the same paths.
MIB=32
[ -z "${PEERSNAP_DEBUG_KERNEL:-}" ] || MIB=8
CHUNKS=$((MIB * 1048576 / CHUNK))
DIR=/tmp/pf
PEERSNAP=$(private_copy "${PEERSNAP_CLI:-$PEERSNAP_TOP/agent/peersnap}")
a_pid=

cleanup() {
	stop_job "$a_pid"
	stop_agent
	dmsetup remove_all >/dev/null 2>&1
	ip netns del $NS 2>/dev/null
	ip link del vB 2>/dev/null
	true
}

psa() {
	"$PEERSNAP" --config $DIR/a.conf "$@"
}

psb() {
	"$PEERSNAP" --config $DIR/b.conf "$@"
}

# counter NAME: one of the agent's counters.
counter() {
	agent_counter "$1" psb
}

# write_conf NAME IP PEER_IP PEER_KEY [TRUSTED_KEY]
write_conf() {
	mkdir -p $DIR/$1
	{
		printf '[agent]\nlisten = %s\nport = %s\n' "$2" $PORT
		printf 'state_dir = %s\ncontrol_socket = %s\n' $DIR/$1 $DIR/$1/ctl.sock
		[ -n "$4" ] && printf '[peer]\npeer = %s:%s %s\n' "$3" $PORT "$4"
		[ -n "$5" ] && printf '[trust]\npublisher = %s\n' "$5"
	} >$DIR/$1.conf
}

control_up() {
	[ -S "$1" ] && kill -0 "$2" 2>/dev/null
}

start_a() {
	echo "--- peersnapd A (netns $NS, --no-kernel)" >>$AGENT_LOG
	ip netns exec $NS "$PEERSNAPD" --foreground --no-kernel \
		--config $DIR/a.conf >>$AGENT_LOG 2>&1 &
	a_pid=$!
	wait_for "agent A's control socket" control_up $DIR/a/ctl.sock "$a_pid" ||
		bail_out "agent A did not start (see $AGENT_LOG)"
}

start_b() {
	local registered
	registered=$(agent_registrations)
	echo "--- peersnapd B (root namespace)" >>$AGENT_LOG
	"$PEERSNAPD" --foreground --config $DIR/b.conf >>$AGENT_LOG 2>&1 &
	agent_pid=$!
	wait_for "agent B registered" agent_registered_after "$registered" ||
		bail_out "agent B did not register (see $AGENT_LOG)"
}

# shape DEV [NETNS]: no offloads, 5 ms delay and 1% loss out of DEV.
shape() {
	local dev=$1 run=()
	[ -n "$2" ] && run=(ip netns exec "$2")
	"${run[@]}" ethtool -K "$dev" gso off gro off tso off >/dev/null 2>&1 ||
		bail_out "ethtool -K $dev failed"
	"${run[@]}" tc qdisc add dev "$dev" root netem delay 5ms loss 1% ||
		bail_out "tc netem on $dev failed"
}

load_module
make_brd 4 64
rm -rf $DIR
mkdir -p $DIR

# The link: vA in namespace psA, vB in the root namespace.
ip netns add $NS || bail_out "ip netns add failed"
ip link add vB type veth peer name vA || bail_out "veth failed"
ip link set vA netns $NS
ip addr add $IP_B/24 dev vB
ip link set vB up
ip netns exec $NS ip addr add $IP_A/24 dev vA
ip netns exec $NS ip link set vA up
ip netns exec $NS ip link set lo up
shape vB
shape vA $NS
link_up() {
	ip -o link show vB | grep -q 'state UP'
}
wait_for "the veth link" link_up && ok "the veth link is up" ||
	not_ok "the veth link is up"

# Identities: each configuration first without its peer (keygen needs
# only the state dir), then with the other's key.
write_conf a $IP_A
write_conf b $IP_B
KA=$(psa keygen 2>/dev/null | tail -1)
KB=$(psb keygen 2>/dev/null | tail -1)
assert_eq 64 "${#KA}" "keygen A prints a key"
assert_eq 64 "${#KB}" "keygen B prints a key"
write_conf a $IP_A $IP_B "$KB"
write_conf b $IP_B $IP_A "$KA" "$KA"

expect_failure "--no-kernel without peers is refused" \
	"$PEERSNAPD" --foreground --no-kernel --state-dir $DIR/none

# A publishes two images and serves them; the first carries fio's
# verify headers (FIO_IMAGE: the same job writes it and verifies B's device).
FIO_IMAGE=(--rw=write --bs=4k --size=${MIB}M --verify=crc32c --verify_fatal=1)
fio --name=image1 --filename=$DIR/image1 "${FIO_IMAGE[@]}" --do_verify=0 \
	--output=/dev/null || bail_out "fio cannot write image 1"
make_image $DIR/image2 $((MIB << 20))
start_a
ID1=$(psa publish $DIR/image1 --name one --chunk-size 64k) || bail_out "publish 1 failed"
ID2=$(psa publish $DIR/image2 --name two --chunk-size 64k) || bail_out "publish 2 failed"

# B gets the manifests, not the images.
mkdir -p $DIR/b/manifests $DIR/b/index
cp $DIR/a/manifests/$ID1 $DIR/a/manifests/$ID2 $DIR/b/manifests/
cp $DIR/a/index/* $DIR/b/index/
start_b
expect_success "B lists snapshot 1" sh -c "'$PEERSNAP' --config $DIR/b.conf ls | grep -q '${ID1:0:16}'"

# 1. A cold device on B reads whole from A.
expect_success "attach on B" psb attach "$ID1" --metadata /dev/ram0 --cache /dev/ram1 pf1
expect_success "fio verify of B's cold device (every block from A)" \
	fio --name=verify --filename=/dev/mapper/pf1 "${FIO_IMAGE[@]}" \
	--verify_only --direct=1 --ioengine=libaio --iodepth=16 --output=/dev/null
assert_eq "$(sha256sum <$DIR/image1)" "$(device_sum pf1)" "B's device equals image 1"
assert_eq $CHUNKS "$(counter fetch.chunks_peer)" "every chunk came from the peer"
assert_eq 0 "$(counter fetch.chunks_origin)" "none from an origin"
assert_eq 0 "$(counter fetch.hash_mismatch)" "no chunk failed its hash"
expect_success "detach" psb detach pf1

# 2. A dies mid-hydration and comes back: the hydration completes.
wipe_metadata
peer0=$(counter fetch.chunks_peer)
expect_success "attach image 2 on B" psb attach "$ID2" --metadata /dev/ram0 --cache /dev/ram2 pf2
psb hydrate pf2 >/dev/null 2>&1 &
hydrate_pid=$!
wait_for "a quarter hydrated" sh -c "[ \$(dmsetup status pf2 | awk '{split(\$6, p, \"/\"); print p[1]}') -ge $((CHUNKS / 4)) ]" ||
	not_ok "hydration did not start"
at_kill=$(chunks_present pf2)
kill -9 "$a_pid"
wait "$a_pid" 2>/dev/null
a_pid=
[ "$at_kill" -lt $CHUNKS ] && ok "A killed mid-hydration ($at_kill/$CHUNKS present)" ||
	not_ok "A killed mid-hydration ($at_kill/$CHUNKS present)"
sleep 1
start_a
# B's connection hears nothing for a few PTOs (2-5 s) and renews the
# session (docs/protocol.md, "Restarts"): the new A serves the rest.
if wait "$hydrate_pid"; then
	ok "hydration completed across A's restart"
else
	not_ok "hydration completed across A's restart"
fi
assert_eq "$CHUNKS/$CHUNKS" "$(ps_field pf2 present)" "every chunk present"
assert_eq "$(sha256sum <$DIR/image2)" "$(device_sum pf2)" "B's device equals image 2"
assert_eq $CHUNKS "$(($(counter fetch.chunks_peer) - peer0))" "every chunk of image 2 came from the peer"
assert_eq 0 "$(counter fetch.chunks_origin)" "still none from an origin"
expect_success "detach" psb detach pf2

ktap_finish
