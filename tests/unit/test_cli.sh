#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The command lines of peersnapd and peersnap-hostile on the host: help,
# version, usage errors (exit 2), configuration errors quoting the bad
# line, and the message when dm-peersnap is not loaded (exit 1).
# Prints KTAP with a kselftest "# Totals:" line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
agent=${AGENT_DIR:-$here/../../agent}
d=$agent/peersnapd
h=$agent/peersnap-hostile
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$here/cli-expect.sh"

echo "TAP version 13"
echo "1..27"

expect help 0 'Usage: peersnapd' "$d" --help
for opt in --config --origin --state-dir --max-inflight --foreground \
	   --verbose --help --version; do
	expect "help-documents$opt" 0 "$opt" "$d" --help
done
expect version 0 '^peersnapd [0-9]' "$d" --version
expect unknown-option 2 'Usage' "$d" --bogus
expect extra-argument 2 "unexpected argument 'extra'" "$d" extra
expect max-inflight-zero 2 "--max-inflight '0': expected 1..4096" "$d" -n 0
expect max-inflight-text 2 "--max-inflight '8x'" "$d" --max-inflight 8x
expect origin-short-id 2 "snapshot id must be 64 hex characters, got 4" \
	"$d" --origin abcd=/img
expect origin-no-equals 2 "no '='" "$d" --origin /img
expect state-dir-relative 2 "must be an absolute path" "$d" --state-dir rel
expect peer-no-key 2 "--peer '192.0.2.1:7390': expected HOST:PORT=PUBKEY" \
	"$d" --peer 192.0.2.1:7390
expect peer-v6-brackets 2 "an IPv6 address needs brackets" \
	"$d" -p "2001:db8::1:7390=$(printf '%064d' 0)"
expect peer-short-key 2 "peer key must be 64 hex digits" \
	"$d" --peer '[::1]:7390=abcd'

printf '[agent]\nport = 7390\nprot = 7\n' >"$tmp/bad.conf"
expect config-quotes-line 2 "bad.conf:3: unknown key in \[agent\]: 'prot = 7'" \
	"$d" --config "$tmp/bad.conf"
expect config-missing 1 "No such file or directory" "$d" -c "$tmp/none.conf"

msg='^peersnap: generic netlink family not found \(is dm-peersnap loaded\?\)$'
if [ -d /sys/module/dm_peersnap ]; then
	skip no-module-foreground "dm-peersnap is loaded"
	skip no-module-daemon "dm-peersnap is loaded"
else
	expect no-module-foreground 1 "$msg" "$d" --foreground
	# The daemonizing parent exits with the child's verdict.
	expect no-module-daemon 1 "$msg" "$d"
fi

expect hostile-help 0 'Usage: peersnap-hostile' "$h" --help
expect hostile-bad-mode 2 'Usage' "$h" nonsense
if [ -d /sys/module/dm_peersnap ]; then
	skip hostile-no-module "dm-peersnap is loaded"
else
	expect hostile-no-module 3 'family not found' "$h" register
fi

totals
[ "$fail" -eq 0 ]
