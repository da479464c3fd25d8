# SPDX-License-Identifier: GPL-2.0
# KTAP helpers for the unit tests of command lines (test_cli.sh,
# test_peersnap_cli.sh); sourced after the caller has made $tmp.
#   ok NAME / not_ok NAME / skip NAME WHY    one result line
#   expect NAME STATUS REGEX CMD...           CMD exits STATUS and its output
#                                             (stdout + stderr) matches REGEX
#   totals                                    the kselftest "# Totals:" line

n=0 pass=0 fail=0 skip=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n $1"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n $1"; sed 's/^/#   /' "$tmp/out"; }
skip() { n=$((n + 1)); skip=$((skip + 1)); echo "ok $n $1 # SKIP $2"; }

expect()
{
	name=$1 want=$2 re=$3
	shift 3
	"$@" >"$tmp/out" 2>&1 </dev/null
	rc=$?
	# busybox (static, from make deps): tests/vm/41-cli.sh runs this on
	# the debug kernel too, where a static program starts in a third of
	# the time of GNU grep.
	if [ "$rc" -eq "$want" ] && busybox grep -Eq -- "$re" "$tmp/out"; then
		ok "$name"
	else
		echo "exit $rc, wanted $want and /$re/" >>"$tmp/out"
		not_ok "$name"
	fi
}

totals()
{
	echo "# Totals: pass:$pass fail:$fail xfail:0 xpass:0 skip:$skip error:0"
}
