#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The peersnap CLI on the host: every verb's --help, usage errors (exit 2,
# quoting the input), the message when peersnapd is not running (exit 1),
# keygen, and publish / ls / show / table / pull / status / peers against
# a real peersnapd started here with a private configuration.
#
#   peersnap --config $tmp/agent.conf ... --> $tmp/run/control.sock
#                                              peersnapd --foreground
#                                              state: $tmp/state
#
# attach, detach, hydrate and commit need dm-peersnap: tests/vm runs them.
# Prints KTAP with a kselftest "# Totals:" line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
agent=${AGENT_DIR:-$here/../../agent}
p=$agent/peersnap
d=$agent/peersnapd
tmp=$(mktemp -d)
daemon_pid=

cleanup()
{
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

. "$here/cli-expect.sh"

# hex_id FILE: the snapshot id a command printed (stdout, among stderr)
hex_id()
{
	grep -E '^[0-9a-f]{64}$' "$1" | head -n 1
}

# check NAME CMD...: a shell condition
check()
{
	name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then
		ok "$name"
	else
		not_ok "$name"
	fi
}

echo "TAP version 13"

# ---- help, version, usage errors ------------------------------------------

expect help 0 'Usage: peersnap \[OPTION\]' "$p" --help
for verb in keygen publish ls show attach table detach hydrate pull commit \
	    status peers; do
	expect "help-lists-$verb" 0 "^  $verb " "$p" --help
done
expect version 0 '^peersnap [0-9]' "$p" --version
# Each verb's help names its arguments.
expect help-keygen 0 'Usage: peersnap keygen' "$p" keygen --help
expect help-publish 0 'IMAGE --name N \[--chunk-size S\] \[--parent ID\]' \
	"$p" publish --help
expect help-ls 0 'Usage: peersnap ls' "$p" ls --help
expect help-show 0 'Usage: peersnap show ID' "$p" show --help
expect help-attach 0 'ID --metadata DEV --cache DEV NAME' "$p" attach --help
expect help-table 0 'ID --metadata DEV --cache DEV' "$p" table --help
expect help-detach 0 'Usage: peersnap detach NAME' "$p" detach --help
expect help-hydrate 0 'Usage: peersnap hydrate NAME' "$p" hydrate --help
expect help-pull 0 'Usage: peersnap pull ID FILE' "$p" pull --help
expect help-commit 0 'Usage: peersnap commit NAME --name N' "$p" commit --help
expect help-status 0 'Usage: peersnap status' "$p" status --help
expect help-peers 0 'Usage: peersnap peers' "$p" peers --help

id=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
expect no-command 2 'missing command' "$p"
expect unknown-verb 2 "unknown command 'bogus'" "$p" bogus
expect unknown-option 2 "unrecognized option '--bogus'" "$p" ls --bogus
expect unknown-global-option 2 "unrecognized option '--bogus'" "$p" --bogus ls
expect extra-argument 2 "unexpected argument 'extra'" "$p" status extra
expect attach-missing-name 2 'missing NAME' \
	"$p" attach "$id" --metadata /dev/m --cache /dev/c
expect attach-missing-cache 2 'missing --cache DEV' \
	"$p" attach "$id" --metadata /dev/m dev0
expect attach-bad-name 2 "bad device name 'a/b'" \
	"$p" attach "$id" -m /dev/m -C /dev/c a/b
expect table-read-only 2 'only attach takes it' \
	"$p" table "$id" -m /dev/m -C /dev/c --read-only
expect detach-missing-name 2 'missing NAME' "$p" detach
expect hydrate-missing-name 2 'missing NAME' "$p" hydrate
expect commit-missing-name 2 'missing NAME' "$p" commit --name v2
expect commit-missing-n 2 'missing --name' "$p" commit dev0
expect publish-missing-image 2 'missing IMAGE' "$p" publish --name x
expect publish-missing-name 2 'missing --name' "$p" publish img
expect publish-chunk-size-3k 2 "--chunk-size '3k': expected a power of two" \
	"$p" publish img --name x --chunk-size 3k
expect publish-chunk-size-8m 2 "--chunk-size '8M'" \
	"$p" publish img --name x --chunk-size 8M
expect publish-bad-parent 2 "--parent 'xyz': expected a snapshot id" \
	"$p" publish img --name x --parent xyz
expect show-bad-id 2 "bad snapshot id 'xyz': expected 8 to 64 hex digits" \
	"$p" show xyz
expect show-short-id 2 "bad snapshot id '0123abc'" "$p" show 0123abc
expect pull-bad-id 2 "bad snapshot id 'nothex00'" "$p" pull nothex00 f
expect pull-missing-file 2 'missing FILE' "$p" pull "$id"
expect table-bad-id 2 "bad snapshot id 'g1234567'" \
	"$p" table g1234567 -m /dev/m -C /dev/c

printf '[agent]\nport = 7390\nprot = 7\n' >"$tmp/bad.conf"
expect config-quotes-line 2 "bad.conf:3: unknown key in \[agent\]: 'prot = 7'" \
	"$p" --config "$tmp/bad.conf" status
expect config-missing 1 'none.conf.*No such file or directory' \
	"$p" --config "$tmp/none.conf" status

# ---- no daemon -------------------------------------------------------------

sock=$tmp/none.sock
nodaemon="^peersnap: cannot reach peersnapd at $sock: No such file or directory \(is peersnapd running\?\)$"
head -c 8192 /dev/urandom >"$tmp/small.img"
expect no-daemon-ls 1 "$nodaemon" "$p" --socket "$sock" ls
expect no-daemon-show 1 "$nodaemon" "$p" --socket "$sock" show "$id"
expect no-daemon-status 1 "$nodaemon" "$p" --socket "$sock" status
expect no-daemon-peers 1 "$nodaemon" "$p" --socket "$sock" peers
expect no-daemon-pull 1 "$nodaemon" "$p" --socket "$sock" pull "$id" "$tmp/f"
check no-daemon-pull-leaves-no-file test ! -e "$tmp/f"
expect no-daemon-table 1 "$nodaemon" \
	"$p" --socket "$sock" table "$id" -m /dev/m -C /dev/c
expect no-daemon-attach 1 "$nodaemon" \
	"$p" --socket "$sock" attach "$id" -m /dev/m -C /dev/c dev0
expect no-daemon-detach 1 "$nodaemon" "$p" --socket "$sock" detach dev0
expect no-daemon-commit 1 "$nodaemon" \
	"$p" --socket "$sock" commit dev0 --name v2
# Without --socket, the configuration's control_socket.
mkdir -p "$tmp/state" "$tmp/run"
cat >"$tmp/agent.conf" <<EOF
[agent]
state_dir = $tmp/state
control_socket = $tmp/run/control.sock
identity = $tmp/keys/identity.key
EOF
expect no-daemon-config-socket 1 \
	"cannot reach peersnapd at $tmp/run/control.sock: No such file" \
	"$p" --config "$tmp/agent.conf" status

# ---- keygen ----------------------------------------------------------------

conf="--config $tmp/agent.conf"
expect publish-without-identity 1 \
	"no identity at $tmp/keys/identity.key: run 'peersnap keygen' first" \
	"$p" $conf --socket "$sock" publish "$tmp/small.img" --name s
# Only a regular file can be a snapshot's origin: a block device is
# refused before anything is read from it.
bdev=$(find /dev -maxdepth 1 -type b 2>/dev/null | head -n 1)
if [ -n "$bdev" ] && [ -r "$bdev" ]; then
	expect publish-block-device 1 "$bdev: not a regular file" \
		"$p" $conf --socket "$sock" publish "$bdev" --name b
else
	skip publish-block-device "no readable block device node"
fi
expect keygen 0 '^[0-9a-f]{64}$' "$p" $conf keygen
check keygen-mode-0600 test "$(stat -c %a "$tmp/keys/identity.key")" = 600
check keygen-dir-mode-0700 test "$(stat -c %a "$tmp/keys")" = 700
cp "$tmp/keys/identity.key" "$tmp/key.before"
expect keygen-refuses-overwrite 1 "identity.key.*exists" "$p" $conf keygen
check keygen-kept-the-key cmp "$tmp/keys/identity.key" "$tmp/key.before"
expect keygen-json-refuses 1 'exists' "$p" $conf --json keygen
printf '[agent]\nidentity = %s\n' "$tmp/keys/second.key" >"$tmp/k2.conf"
expect keygen-json 0 "^\\{\"path\":\"$tmp/keys/second.key\",\"public_key\":\"[0-9a-f]{64}\"\\}$" \
	"$p" --config "$tmp/k2.conf" --json keygen
# publish needs the identity first, then the daemon.
expect no-daemon-publish 1 "$nodaemon" \
	"$p" $conf --socket "$sock" publish "$tmp/small.img" --name small

# ---- against a real peersnapd ----------------------------------------------

# The daemon's own identity signs nothing here; the CLI's key must be
# trusted: peersnapd trusts its own identity, which is the same file.
"$d" --foreground --config "$tmp/agent.conf" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
i=0
while [ ! -S "$tmp/run/control.sock" ] && [ $i -lt 50 ] &&
      kill -0 "$daemon_pid" 2>/dev/null; do
	sleep 0.1
	i=$((i + 1))
done
if [ ! -S "$tmp/run/control.sock" ]; then
	why=$(head -n 1 "$tmp/daemon.log")
	for t in status publish ls show table pull; do
		skip "daemon-$t" "peersnapd did not start: $why"
	done
	totals
	echo "1..$n"
	[ "$fail" -eq 0 ]
	exit
fi

expect daemon-status 0 '^peersnapd [0-9].*, up ' "$p" $conf status
expect daemon-status-json 0 '^\{"daemon_version":"[^"]*","uptime":[0-9]+,"counters":\{' \
	"$p" $conf --json status
expect daemon-peers-json 0 '^\[\]$' "$p" $conf peers --json
expect daemon-ls-empty 0 'no snapshots' "$p" $conf ls
expect daemon-ls-empty-json 0 '^\[\]$' "$p" $conf ls --json

# An image of 5 chunks of 64 KiB and a bit: data, zeros, data, zeros, a
# short data tail; its size is not a multiple of the chunk size.
img=$tmp/image.raw
{
	head -c 65536 /dev/urandom
	head -c 65536 /dev/zero
	head -c 65536 /dev/urandom
	head -c 131072 /dev/zero
	head -c 1000 /dev/urandom
} >"$img"
expect daemon-publish 0 '^[0-9a-f]{64}$' \
	"$p" $conf publish "$img" --name "base image" --chunk-size 64K
cp "$tmp/out" "$tmp/publish.out"
sid=$(hex_id "$tmp/publish.out")
check daemon-publish-says-zero-chunks \
	grep -q "published 'base image': 6 chunks of 65536 bytes (3 all-zero)" \
	"$tmp/publish.out"
expect daemon-ls 0 "^${sid%${sid#????????????????}} +321 KiB +64.0 KiB .* yes +base image$" \
	"$p" $conf ls
expect daemon-ls-json 0 "\"id\":\"$sid\",\"name\":\"base image\",\"size\":328680,\"chunk_size\":65536,\"chunk_count\":6,.*\"parent\":null,.*\"has_origin\":true" \
	"$p" $conf ls --json
short=${sid%${sid#????????}}
expect daemon-show-prefix 0 "^id: +$sid$" "$p" $conf show "$short"
expect daemon-show-size 0 '^size: +328680 ' "$p" $conf show "$sid"
expect daemon-show-json 0 "\"id\":\"$sid\",\"name\":\"base image\",\"size\":328680,\"chunk_size\":65536,\"chunk_count\":6,\"index_chunk_size\":4096,\"index_count\":1" \
	"$p" $conf show --json "$short"
expect daemon-show-unknown 1 "^peersnap: .*ffffffff" "$p" $conf show ffffffff
expect daemon-table 0 "^0 768 peersnap /dev/m /dev/c 128 $sid$" \
	"$p" $conf table "$short" --metadata /dev/m --cache /dev/c
expect daemon-table-json 0 "^\{\"table\":\"0 768 peersnap /dev/m /dev/c 128 $sid\",\"sectors\":768\}$" \
	"$p" $conf --json table "$sid" -m /dev/m -C /dev/c

# pull writes the image exactly, zeros as holes, and refuses to overwrite.
expect daemon-pull 0 "wrote $sid \(328680 bytes\)" \
	"$p" $conf pull "$short" "$tmp/pulled.raw"
check daemon-pull-equals-image cmp "$img" "$tmp/pulled.raw"
expect daemon-pull-refuses-overwrite 1 "pulled.raw: file exists \(--force overwrites it\)" \
	"$p" $conf pull "$sid" "$tmp/pulled.raw"
echo garbage >"$tmp/pulled.raw"
expect daemon-pull-force 0 'wrote' \
	"$p" $conf pull --force "$sid" "$tmp/pulled.raw"
check daemon-pull-force-equals-image cmp "$img" "$tmp/pulled.raw"
expect daemon-pull-not-a-file 1 '/dev/null: not a regular file' \
	"$p" $conf pull --force "$sid" /dev/null
check daemon-pull-kept-dev-null test -c /dev/null

# A child of the image: --parent by prefix, which must be in the store.
head -c 200000 /dev/urandom >"$tmp/v2.raw"
expect daemon-publish-unknown-parent 1 "--parent 'eeeeeeee'" \
	"$p" $conf publish "$tmp/v2.raw" --name v2 --parent eeeeeeee
expect daemon-publish-child 0 '^[0-9a-f]{64}$' \
	"$p" $conf publish "$tmp/v2.raw" --name v2 --parent "$short"
child=$(hex_id "$tmp/out")
expect daemon-show-parent 0 "^parent: +$sid$" "$p" $conf show "$child"
expect daemon-publish-json 0 '^\{"id":"[0-9a-f]{64}","name":"json \\"quoted\\"",' \
	"$p" $conf --json publish "$tmp/v2.raw" --name 'json "quoted"' --chunk-size 4k
expect daemon-status-counts 0 '"store.snapshots":3' "$p" $conf --json status

totals
echo "1..$n"
[ "$fail" -eq 0 ]
