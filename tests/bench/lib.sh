# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2034 # the BENCH_* knobs are for the scripts
#
# Helpers for the benchmarks (tests/bench/NN-*.sh), which scripts/bench runs
# one per VM boot with `scripts/vm run`. Source it first; it brings in the
# VM test helpers (tests/vm/lib.sh: KTAP, defer, make_brd; tests/vm/
# peersnap.sh: start_agent, ps_create, ps_field, and the default cleanup,
# which stops the agent and removes every dm device):
#
#	. "$PEERSNAP_TOP/tests/bench/lib.sh"
#	load_module
#	result hit.linear.iops 45123 IOPS
#
# Results are lines `bench: <name> <value> <unit>` on stdout and in
# /out/results.txt, which scripts/bench collects; sanity checks (the data
# read is the image, every chunk was fetched once) are KTAP `ok` lines, so
# a benchmark that measured the wrong thing fails.
#
# Knobs (scripts/bench passes PEERSNAP_* through to the guest):
#	PEERSNAP_BENCH_RUNTIME=8      seconds per fio hit-path run
#	PEERSNAP_BENCH_REPS=4         hit-path runs per device, in ABBA order
#	PEERSNAP_BENCH_MISS_REPS=2    miss-path runs per device and chunk size
#	PEERSNAP_BENCH_CHUNKS="128 512 2048"   peersnap chunk sizes (sectors)
#	PEERSNAP_BENCH_DM_CLONE=path  dm-clone.ko (scripts/build-dm-clone)

. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"
. "$PEERSNAP_TOP/tests/bench/stats.sh"

BENCH_RUNTIME=${PEERSNAP_BENCH_RUNTIME:-8}
BENCH_REPS=${PEERSNAP_BENCH_REPS:-4}
BENCH_MISS_REPS=${PEERSNAP_BENCH_MISS_REPS:-2}
BENCH_CHUNKS=${PEERSNAP_BENCH_CHUNKS:-128 512 2048}
RESULTS=/out/results.txt

# Any fio run longer than this is hung (a held read that never returns).
FIO_TIMEOUT=$((BENCH_RUNTIME * 3 + 120))


# fio_terse FIO_ARGS...: runs one fio job and prints its terse (version 3)
# line; the fields scripts use are read_field below. Fails on a fio error.
fio_terse() {
	local out
	out=$(timeout -k 5 "$FIO_TIMEOUT" fio --name=bench --output-format=terse \
		--terse-version=3 --percentile_list=50:99 "$@" 2>&1) || {
		diag "fio $* failed:"
		diag "$out"
		return 1
	}
	grep '^3;' <<<"$out" | tail -n 1
}

# read_field LINE NAME: a read-side field of a terse line: kib (KiB moved),
# bw (KiB/s), iops, runtime (ms), clat_mean (us), p50, p99 (clat, us).
read_field() {
	terse_field "$1" "$2" 0
}

# write_field LINE NAME: the same field of the write side.
write_field() {
	terse_field "$1" "$2" 41
}

# terse_field LINE NAME SHIFT: NAME's field, SHIFT fields after the read
# side's (a terse v3 line has 41 fields per direction).
terse_field() {
	awk -F';' -v f="$2" -v o="$3" '{
		if (f == "kib") print $(6 + o)
		else if (f == "bw") print $(7 + o)
		else if (f == "iops") print $(8 + o)
		else if (f == "runtime") print $(9 + o)
		else if (f == "clat_mean") printf "%.0f\n", $(16 + o)
		else if (f == "p50" || f == "p99") {
			want = (f == "p50" ? "50.000000%" : "99.000000%")
			for (i = 18 + o; i <= 37 + o; i++) {
				split($i, kv, "=")
				if (kv[1] == want) { print kv[2]; exit }
			}
		}
	}' <<<"$1"
}

# kib_to_mb KIB_PER_S: MB/s (10^6 bytes, as fio and dd print them).
kib_to_mb() {
	awk -v k="$1" 'BEGIN { printf "%.1f\n", k * 1024 / 1e6 }'
}

