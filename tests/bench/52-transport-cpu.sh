#!/bin/bash
# The transport's CPU cost (issue 6): peersnap-perf serve and fetch over
# the host's loopback, with UDP GSO/GRO and without, against iperf3 TCP on
# the same loopback for reference. Measured natively, not in the VM: TCG
# would measure its own emulation of the crypto code, not the CPU's.
# Each run moves as much as the two processes can for SECONDS; the cost is
# the CPU time of both (user + system, from getrusage and iperf3's own
# report) per byte delivered, and its inverse in Gbit/s per core.
# runs-on: host
#
# Results: cpu.psn.{gso,nogso}.{ns_per_byte,gbit_per_core,mbit} and
# cpu.tcp.{gbit_per_core,mbit} (medians; .rN per run).
set -uo pipefail
SECS=${PEERSNAP_BENCH_CPU_SECONDS:-5}
REPS=${PEERSNAP_BENCH_CPU_REPS:-5}
PERF=$PEERSNAP_TOP/agent/peersnap-perf
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
PORT=$((20000 + RANDOM % 20000))

RESULTS=${BENCH_RESULTS:-}
. "$PEERSNAP_TOP/tests/bench/stats.sh"

key() {
	"$PERF" key --identity "$DIR/$1.key" | sed -n 's/^pubkey=//p'
}

# psn_run [--no-gso]: "NS_PER_BYTE GBIT_PER_CORE MBIT" of one run.
psn_run() {
	local serve fetch srv
	"$PERF" serve --identity "$DIR/a.key" --listen 127.0.0.1 --port $PORT \
		--peer 127.0.0.1:$((PORT + 1))="$KB" --time $((SECS + 20)) "$@" \
		>"$DIR/serve.out" 2>&1 &
	srv=$!
	fetch=$(timeout $((SECS + 30)) "$PERF" fetch --identity "$DIR/b.key" \
		--listen 127.0.0.1 --port $((PORT + 1)) \
		--peer 127.0.0.1:$PORT="$KA" --time "$SECS" "$@" | grep '^mode=fetch')
	kill -TERM $srv 2>/dev/null
	wait $srv 2>/dev/null
	# The server's CPU time counts from its start: it idles before and after.
	serve=$(grep '^mode=serve' "$DIR/serve.out")
	[ -n "$fetch" ] && [ -n "$serve" ] || return 1
	awk -v b="$(field "$fetch" bytes)" -v c1="$(field "$fetch" cpu_s)" \
		-v c2="$(field "$serve" cpu_s)" -v m="$(field "$fetch" goodput_mbit)" \
		'BEGIN { c = c1 + c2; if (b == 0 || c == 0) exit 1
			 printf "%.2f %.3f %s\n", c * 1e9 / b, b * 8 / c / 1e9, m }'
}

# tcp_run: "GBIT_PER_CORE MBIT" of one iperf3 run (its own CPU report).
tcp_run() {
	local out
	out=$(timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p $((PORT + 2)) \
		-t "$SECS" -f m -V 2>&1) || return 1
	awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") m = $i }
	     /CPU Utilization/ { for (i = 1; i <= NF; i++) if ($i ~ /%$/ && $(i - 1) ~ /sender|receiver/) c += $i }
	     END { if (m == "" || c == 0) exit 1; printf "%.3f %s\n", m / 1000 / (c / 100), m }' <<<"$out"
}

# series NAME CMD...: REPS runs of CMD; records each field's median.
series() {
	local name=$1 i out a=() b=() c=()
	shift
	for ((i = 1; i <= REPS; i++)); do
		out=$("$@") || { echo "# $name run $i failed" >&2; return 1; }
		read -r x y z <<<"$out"
		a+=("$x") b+=("$y") c+=("${z:-}")
	done
	if [ "$name" = tcp ]; then
		result cpu.tcp.gbit_per_core "$(median "${a[@]}")" Gbit/s/core
		result cpu.tcp.mbit "$(median "${b[@]}")" Mbit/s
		return 0
	fi
	result cpu.psn.$name.ns_per_byte "$(median "${a[@]}")" ns/B
	result cpu.psn.$name.gbit_per_core "$(median "${b[@]}")" Gbit/s/core
	result cpu.psn.$name.mbit "$(median "${c[@]}")" Mbit/s
}

KA=$(key a) && KB=$(key b) || { echo "Bail out! no identities"; exit 1; }
iperf3 -s -p $((PORT + 2)) -D --logfile "$DIR/iperf3.log" || { echo "Bail out! iperf3 -s"; exit 1; }
trap 'pkill -f "iperf3 -s -p $((PORT + 2))"; rm -rf "$DIR"' EXIT
sleep 0.5
status=0
series gso psn_run || status=1
series nogso psn_run --no-gso || status=1
series tcp tcp_run || status=1
exit $status
