#!/bin/bash
# The Docker devicemapper workflow: a read-only peersnap image as the
# external origin of a thin pool's volumes (scripts/thin-store). A base
# volume and three snapshots are written differently; each keeps its own
# data, unwritten ranges read as the image, fetched lazily through
# peersnap, and dm-thin never writes the peersnap device.
#
#   /dev/ram0 /dev/ram1 -> ps (peersnap, --readonly) ----------.
#   /dev/ram2 /dev/ram3 -> pool (thin-pool)                    | external origin
#                          base, snap1..3 (thin) <-------------'
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=3131313131313131313131313131313131313131313131313131313131313131
IMG=/tmp/image
SIZE=$((32 << 20))
STORE=$PEERSNAP_TOP/scripts/thin-store

cleanup() {
	for d in snap3 snap2 snap1 base pool; do
		dmsetup remove $d >/dev/null 2>&1
	done
	stop_agent
	dmsetup remove_all >/dev/null 2>&1
	true
}

# region FILE MIB_OFFSET: sha256 of 1 MiB of FILE at that offset (block
# devices read with O_DIRECT, around the page cache).
region() {
	local direct=
	[ -b "$1" ] && direct=iflag=direct
	dd if="$1" bs=1M skip="$2" count=1 $direct status=none | sha256sum
}

load_module
make_brd 4 64
make_image $IMG $SIZE
start_agent "$ID=$IMG"
dmsetup create ps --readonly --table "0 $((SIZE / 512)) peersnap /dev/ram0 /dev/ram1 128 $ID"

expect_success "thin-store pool" $STORE pool pool /dev/ram2 /dev/ram3
expect_success "thin-store base (external origin = peersnap)" \
	$STORE base pool 0 /dev/mapper/ps base
assert_eq 0 "$(ps_field ps fetched)" "nothing fetched yet"
assert_eq "$(region $IMG 5)" "$(region /dev/mapper/base 5)" "base reads as the image"
assert_eq 16 "$(ps_field ps fetched)" "... fetching only that MiB (16 chunks)"

for i in 1 2 3; do
	expect_success "thin-store snap $i" $STORE snap pool base 0 $i /dev/mapper/ps snap$i
done

# Each snapshot writes its own 1 MiB at offset i MiB; base writes at 10 MiB.
for i in 1 2 3; do
	head -c $((1 << 20)) /dev/urandom >/tmp/w$i
	dd if=/tmp/w$i of=/dev/mapper/snap$i bs=1M seek=$i oflag=direct status=none
done
head -c $((1 << 20)) /dev/urandom >/tmp/w0
dd if=/tmp/w0 of=/dev/mapper/base bs=1M seek=10 oflag=direct status=none

bad=0
for i in 1 2 3; do
	for j in 1 2 3; do
		if [ $i = $j ]; then want=$(sha256sum </tmp/w$i); else want=$(region $IMG $j); fi
		[ "$want" = "$(region /dev/mapper/snap$i $j)" ] || {
			diag "snap$i at $j MiB differs"
			bad=$((bad + 1))
		}
	done
	[ "$(region $IMG 10)" = "$(region /dev/mapper/snap$i 10)" ] || bad=$((bad + 1))
done
assert_eq 0 $bad "each snapshot holds its own writes and the image elsewhere"
assert_eq "$(sha256sum </tmp/w0)" "$(region /dev/mapper/base 10)" "base holds its own write"
assert_eq "$(region $IMG 2)" "$(region /dev/mapper/base 2)" "base is unchanged where snapshots wrote"

before=$(ps_field ps fetched)
assert_eq "$(region $IMG 20)" "$(region /dev/mapper/snap2 20)" "an unmapped range of a snapshot reads as the image"
assert_eq $((before + 16)) "$(ps_field ps fetched)" "... fetched lazily through peersnap"

assert_eq 0 "$(ps_field ps dirty)" "dm-thin never wrote the peersnap device"
assert_eq "$(sha256sum <$IMG)" \
	"$(dd if=/dev/mapper/ps bs=1M iflag=direct status=none | sha256sum)" \
	"the peersnap device still equals the image"

expect_success "thin-store delete 3" $STORE delete pool 3 snap3
assert_eq "$(sha256sum </tmp/w2)" "$(region /dev/mapper/snap2 2)" "snap2 survives deleting snap3"

ktap_finish
