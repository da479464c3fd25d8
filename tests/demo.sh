#!/bin/bash
# `make demo`: a snapshot that is usable before its data is local.
#
#   ext4 image (origin) --peersnapd--> cache (/dev/ram1) + metadata (/dev/ram0)
#                                          |
#   mount -o ro /dev/mapper/demo  <--------'
#
# Mounts the image through peersnap, reads a few files (only their chunks
# are fetched), hydrates the rest in the background, and checks every
# file's checksum against the source tree.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

IMG=/tmp/demo.ext4
SRC=/tmp/demo-src
MNT=/mnt/demo

cleanup() {
	umount $MNT 2>/dev/null
	stop_agent
	dmsetup remove demo 2>/dev/null
	true
}

hydration_idle() { [ "$(ps_field demo hydration)" = idle ]; }
step() { printf '\n# == %s\n' "$*"; }
show_status() {
	diag "dmsetup status demo:"
	diag "  $(dmsetup status demo)"
	diag "  chunks present: $(ps_field demo present), fetched: $(ps_field demo fetched)"
}

step "Build a 64 MiB ext4 image with real files (C headers, perl modules)"
mkdir -p $SRC
cp -r /usr/include/linux $SRC/include
cp -r /usr/share/perl5 $SRC/perl5
(cd $SRC && find . -type f -print0 | xargs -0 sha256sum) >/tmp/demo.sums
mkfs.ext4 -q -F -b 4096 -d $SRC $IMG 64M || bail_out "mkfs.ext4 failed"
ID=$(sha256sum <$IMG | cut -c1-64)	# a stand-in snapshot id until manifests exist
diag "$(wc -l </tmp/demo.sums) files; snapshot id $ID"

step "Load dm-peersnap, start peersnapd with the image as origin"
load_module
make_brd 2 128
start_agent "$ID=$IMG"

step "dmsetup create demo: 64 KiB chunks, nothing local yet"
sectors=$(($(stat -c %s $IMG) / 512))
table="0 $sectors peersnap /dev/ram0 /dev/ram1 128 $ID"
diag "table: $table"
dmsetup create demo --table "$table"
show_status

step "Mount it read-only and read three files"
mkdir -p $MNT
mount -t ext4 -o ro,noload /dev/mapper/demo $MNT || bail_out "mount failed"
for f in include/fs.h include/bpf.h perl5/Debconf/Config.pm; do
	[ -f "$MNT/$f" ] || continue
	diag "$(cd $MNT && sha256sum "$f")"
done
show_status
[ "$(chunks_present demo)" -lt 1024 ] && ok "the mount and reads fetched only part of the image" ||
	not_ok "the mount and reads fetched only part of the image"

step "Hydrate the rest in the background"
dmsetup message demo 0 hydrate
wait_for "hydration" hydration_idle
show_status
assert_eq "1024/1024" "$(ps_field demo present)" "hydrated: every chunk is local"

step "Check every file against the source tree"
if (cd $MNT && sha256sum --quiet -c /tmp/demo.sums); then
	ok "all $(wc -l </tmp/demo.sums) files match their source"
else
	not_ok "some files differ from their source"
fi
umount $MNT
ktap_finish
