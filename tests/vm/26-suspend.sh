#!/bin/bash
# Suspend, reload and remove while reads are held on absent chunks (no
# agent): nothing hangs, and no read returns wrong data.
#   - suspend --noflush: held reads go back to dm core, come back after
#     resume, and complete with the image's data once an agent registers;
#   - suspend (flush) without an agent: held reads fail with EIO at once;
#   - reload + resume --noflush: the new table serves the held reads;
#   - remove --force: the held reads end (EIO), then the device goes.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=6666666666666666666666666666666666666666666666666666666666666666
IMG=/tmp/image
NREADS=16

cleanup() {
	stop_agent
	dmsetup remove_all --force >/dev/null 2>&1
	true
}

load_module
make_brd 2 64
make_image $IMG $((8 << 20))

# Starts $NREADS O_DIRECT readers of absent chunks $1 + 10 i in the
# background; reader i writes /tmp/r.i and then its exit status to /tmp/s.i
# (one write of two bytes: a reader is done once its file is not empty).
first=0
start_readers() {
	local i
	first=$1
	rm -f /tmp/r.* /tmp/s.*
	for ((i = 1; i <= NREADS; i++)); do
		(dd if=/dev/mapper/ps of=/tmp/r.$i bs=4k skip=$((first + 10 * i)) count=1 \
			iflag=direct status=none 2>/dev/null
		 echo $? >/tmp/s.$i) &
	done
	wait_for "reads held" held_at_least ps $NREADS ||
		diag "status: $(dmsetup status ps)"
}

all_done() {
	local i
	for ((i = 1; i <= NREADS; i++)); do
		[ -s /tmp/s.$i ] || return 1
	done
}

# How many readers ended with status $1 (0, or 1 for EIO).
count_status() {
	local i s n=0
	for ((i = 1; i <= NREADS; i++)); do
		read -r s </tmp/s.$i && [ "$s" = "$1" ] && n=$((n + 1))
	done
	echo $n
}

# How many readers got exactly the image's bytes.
count_correct() {
	local i n=0
	for ((i = 1; i <= NREADS; i++)); do
		cmp -s -n 4096 -i 0:$(((first + 10 * i) * 4096)) /tmp/r.$i $IMG &&
			n=$((n + 1))
	done
	echo $n
}

table="0 16384 peersnap /dev/ram0 /dev/ram1 8 $ID"

# 1. noflush suspend + resume, then an agent.
ps_create ps 16384 8 $ID
start_readers 0
expect_success "suspend --noflush with $NREADS reads held returns" \
	timeout 30 dmsetup suspend --noflush ps
expect_success "resume returns" timeout 30 dmsetup resume ps
wait_for "reads held again" held_at_least ps $NREADS
start_agent "$ID=$IMG"
wait_for "readers done" all_done
assert_eq $NREADS "$(count_status 0)" "noflush: every held read succeeded"
assert_eq $NREADS "$(count_correct)" "noflush: ... with the image's data"
stop_agent

# 2. flush suspend with no agent: fail, do not hang.
start_readers 500
expect_success "suspend (flush) with reads held and no agent returns" \
	timeout 30 dmsetup suspend ps
wait_for "readers done" all_done
assert_eq $NREADS "$(count_status 1)" "flush suspend: held reads failed with EIO"
expect_success "resume returns" timeout 30 dmsetup resume ps

# 3. reload while held: the new table takes over the requeued reads.
start_readers 1000
dmsetup reload ps --table "$table 2 agent_timeout 60"
expect_success "suspend --noflush for the reload returns" \
	timeout 30 dmsetup suspend --noflush ps
expect_success "resume loads the new table" timeout 30 dmsetup resume ps
assert_eq "$table 2 agent_timeout 60" \
	"$(t=$(dmsetup table ps) && echo "${t/ 1:0 1:1 / /dev/ram0 /dev/ram1 }")" \
	"the new table is live"
start_agent "$ID=$IMG"
wait_for "readers done" all_done
assert_eq $NREADS "$(count_status 0)" "reload: every held read succeeded"
assert_eq $NREADS "$(count_correct)" "reload: ... with the image's data"
stop_agent

# 4. remove --force while held: the table is swapped for one that fails
# I/O; the device itself goes once its openers (the readers) are gone.
start_readers 1500
timeout 30 dmsetup remove --force ps >/dev/null 2>&1
[ $? != 124 ] && ok "remove --force with reads held returns" ||
	not_ok "remove --force with reads held returns"
wait_for "readers done" all_done
assert_eq $NREADS "$(count_status 1)" "remove --force: held reads failed with EIO"
if dmsetup info ps >/dev/null 2>&1; then
	expect_success "the device can be removed once closed" dmsetup remove ps
fi
assert_eq 0 "$(dmsetup ls --target peersnap | grep -c ps)" "no peersnap device left"

ktap_finish
