#!/bin/bash
# kill -9 the agent while partial writes to absent chunks wait on their
# fetches; a new agent serves them and every write lands on top of the
# image's data: the written 4 KiB blocks verify (fio crc32c) and every other
# block of those chunks is the image's.
#
#   fio randwrite, 4 KiB at offset 8 KiB of each 64 KiB chunk, QD32
#        |  (a partial write to an absent chunk waits for its fetch)
#   /dev/mapper/ps (64 KiB chunks)
#        |  FETCH                      FETCH (resent on REGISTER)
#        v                                  v
#   peersnapd #1: SIGSTOP, then SIGKILL     peersnapd #2
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=3434343434343434343434343434343434343434343434343434343434343434
IMG=/tmp/image
CHUNKS=128				# of 64 KiB: 8 MiB
SIZE=$((CHUNKS << 16))
HELD_MIN=32
BLOCKMATCH=$(private_copy "$PEERSNAP_TOP/build/tools/blockmatch")
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
make_image $IMG $SIZE
ps_create ps $((SIZE / 512)) 128 $ID || bail_out "cannot create the device"

start_agent "$ID=$IMG"
kill -STOP "$agent_pid"
# rw=write:60k: 4 KiB writes with 60 KiB holes, at least one per chunk,
# none at its start.
timeout 300 fio --name=w --filename=/dev/mapper/ps --offset=8k --size=$SIZE \
	--bs=4k --rw=write:60k --direct=1 --ioengine=libaio --iodepth=32 \
	--verify=crc32c --verify_fatal=1 --write_iolog=/tmp/fio.iolog \
	--output-format=terse >/tmp/fio.out 2>&1 &
fio_pid=$!

if wait_for "$HELD_MIN writes held" held_at_least ps $HELD_MIN; then
	ok "$(ps_field ps inflight) fetches held for partial writes by a stopped agent"
else
	not_ok "$HELD_MIN fetches held by a stopped agent (got $(ps_field ps inflight))"
fi
assert_eq 0 "$(ps_field ps dirty)" "no write has landed yet"

kill -KILL "$agent_pid"
wait "$agent_pid" 2>/dev/null
agent_pid=
wait_for "agent disconnected" agent_is ps disconnected
assert_eq disconnected "$(ps_field ps agent)" "kill -9: the device sees the agent gone"
held=$(ps_field ps inflight)
if [ "$held" -ge $HELD_MIN ]; then
	ok "kill -9: $held fetches still held, their writes not failed"
else
	not_ok "kill -9: writes still held (inflight $held < $HELD_MIN)"
fi
if kill -0 "$fio_pid" 2>/dev/null; then
	ok "kill -9: fio still waiting for its writes"
else
	not_ok "kill -9: fio still waiting for its writes (it ended)"
fi

start_agent "$ID=$IMG"
if wait "$fio_pid"; then
	ok "new agent: every write completed and verifies (crc32c)"
else
	not_ok "new agent: every write completed and verifies (fio exit status $?)"
	diag "$(cat /tmp/fio.out)"
fi
fio_pid=
assert_eq 0 "$(ps_field ps failed)" "no fetch failed"
assert_eq $CHUNKS "$(ps_field ps fetched)" "each chunk fetched once"
assert_eq $CHUNKS "$(ps_field ps dirty)" "each chunk dirty"
# The blocks fio wrote (its I/O log) are its own (a verify header: never
# equal to the image's block); all others are the image's.
matches=$("$BLOCKMATCH" 4096 /dev/mapper/ps $IMG)
written=$(awk '$3 == "write" { print $4 }' /tmp/fio.iolog | sort -u | wc -l)
assert_eq "$((CHUNKS * 16 - written)) $IMG|$written none" \
	"$(grep -v '^#' <<<"$matches" | paste -sd'|')" \
	"the $written blocks written are fio's, all others the image's"
dmsetup remove ps
ps_create ps $((SIZE / 512)) 128 $ID
assert_eq "$CHUNKS/$CHUNKS" "$(ps_field ps present)" "re-created: every chunk present"
assert_eq "$matches" "$("$BLOCKMATCH" 4096 /dev/mapper/ps $IMG)" \
	"re-created: the same data"
assert_eq 0 "$(ps_field ps fetched)" "re-created: nothing fetched"

ktap_finish
