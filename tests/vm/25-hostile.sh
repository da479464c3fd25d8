#!/bin/bash
# A hostile agent (agent/peersnap-hostile) sends the replies that
# uapi/linux/peersnap.h says the kernel refuses: unknown and mismatched
# replies, garbage attributes, out-of-range status, a duplicate, a reply
# from a socket that is not the agent, and all of that without
# CAP_NET_ADMIN. Every refusal must be the header's errno, counted where
# the header says, and change nothing: the read held meanwhile is then
# served by a real agent with the image's data. Only "duplicate" answers
# (-EIO): its read fails with EIO, and the next read of that chunk works.
#
#   dd (held) --> /dev/mapper/ps --FETCH--> peersnap-hostile MODE
#                                  <--crafted FETCH_DONE, REGISTER, ...
#
# The counting rule (top comment of the header): a reply the attribute
# policy refuses, or one without CAP_NET_ADMIN, never reaches peersnap and
# is not counted; a reply peersnap refuses is counted once: on the device
# if it names the pending request, else in the module parameter
# rejected_replies.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=2525252525252525252525252525252525252525252525252525252525252525
IMG=/tmp/image
HOSTILE=$(private_copy "$PEERSNAP_TOP/agent/peersnap-hostile")
PARAM=/sys/module/dm_peersnap/parameters/rejected_replies
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
reader=

cleanup() {
	stop_agent
	stop_job "$reader"
	dmsetup remove_all >/dev/null 2>&1
	true
}

# The header's class of each attempt: "live" names the pending request,
# "policy" is refused by the attribute policy, "none" is not a refused
# reply (REGISTER, a dump, an accepted reply); every other attempt names
# no pending request ("orphan").
declare -A CLASS=(
	[register]=none [get-device-dump]=none [register-unknown-flag]=none
	[first-reply]=none
	[wrong-device]=live [wrong-first-chunk]=live [wrong-chunk-count]=live
	[request-id-as-u32]=policy [status-as-u64]=policy
	[device-id-empty]=policy [oversized-snapshot-id]=policy
	[oversized-device-name]=policy [unknown-attribute]=policy
	[truncated-attribute]=policy [zero-chunk-count]=policy
	[request-id-zero]=policy [positive-status]=policy
	[status-below-4095]=policy [status-int-min]=policy
)

# The counters an attempt of CLASS moves, as peersnap-hostile prints them.
header_counted() {
	case $1 in
	live) echo "rejected +1 rejected_replies +0" ;;
	policy | none) echo "rejected +0 rejected_replies +0" ;;
	orphan) echo "rejected +0 rejected_replies +1" ;;
	*) echo "rejected +0 rejected_replies +0" ;;
	esac
}

# check_counted WHAT COUNTED WANT
check_counted() {
	assert_eq "$3" "$2" "$1: counted as the header says"
}

# hostile WHAT CMD...: runs peersnap-hostile with CAP_NET_ADMIN; every
# answer must be the header's errno, each attempt counted as it says.
hostile() {
	local what=$1 name
	shift
	run_hostile "$what" "$@" || return
	for name in "${names[@]}"; do
		check_counted "$what: $name" "${counted[$name]}" \
			"$(header_counted "${CLASS[$name]:-orphan}")"
	done
}

