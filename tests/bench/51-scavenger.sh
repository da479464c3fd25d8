#!/bin/bash
# The transport's scavenger class (issue 6): background transfers (hydration,
# prefetch) must fill an idle link yet yield to everything else. Over one
# netem link (tests/bench/net.sh; RATE, RTT ms, no loss), with ping from B
# to A measuring the queue the data direction holds:
#
#   alone    a scavenger transfer (peersnap-perf fetch --class scavenger)
#            by itself: its share of the link (goal >= 0.8) and the
#            queueing delay it adds over the idle link's RTT (goal <= 60 ms)
#   demand   a demand-class transfer from a second server, alone: its rate
#            and RTT under load (the reference for the next step)
#   first    the scavenger running, a demand transfer from 2 s in to 2 s
#            before its end: the share of the demand's goodput the
#            scavenger keeps (goal <= 0.2) and the delay it adds over the
#            demand transfer alone (<= 60 ms)
#   late     the same with the demand transfer first (the scavenger a
#            latecomer: its base delay is measured over the demand's queue)
#
# Shares are goodput (whole hash-checked chunks) over the rate limit.
# vm-smp: 2
# vm-cpu: qemu64
# vm-timeout: 900
#
# Results: scav.{rate,rtt}, scav.base.ping_ms, scav.alone.{mbit,share,
# ping_ms,delay_ms}, scav.demand.alone.{mbit,ping_ms},
# scav.first.{demand.mbit,share,delay_ms}, scav.late.{mbit,share,delay_ms}.
. "$PEERSNAP_TOP/tests/bench/lib.sh"
. "$PEERSNAP_TOP/tests/bench/net.sh"

RATE=${PEERSNAP_BENCH_NET_RATE:-10mbit}
RTT=${PEERSNAP_BENCH_SCAV_RTT:-50}
SECS=${PEERSNAP_BENCH_SCAV_SECONDS:-12}
SCAV_PORT=7000
DEMAND_PORT=7010
NET_RUN_LIMIT=$((SECS + 60))
MBIT=${RATE%mbit}

# ping_p50 SECONDS: the median RTT (ms) of pings B -> A over SECONDS.
ping_p50() {
	in_b ping -i 0.2 -c $(($1 * 5)) -W 2 $NET_A 2>/dev/null |
		sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' | sort -g |
		awk '{ v[NR] = $1 } END { if (!NR) exit 1; print v[int((NR + 1) / 2)] }'
}

# transfer PORT CLASS SECONDS OUT: a server on PORT and a fetch of CLASS
# for SECONDS; the fetch's goodput (Mbit/s) goes to OUT.
transfer() {
	local port=$1 cls=$2 secs=$3 out=$4 srv line
	net_perf_serve "$port" --time $((secs + 40)) >$NET_DIR/serve-$port.out 2>&1 &
	srv=$!
	line=$(net_perf_fetch "$port" --class "$cls" --time "$secs")
	kill -TERM $srv 2>/dev/null
	wait $srv 2>/dev/null
	diag "$cls: ${line:-no result}" >&2
	[ "$(field "$line" failed)" = 0 ] || return 1
	field "$line" goodput_mbit >"$out"
}

# measured_ping DELAY SECONDS OUT: pings for SECONDS after DELAY, p50 to OUT.
measured_ping() {
	sleep "$1"
	ping_p50 "$2" >"$3"
}

share() {
	awk -v m="$1" -v r="$MBIT" 'BEGIN { printf "%.3f\n", m / r }'
}

minus() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", a - b }'
}

net_setup
net_shape "$RTT" 0 "$RATE"
result scav.rate "$MBIT" Mbit/s
result scav.rtt "$RTT" ms
base=$(ping_p50 4) || bail_out "ping across the idle link failed"
result scav.base.ping_ms "$base" ms

# Alone.
measured_ping 4 $((SECS - 6)) $NET_DIR/ping.alone &
transfer $SCAV_PORT scavenger "$SECS" $NET_DIR/scav.alone ||
	bail_out "the scavenger transfer failed"
wait
result scav.alone.mbit "$(cat $NET_DIR/scav.alone)" Mbit/s
result scav.alone.share "$(share "$(cat $NET_DIR/scav.alone)")" of-link
result scav.alone.ping_ms "$(cat $NET_DIR/ping.alone)" ms
result scav.alone.delay_ms "$(minus "$(cat $NET_DIR/ping.alone)" "$base")" ms

# The demand transfer alone.
measured_ping 4 $((SECS - 6)) $NET_DIR/ping.demand &
transfer $DEMAND_PORT demand "$SECS" $NET_DIR/demand.alone ||
	bail_out "the demand transfer failed"
wait
result scav.demand.alone.mbit "$(cat $NET_DIR/demand.alone)" Mbit/s
result scav.demand.alone.ping_ms "$(cat $NET_DIR/ping.demand)" ms

# Both, in either order; the later one runs entirely inside the earlier.
#   scavenger first (hydration running, then a read's demand arrives): the
#   share the scavenger keeps is what the demand transfer loses against
#   its run alone, 1 - beside / alone.
#   demand first (the scavenger a latecomer): its own goodput over the
#   rate limit.
# Either way the ping runs while both do; its added delay is against the
# demand transfer alone.
beside() {
	local first=$1 second=$2 pid
	transfer $((first == 1 ? SCAV_PORT : DEMAND_PORT)) \
		"$([ "$first" = 1 ] && echo scavenger || echo demand)" \
		$((SECS + 4)) $NET_DIR/first &
	pid=$!
	sleep 2
	measured_ping 4 $((SECS - 6)) $NET_DIR/ping.beside &
	transfer $((first == 1 ? DEMAND_PORT : SCAV_PORT)) "$second" "$SECS" \
		$NET_DIR/second || bail_out "the $second transfer failed"
	wait $pid || bail_out "the first transfer failed"
	wait
}

beside 1 demand
result scav.first.demand.mbit "$(cat $NET_DIR/second)" Mbit/s
result scav.first.share "$(awk -v b="$(cat $NET_DIR/second)" \
	-v a="$(cat $NET_DIR/demand.alone)" 'BEGIN { printf "%.3f\n", 1 - b / a }')" of-demand
result scav.first.delay_ms "$(minus "$(cat $NET_DIR/ping.beside)" \
	"$(cat $NET_DIR/ping.demand)")" ms

beside 2 scavenger
result scav.late.mbit "$(cat $NET_DIR/second)" Mbit/s
result scav.late.share "$(share "$(cat $NET_DIR/second)")" of-link
result scav.late.delay_ms "$(minus "$(cat $NET_DIR/ping.beside)" \
	"$(cat $NET_DIR/ping.demand)")" ms
# Every transfer above finished with no failed chunk (transfer() checks);
# each also moved data.
for f in scav.alone demand.alone first second; do
	awk -v m="$(cat $NET_DIR/$f)" 'BEGIN { exit !(m > 0) }' &&
		ok "$f: $(cat $NET_DIR/$f) Mbit/s of hash-checked chunks" ||
		not_ok "$f moved no data"
done
ktap_finish
