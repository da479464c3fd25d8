#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The debug lane's self-test: a green debug lane means something only if
# the debug kernel's checkers catch real bugs and scripts/vm fails the run
# for them. Each case boots the debug kernel and loads
# build/debug/broken/peersnap_broken.ko (tests/debug/peersnap_broken.c)
# with one bug (tests/debug/guest.sh):
#
#   uaf    a use-after-free           -> status 1, a KASAN report
#   lock   a lock inversion           -> status 1, a lockdep report
#   leak   a leak of kmalloc'ed nodes -> status 1, the kmemleak report
#   none   no bug (the control)       -> status 0
#
# leak runs in one batch between two runs of none (scripts/vm batch, as
# the debug lane runs its VM tests): the leak must be charged to leak's
# script alone, and both runs of none must pass.
#
# Run by scripts/check as debug/selftest (after debug/build); by hand:
# make debug-modules && tests/debug/selftest.sh
set -u
top=$(cd "$(dirname "$0")/../.." && pwd -P)
export PEERSNAP_TOP=$top
# shellcheck source=tests/vm/lib.sh
. "$top/tests/vm/lib.sh"

work=$(host_run_dir debug-selftest) || bail_out "cannot make a run directory"

# check_case BUG STATUS REGEX WHAT: boots with bug=BUG; the run must end
# with STATUS and (for a bug) scripts/vm must print a line matching REGEX.
check_case() {
	local bug=$1 want=$2 re=$3 what=$4 output status
	output=$(KERNEL=debug VM_RUN_DIR=$work/$bug "$top/scripts/vm" run \
		"$top/tests/debug/guest.sh" "$bug" 2>&1)
	status=$?
	if [ "$status" = "$want" ] && { [ -z "$re" ] || grep -E -q -- "$re" <<<"$output"; }; then
		ok "$what"
		return
	fi
	diag "scripts/vm said (status $status, wanted $want${re:+ and a line matching $re}):"
	diag "$output"
	not_ok "$what"
}

# check_batch: none, leak, none again in one boot (each a one-line script
# in the run directory, which the guest sees at the same path): the leak
# must be charged to leak alone, neither to the script before it nor to
# the one after.
check_batch() {
	local job bug output status dir=$work/batch
	mkdir -p "$dir"
	for job in before:none leak:leak after:none; do
		bug=${job#*:}
		printf '#!/bin/bash\nexec bash %q %s\n' "$top/tests/debug/guest.sh" "$bug" >"$dir/${job%:*}.sh"
	done
	output=$(KERNEL=debug VM_RUN_DIR=$dir/run "$top/scripts/vm" batch \
		"$dir/before.sh" "$dir/leak.sh" "$dir/after.sh" 2>&1)
	status=$?
	if [ "$status" = 1 ] && [ "$(cat "$dir/run/leak/status")" = 1 ] &&
	   grep -q '^# vm: kmemleak reports involving the module' "$dir/run/leak/report.log"; then
		ok "a leak is caught by kmemleak and fails its script in a batch"
	else
		diag "scripts/vm said (status $status, wanted 1): $output"
		diag "$(cat "$dir/run/leak/report.log" 2>/dev/null)"
		not_ok "a leak is caught by kmemleak and fails its script in a batch"
	fi
	if [ "$(cat "$dir/run/before/status" 2>/dev/null)" = 0 ] &&
	   [ "$(cat "$dir/run/after/status" 2>/dev/null)" = 0 ]; then
		ok "the same module without a bug passes, before and after the leak in the same boot"
	else
		diag "$(cat "$dir/run/before/report.log" "$dir/run/after/report.log" 2>/dev/null)"
		not_ok "the same module without a bug passes, before and after the leak in the same boot"
	fi
}

ktap_plan 4
check_case uaf 1 '^# vm: .*BUG: KASAN: (slab-)?use-after-free' \
	"a use-after-free is caught by KASAN and fails the run"
check_case lock 1 '^# vm: .*WARNING: possible circular locking dependency' \
	"a lock inversion is caught by lockdep and fails the run"
check_batch
ktap_finish
