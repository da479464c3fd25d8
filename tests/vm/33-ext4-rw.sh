#!/bin/bash
# ext4 on a writable peersnap device: the image is an ext4 filesystem,
# mounted read-write straight from a cold device; files written and
# synced survive removing and re-creating the device, fsck finds the
# filesystem clean, and the image's own files are intact.
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=3333333333333333333333333333333333333333333333333333333333333333
IMG=/tmp/image.ext4
MNT=/mnt/ps

cleanup() {
	umount $MNT 2>/dev/null
	stop_agent
	dmsetup remove_all >/dev/null 2>&1
	true
}

load_module
make_brd 2 64
mkdir -p /tmp/src/include $MNT
# The image's files: the kernel's UAPI headers; on the debug kernel, where
# each file costs several times more, those from a to f (fs.h among them).
headers=(/usr/include/linux/*)
[ -z "${PEERSNAP_DEBUG_KERNEL:-}" ] || headers=(/usr/include/linux/[a-f]*)
cp -r "${headers[@]}" /tmp/src/include/
(cd /tmp/src && find . -type f -print0 | xargs -0 sha256sum) >/tmp/src.sums
mkfs.ext4 -q -F -b 4096 -d /tmp/src $IMG 48M || bail_out "mkfs.ext4 failed"
start_agent "$ID=$IMG"
ps_create ps $((48 << 11)) 128 $ID

expect_success "mount the cold image read-write" mount -t ext4 /dev/mapper/ps $MNT
mkdir -p $MNT/new
for i in $(seq 20); do
	head -c $((i * 37 * 1024)) /dev/urandom >$MNT/new/f$i
done
(cd $MNT/new && sha256sum f*) >/tmp/new.sums
rm -f $MNT/include/fs.h
sync
expect_success "unmount" umount $MNT
dirty=$(ps_field ps dirty)
[ "$dirty" -gt 0 ] && ok "written chunks are dirty ($dirty)" || not_ok "written chunks are dirty"
dmsetup remove ps

ps_create ps $((48 << 11)) 128 $ID
expect_success "fsck finds the filesystem clean" e2fsck -fn /dev/mapper/ps
expect_success "mount again" mount -t ext4 -o ro /dev/mapper/ps $MNT
expect_success "the new files are intact" sh -c "cd $MNT/new && sha256sum --quiet -c /tmp/new.sums"
expect_success "the deleted file is gone" test ! -e $MNT/include/fs.h
grep -v ' ./include/fs.h$' /tmp/src.sums >/tmp/kept.sums
expect_success "the image's other files are intact" sh -c "cd $MNT && sha256sum --quiet -c /tmp/kept.sums"
umount $MNT

ktap_finish
