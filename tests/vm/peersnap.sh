# Helpers for VM tests of the peersnap target and agent; sourced after lib.sh.
#
#   make_image FILE BYTES       random data
#   start_agent ID=FILE...      peersnapd in the background, origin images
#   stop_agent [SIGNAL]         (a stopped agent is continued first)
#   stop_job PID                kill + reap a background job (no PID: nothing)
#   held_at_least NAME N        NAME holds at least N fetches in flight
#   ps_create NAME LEN CHUNK ID [FEATURES...]   on /dev/ram0 (md) + /dev/ram1
#   ps_field NAME FIELD         one field of `dmsetup status` by name
#   chunks_present NAME         the <present> of <present>/<total>
#   agent_counter NAME CLI...   an agent's counter, from `CLI... status --json`
#   device_sum NAME             sha256 of the whole dm device NAME
#   private_copy FILE           path of a copy of FILE in guest RAM

# Programs run from private copies in guest RAM, taken when the test starts.
# The host tree is shared over 9p with cache=loose: if a program is rebuilt
# on the host while a test runs, the guest keeps the old file's cached pages
# and reads the others from the new file, and the mix crashes (a segfault in
# ld.so or at the program's load address). The agent's build renames a
# finished binary into place, so a copy taken at any moment is whole.
private_copy() {
	local copy=/tmp/private-bin/${1##*/}
	mkdir -p /tmp/private-bin
	if cp "$1" "$copy" 2>/dev/null; then
		echo "$copy"
	else
		echo "$1"
	fi
}

# PEERSNAP_AGENT=agent/asan/peersnapd runs the tests with the ASan+UBSan
# agent (make -C agent SANITIZE=1); its reports go to $AGENT_LOG.
# The default cleanup of a peersnap test (lib.sh runs it at exit); a test
# with more to undo defines its own after sourcing this file.
cleanup() {
	stop_agent
	dmsetup remove_all >/dev/null 2>&1
	true
}

PEERSNAPD=$(private_copy "${PEERSNAPD:-${PEERSNAP_AGENT:-$PEERSNAP_TOP/agent/peersnapd}}")
agent_pid=

make_image() {
	head -c "$2" /dev/urandom >"$1"
}

# The agent's log is kept with the run's results on the host (/out).
AGENT_LOG=/out/peersnapd.log

start_agent() {
	local args=() o registered
	for o in "$@"; do
		args+=(--origin "$o")
	done
	registered=$(agent_registrations)
	echo "--- peersnapd ${args[*]}" >>$AGENT_LOG
	"$PEERSNAPD" --foreground --state-dir /run/peersnapd "${args[@]}" \
		>>$AGENT_LOG 2>&1 &
	agent_pid=$!
	wait_for "agent registered" agent_registered_after "$registered" ||
		bail_out "peersnapd did not register (see $AGENT_LOG)"
}

agent_registrations() {
	busybox dmesg | busybox grep -c "agent registered (port"
}

agent_registered_after() {
	kill -0 "$agent_pid" 2>/dev/null && [ "$(agent_registrations)" -gt "$1" ]
}

stop_agent() {
	[ -n "$agent_pid" ] || return 0
	kill "-${1:-TERM}" "$agent_pid" 2>/dev/null
	# A SIGSTOPped agent would hold a TERM pending for ever.
	kill -CONT "$agent_pid" 2>/dev/null
	wait "$agent_pid" 2>/dev/null
	agent_pid=
}

stop_job() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

held_at_least() {
	[ "$(ps_field "$1" inflight)" -ge "$2" ]
}

# Polls CMD (up to 30 s) until it succeeds.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < 300; i++)); do
		"$@" && return 0
		nap 0.1
	done
	echo "# timed out waiting for: $what" >&2
	return 1
}

ps_create() {
	local name=$1 len=$2 chunk=$3 id=$4
	shift 4
	local features=""
	[ $# -gt 0 ] && features=" $# $*"
	dmsetup create "$name" --table "0 $len peersnap /dev/ram0 /dev/ram1 $chunk $id$features" &&
		dmsetup mknodes "$name"
}

# `dmsetup status` field names, in order after "<start> <len> peersnap".
PS_FIELDS=(md chunk_sectors present dirty inflight fetched failed rejected agent hydration)

ps_field() {
	local name=$1 field=$2 status i
	status=$(dmsetup status "$name") || return 1
	read -r -a status <<<"$status"
	for i in "${!PS_FIELDS[@]}"; do
		if [ "${PS_FIELDS[i]}" = "$field" ]; then
			echo "${status[i + 3]}"
			return 0
		fi
	done
	return 1
}

# agent_is NAME connected|disconnected
agent_is() {
	[ "$(ps_field "$1" agent)" = "$2" ]
}

chunks_present() {
	local present
	present=$(ps_field "$1" present) || return 1
	echo "${present%%/*}"
}

# Zeroes the metadata device so the next ps_create formats it afresh.
wipe_metadata() {
	dd if=/dev/zero of=/dev/ram0 bs=1M count=1 oflag=direct status=none
}

agent_counter() {
	local name=$1 json
	shift
	json=$("$@" status --json) || return 1
	[[ $json =~ "\"$name\":"\ *([0-9]+) ]] && echo "${BASH_REMATCH[1]}"
}

device_sum() {
	dd if=/dev/mapper/"$1" bs=1M iflag=direct status=none | sha256sum
}
