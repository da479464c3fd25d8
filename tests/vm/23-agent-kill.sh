#!/bin/bash
# kill -9 the agent while more than a thousand reads are held on it, start
# a new one, and every read completes with the right data.
#
#   fio verify_only, 8 jobs x QD128 (libaio, O_DIRECT, 4 KiB random reads)
#        |
#   /dev/mapper/ps (4 KiB chunks: each read is its own fetch)
#        |  FETCH                      FETCH (resent on REGISTER)
#        v                                  v
#   peersnapd #1: SIGSTOP, then SIGKILL     peersnapd #2 --> /dev/ram1
#
# The first agent stops answering while its socket stays open, so the
# kernel holds every read; killing it closes the socket (NETLINK_URELEASE):
# the device must then say "disconnected" and still hold the reads, not
# fail them, and the next agent gets every pending request again.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=2323232323232323232323232323232323232323232323232323232323232323
IMG=/tmp/image
JOBS=8
QD=128
SIZE=$((32 << 20))			# 8192 chunks of 4 KiB
CHUNKS=$((SIZE / 4096))
HELD_MIN=1000
FIO_TIMEOUT=300
# The debug kernel fetches several times slower (more still with another
# test's VM beside it, CHECK_JOBS=2): the margin of scripts/vm's
# VM_TIMEOUT_SCALE, and a quarter of the data (2048 chunks, still more
# than the 1024 reads in flight).
if [ -n "${PEERSNAP_DEBUG_KERNEL:-}" ]; then
	FIO_TIMEOUT=900
	SIZE=$((8 << 20))
	CHUNKS=$((SIZE / 4096))
fi
fio_pid=

cleanup() {
	stop_agent
	stop_job "$fio_pid"
	dmsetup remove_all >/dev/null 2>&1
	true
}

require_cmd fio
load_module
make_brd 2 64

# One job both writes the image and verifies the device: fio's verify
# headers carry each 4 KiB block's offset and a crc32c of its data. Each job
# owns SIZE / JOBS bytes, so the held reads are all different chunks. fio
# runs under timeout(1), which passes a kill on to it.
fio_job() {
	timeout $FIO_TIMEOUT fio --name=kill --filename="$1" --size=$((SIZE / JOBS)) \
		--numjobs=$JOBS --offset_increment=$((SIZE / JOBS)) --bs=4k \
		--rw=randwrite --randrepeat=1 --verify=crc32c --verify_fatal=1 \
		--group_reporting --output-format=terse "${@:2}"
}

truncate -s $SIZE $IMG
fio_job $IMG --ioengine=psync --do_verify=0 >/dev/null ||
	bail_out "fio could not write the image"
ps_create ps $((SIZE / 512)) 8 $ID || bail_out "cannot create the device"

start_agent "$ID=$IMG"
kill -STOP "$agent_pid"
fio_job /dev/mapper/ps --verify_only --ioengine=libaio \
	--direct=1 --iodepth=$QD >/tmp/fio.out 2>&1 &
fio_pid=$!

if wait_for "$HELD_MIN reads held" held_at_least ps $HELD_MIN; then
	ok "$(ps_field ps inflight) reads held by a stopped agent"
else
	not_ok "$HELD_MIN reads held by a stopped agent (got $(ps_field ps inflight))"
fi

kmsg_mark
kill -KILL "$agent_pid"
wait "$agent_pid" 2>/dev/null
agent_pid=
wait_for "agent disconnected" agent_is ps disconnected
assert_eq disconnected "$(ps_field ps agent)" "kill -9: the device sees the agent gone"
assert_kmsg 'peersnap: agent \(port [0-9]+\) went away' \
	"kill -9: the kernel noticed the closed socket"
held=$(ps_field ps inflight)
if [ "$held" -ge $HELD_MIN ]; then
	ok "kill -9: $held reads still held, not failed"
else
	not_ok "kill -9: reads still held (inflight $held < $HELD_MIN)"
fi
assert_eq 0 "$(ps_field ps failed)" "kill -9: no fetch failed"
if kill -0 "$fio_pid" 2>/dev/null; then
	ok "kill -9: fio still waiting for its reads"
else
	not_ok "kill -9: fio still waiting for its reads (it ended)"
fi

start_agent "$ID=$IMG"
if wait "$fio_pid"; then
	ok "new agent: fio verify_only crc32c, $JOBS jobs x QD$QD, every block verified"
else
	not_ok "new agent: fio verify_only crc32c, $JOBS jobs x QD$QD (exit status $?)"
	diag "$(cat /tmp/fio.out)"
fi
fio_pid=
assert_eq 0 "$(ps_field ps failed)" "no fetch failed"
assert_eq 0 "$(ps_field ps inflight)" "nothing left in flight"
assert_eq "$CHUNKS/$CHUNKS" "$(ps_field ps present)" "every chunk present"
assert_eq $CHUNKS "$(ps_field ps fetched)" "every chunk fetched exactly once"
assert_eq 0 "$(ps_field ps rejected)" "no reply rejected"
kill -TERM "$agent_pid"
wait "$agent_pid"
assert_eq 0 $? "the new agent exits cleanly on SIGTERM"
agent_pid=

ktap_finish