# stamp VAR: wall-clock microseconds into VAR, without a fork (under TCG
# on a busy host starting a process took up to a quarter of a second).
stamp() {
	printf -v "$1" '%s' "${EPOCHREALTIME/./}"
}

# rate_mb BYTES USECS: MB/s.
rate_mb() {
	awk -v b="$1" -v us="$2" 'BEGIN { printf "%.1f\n", b / (us / 1e6) / 1e6 }'
}

# dm-poll (tests/bench/dm-poll.c) times a background copy from the
# message that starts it to the first status that shows it done, with an
# ioctl every 10 ms: polling with dmsetup cost ~0.1 s of TCG CPU per call,
# a fifth of the CPU the copy itself needed. scripts/bench builds it;
# without it, it is compiled here.
DM_POLL=${PEERSNAP_BENCH_DM_POLL:-}
if [ ! -x "$DM_POLL" ]; then
	DM_POLL=/tmp/private-bin/dm-poll
	mkdir -p /tmp/private-bin
	cc -O2 -o "$DM_POLL" "$PEERSNAP_TOP/tests/bench/dm-poll.c" ||
		bail_out "cannot build tests/bench/dm-poll.c"
else
	DM_POLL=$(private_copy "$DM_POLL")
fi

# timed_copy VAR NAME MESSAGE WORD CONDITION: sends MESSAGE to device NAME
# and waits until status parameter WORD meets CONDITION (see dm-poll.c);
# the microseconds it took go to VAR.
timed_copy() {
	local _tc_us
	_tc_us=$("$DM_POLL" -m "$3" -t 600 "$2" "$4" "$5") || return 1
	printf -v "$1" '%s' "$_tc_us"
}

# zero_dev DEV [MIB]: zeroes the first MIB MiB of DEV (all of it without
# MIB). Debian 6.1's brd has no discard, so this is how a run starts from a
# cold device: the pages stay allocated, which keeps page allocation out
# of every measurement alike.
zero_dev() {
	local mib=${2:-$(($(blockdev --getsize64 "$1") >> 20))}
	dd if=/dev/zero of="$1" bs=1M count="$mib" oflag=direct status=none
}

_phase_t0=
stamp _phase_t0
# phase WHAT: a diagnostic with the seconds since the script started, so a
# slow run shows where its time went.
phase() {
	local now
	stamp now
	diag "$(awk -v us=$((now - _phase_t0)) 'BEGIN { printf "%6.1f s", us / 1e6 }'): $*"
}

# check_image DEV FILE WHAT: ok if DEV holds exactly FILE. A buffered
# read: piping dd into cmp costs a cross-CPU wakeup per 64 KiB, which
# under TCG on a busy host took 30 s for 256 MiB.
check_image() {
	if cmp -s "$1" "$2"; then
		ok "$3"
	else
		not_ok "$3"
	fi
	blockdev --flushbufs "$1"
}

# cold_iolog FILE DEV COUNT CHUNK_BYTES TOTAL_CHUNKS [OP [OFFSET [FIRST]]]:
# an fio replay log of COUNT 4 KiB OPs (read), each at OFFSET (0) into a
# different random chunk of chunks FIRST (0) to FIRST + TOTAL_CHUNKS - 1,
# so that every one on a cold device is a miss.
cold_iolog() {
	local file=$1 dev=$2 count=$3 chunk_bytes=$4 chunks=$5 op=${6:-read}
	local offset=${7:-0} first=${8:-0} c
	[ "$count" -le "$chunks" ] || count=$chunks
	{
		echo "fio version 2 iolog"
		echo "$dev add"
		echo "$dev open"
		for c in $(shuf -i "$first-$((first + chunks - 1))" -n "$count"); do
			echo "$dev $op $((c * chunk_bytes + offset)) 4096"
		done
		echo "$dev close"
	} >"$file"
}