# nobody WHAT CMD...: the same without CAP_NET_ADMIN: every answer EPERM
# from generic netlink, nothing counted (the tool cannot dump the devices'
# counters: it prints only rejected_replies).
nobody() {
	local what=$1 name rejected moved=0
	shift
	rejected=$(ps_field ps rejected)
	run_hostile "$what" "$@" || return
	for name in "${names[@]}"; do
		moved=$((moved + ${counted[$name]##*+}))
	done
	assert_eq "$rejected" "$(ps_field ps rejected)" \
		"$what: the device's rejected counter did not move"
	check_counted "$what: ${#names[@]} attempts" "rejected_replies +$moved" \
		"rejected_replies +0"
}

# run_hostile WHAT CMD...: runs CMD (peersnap-hostile); checks that every
# answer was the one expected; sets names (the attempts, in order) and
# counted[name] (what each added to the counters).
declare -a names
declare -A counted
run_hostile() {
	local what=$1 out status line bad=0
	local re='^([a-z0-9-]+): [A-Z0-9]+ \(-?[0-9]+\), expected [A-Z0-9]+: (ok|UNEXPECTED) \[(.*)\]$'
	shift
	names=()
	counted=()
	out=$(timeout 60 "$@" 2>&1)
	status=$?
	while IFS= read -r line; do
		[[ $line =~ $re ]] || continue
		names+=("${BASH_REMATCH[1]}")
		counted[${BASH_REMATCH[1]}]=${BASH_REMATCH[3]}
		[ "${BASH_REMATCH[2]}" = ok ] || bad=$((bad + 1))
	done <<<"$out"
	if [ "$status" = 0 ] && [ "$bad" = 0 ] && [ "${#names[@]}" -gt 0 ]; then
		ok "$what: all ${#names[@]} answers are the header's errnos"
		return 0
	fi
	diag "$out"
	not_ok "$what: all answers are the header's errnos (exit status $status, $bad of ${#names[@]} unexpected)"
	return 1
}

# hold VAR CHUNK: an O_DIRECT read of CHUNK in the background; its pid in
# VAR, its data in /tmp/read.CHUNK, its errors in /tmp/read.CHUNK.err.
hold() {
	dd if=/dev/mapper/ps of="/tmp/read.$2" bs=4k skip="$2" count=1 \
		iflag=direct status=none 2>"/tmp/read.$2.err" &
	printf -v "$1" '%s' $!
}

one_held() {
	[ "$(ps_field ps inflight)" = 1 ]
}

# still_held WHAT: the held read is still waiting and nothing failed.
still_held() {
	if kill -0 "$reader" 2>/dev/null && one_held &&
		[ "$(ps_field ps failed)" = 0 ]; then
		ok "$1: the held read is still pending, nothing failed"
	else
		not_ok "$1: the held read is still pending, nothing failed"
		diag "$(dmsetup status ps)"
	fi
}

# same_as_image CHUNK: the read of CHUNK got the image's data.
same_as_image() {
	cmp -s "/tmp/read.$1" <(dd if=$IMG bs=4k skip="$1" count=1 status=none)
}

require_cmd setpriv
[ -x "$HOSTILE" ] || bail_out "no $HOSTILE (make -C agent)"
load_module
make_brd 2 64
make_image $IMG $((8 << 20))
ps_create ps 16384 8 $ID || bail_out "cannot create the device"

# A read of chunk 100 waits for an agent through everything below.
hold reader 100
wait_for "a held read" one_held || bail_out "the read was not held"

for mode in unknown-id garbage mismatch status not-agent; do
	hostile "$mode" "$HOSTILE" --timeout 10 "$mode"
	still_held "$mode"
done

for mode in unknown-id garbage mismatch status duplicate not-agent; do
	nobody "nobody $mode" "${NOBODY[@]}" "$HOSTILE" --timeout 10 "$mode"
	still_held "nobody $mode"
done
nobody "--uid 65534 all" "$HOSTILE" --uid 65534 --timeout 10 all
still_held "--uid 65534 all"

# A real agent then serves the read that waited through all of that.
start_agent "$ID=$IMG"
if wait "$reader"; then
	ok "a real agent serves the held read"
else
	not_ok "a real agent serves the held read"
	diag "$(cat /tmp/read.100.err)"
fi
reader=
same_as_image 100 && ok "... with the image's data" ||
	not_ok "... with the image's data"
stop_agent

# duplicate answers -EIO: the held read fails with EIO; the second answer
# is refused; the next read of the chunk is fetched afresh.
hold reader 300
wait_for "a held read" one_held || bail_out "the read was not held"
hostile duplicate "$HOSTILE" --timeout 10 duplicate
if wait "$reader"; then
	not_ok "duplicate: the held read fails with EIO (it succeeded)"
else
	assert_eq 1 "$(grep -c 'Input/output error' /tmp/read.300.err)" \
		"duplicate: the held read fails with EIO"
fi
reader=
assert_eq 1 "$(ps_field ps failed)" "duplicate: one failed fetch"
assert_eq 0 "$(ps_field ps inflight)" "duplicate: nothing left in flight"
start_agent "$ID=$IMG"
hold reader 300
if wait "$reader"; then
	ok "duplicate: the next read of that chunk succeeds"
else
	not_ok "duplicate: the next read of that chunk succeeds"
	diag "$(cat /tmp/read.300.err)"
fi
reader=
same_as_image 300 && ok "... with the image's data" ||
	not_ok "... with the image's data"
diag "rejected $(ps_field ps rejected), rejected_replies $(cat $PARAM)"

ktap_finish
