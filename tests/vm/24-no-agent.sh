#!/bin/bash
# Agent policy per device: with fail_if_no_agent, reads of absent chunks
# fail at once while hits still succeed; with agent_timeout 2 they fail
# after about 2 s (not before, not never); by default they wait for an
# agent and complete when one registers.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=4444444444444444444444444444444444444444444444444444444444444444
IMG=/tmp/image

load_module
make_brd 2 64
make_image $IMG $((8 << 20))

# Milliseconds taken by an O_DIRECT read of 4 KiB chunk $2 of device $1;
# prints "<ms> <ok|EIO>".
timed_read() {
	local t0 t1 res=ok
	t0=${EPOCHREALTIME/./}
	dd if="/dev/mapper/$1" of=/tmp/out bs=4k skip="$2" count=1 iflag=direct \
		status=none 2>/dev/null || res=EIO
	t1=${EPOCHREALTIME/./}
	echo "$(((t1 - t0) / 1000)) $res"
}

# Chunks 0-9 present (fetched with an agent), then no agent.
start_agent "$ID=$IMG"
ps_create ps 16384 8 $ID fail_if_no_agent
dd if=/dev/mapper/ps of=/dev/null bs=4k count=10 iflag=direct status=none
stop_agent
wait_for "agent gone" agent_is ps disconnected
assert_eq disconnected "$(ps_field ps agent)" "status shows the agent gone"

read -r ms res <<<"$(timed_read ps 5)"
assert_eq ok "$res" "fail_if_no_agent: a present chunk still reads"
cmp -s /tmp/out <(dd if=$IMG bs=4k skip=5 count=1 status=none) &&
	ok "fail_if_no_agent: ... with the image's data" ||
	not_ok "fail_if_no_agent: ... with the image's data"
read -r ms res <<<"$(timed_read ps 100)"
assert_eq EIO "$res" "fail_if_no_agent: an absent chunk fails with EIO"
# "At once" is structural: no request was made, so nothing could wait.
# The time (dd's start-up under TCG included) only guards against a wait.
assert_eq "0 0" "$(ps_field ps inflight) $(ps_field ps failed)" \
	"fail_if_no_agent: ... without queueing a fetch"
[ "$ms" -lt 10000 ] && ok "fail_if_no_agent: ... without waiting (${ms} ms)" ||
	not_ok "fail_if_no_agent: ... without waiting (${ms} ms)"
dmsetup remove ps

# agent_timeout 2: the held read fails after 2 s.
wipe_metadata
ps_create ps 16384 8 $ID agent_timeout 2
read -r ms res <<<"$(timed_read ps 200)"
assert_eq EIO "$res" "agent_timeout 2: an absent chunk fails with EIO"
[ "$ms" -ge 1900 ] && [ "$ms" -lt 10000 ] &&
	ok "agent_timeout 2: ... after about 2 s (${ms} ms)" ||
	not_ok "agent_timeout 2: ... after about 2 s (${ms} ms)"
assert_eq 1 "$(ps_field ps failed)" "agent_timeout 2: counted as one failed fetch"

# The message changes the policy of a live device: 0 = wait for ever.
dmsetup message ps 0 agent_timeout 0
dd if=/dev/mapper/ps of=/tmp/held bs=4k skip=300 count=1 iflag=direct status=none &
reader=$!
sleep 3
kill -0 $reader 2>/dev/null && ok "agent_timeout 0: the read waits past 3 s" ||
	not_ok "agent_timeout 0: the read waits past 3 s"
assert_eq 1 "$(ps_field ps inflight)" "agent_timeout 0: one fetch held"
start_agent "$ID=$IMG"
wait "$reader" && ok "agent_timeout 0: the read completes once an agent registers" ||
	not_ok "agent_timeout 0: the read completes once an agent registers"
cmp -s /tmp/held <(dd if=$IMG bs=4k skip=300 count=1 status=none) &&
	ok "agent_timeout 0: ... with the image's data" ||
	not_ok "agent_timeout 0: ... with the image's data"

ktap_finish
