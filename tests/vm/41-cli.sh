#!/bin/bash
# The peersnap CLI's own test script (tests/unit/test_peersnap_cli.sh) with
# dm-peersnap loaded, so that its daemon half runs too: on the host
# peersnapd cannot start without the module and those cases are skipped.
# Every case must pass; none may be skipped here.
. "$PEERSNAP_TOP/tests/vm/lib.sh"

load_module
make_brd 1 8		# a block device for publish-block-device
out=$("$PEERSNAP_TOP/tests/unit/test_peersnap_cli.sh" 2>&1)
totals=$(grep '^# Totals:' <<<"$out")
diag "$(grep -E '^not ok|^#|SKIP' <<<"$out" | head -n 60)"
# total NAME: a count of the "# Totals: pass:N fail:N ..." line.
total() {
	sed -n "s/.* $1:\([0-9]*\).*/\1/p" <<<"$totals"
}
pass=$(total pass)
assert_eq 0 "$(total fail)" "no case failed"
assert_eq 0 "$(total skip)" "no case skipped"
[ "${pass:-0}" -ge 90 ] && ok "the whole script ran ($pass cases)" ||
	not_ok "the whole script ran (${pass:-0} cases)"
ktap_finish
