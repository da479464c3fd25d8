# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2034 # the NET_* names are for the scripts
#
# The transport benchmarks' link (tests/bench/5x-*.sh): two network
# namespaces, psA (the side that sends the data: peersnap-perf serve, the
# iperf3 client) and psB (the side that receives it: peersnap-perf fetch,
# the iperf3 server), joined by one veth pair with segmentation offloads
# off (netem would drop a whole GSO batch as one loss). Source after
# tests/bench/lib.sh:
#
#	net_setup
#	net_shape 50 1 20mbit      # RTT 50 ms, 1% loss each way, 20 Mbit/s
#	net_perf_serve 7000 --time 30 &
#	net_perf_fetch 7000 --time 10   # prints peersnap-perf's result line
#
# The RTT is split evenly over the two directions; the rate limits the data
# direction (A to B) only, with a queue of one bandwidth-delay product
# beyond the packets on the wire (a buffer TCP CUBIC fills without loss).

NET_A=10.77.0.1
NET_B=10.77.0.2
NET_DIR=/tmp/net-bench
# The data set both sides make (peersnap-perf --size, --chunk): 64 KiB
# chunks count goodput in steps of 0.5 Mbit over a second. No UDP GSO:
# netem queues and drops a GSO batch as one packet (it is cut into
# datagrams only after the qdisc), which TCP with GSO off never sends.
NET_DATA="--size 16 --chunk 64 --no-gso"
PERF=$(private_copy "$PEERSNAP_TOP/agent/peersnap-perf")

in_a() { ip netns exec psA "$@"; }
in_b() { ip netns exec psB "$@"; }

net_setup() {
	ip netns add psA && ip netns add psB || bail_out "ip netns add failed"
	ip link add vA netns psA type veth peer name vB netns psB ||
		bail_out "veth failed"
	in_a ip addr add $NET_A/24 dev vA
	in_b ip addr add $NET_B/24 dev vB
	for ns in psA psB; do
		ip netns exec $ns ip link set lo up
	done
	in_a ip link set vA up && in_b ip link set vB up ||
		bail_out "veth up failed"
	in_a ethtool -K vA gso off gro off tso off >/dev/null 2>&1 &&
		in_b ethtool -K vB gso off gro off tso off >/dev/null 2>&1 ||
		bail_out "ethtool -K failed"
	mkdir -p $NET_DIR
	# Identities: made on first use; each side learns the other's key.
	NET_KEY_A=$(net_key a) && NET_KEY_B=$(net_key b) ||
		bail_out "peersnap-perf cannot make identities"
	wait_for "the veth link" net_link_up || bail_out "the veth never came up"
}

net_link_up() {
	in_b ping -c 1 -W 1 $NET_A >/dev/null 2>&1
}

# net_key a|b: that side's public key (peersnap-perf prints it first).
net_key() {
	"$PERF" key --identity $NET_DIR/$1.key | sed -n 's/^pubkey=//p'
}

# net_shape RTT_MS LOSS_PCT RATE: netem on both ends.
net_shape() {
	local rtt=$1 loss=$2 rate=$3 half=$(($1 / 2)) limit
	# Packets on the wire plus one BDP of queue, at 1500 bytes a packet.
	limit=$(awk -v r="$rate" -v t="$rtt" 'BEGIN {
		bps = r + 0; if (r ~ /mbit$/) bps *= 1e6; else if (r ~ /kbit$/) bps *= 1e3
		print int(2 * bps / 8 / 1500 * t / 1000) + 32 }')
	in_a tc qdisc replace dev vA root netem delay ${half}ms loss ${loss}% \
		rate "$rate" limit "$limit" &&
		in_b tc qdisc replace dev vB root netem delay ${half}ms \
			loss ${loss}% limit "$limit" ||
		bail_out "tc netem failed (rtt $rtt, loss $loss, rate $rate)"
}

# net_perf_serve PORT ARGS...: a serving peersnap-perf in psA. It replaces
# the shell it runs in (exec), so `net_perf_serve ... &` leaves its pid in
# $! for the caller to stop.
net_perf_serve() {
	local port=$1
	shift
	exec ip netns exec psA "$PERF" serve --identity $NET_DIR/a.key --listen $NET_A --port "$port" \
		--peer $NET_B:$((port + 1))=$NET_KEY_B $NET_DATA "$@"
}

# net_perf_fetch PORT ARGS...: the fetching side in psB against the server
# on PORT; prints its result line. Killed after NET_RUN_LIMIT seconds.
NET_RUN_LIMIT=${NET_RUN_LIMIT:-120}
net_perf_fetch() {
	local port=$1
	shift
	timeout -k 5 "$NET_RUN_LIMIT" ip netns exec psB "$PERF" fetch --identity $NET_DIR/b.key --listen $NET_B \
		--port $((port + 1)) --peer $NET_A:"$port"=$NET_KEY_A $NET_DATA "$@" |
		grep '^mode=fetch'
}
