#!/bin/bash
# Lazy reads end to end: a cold peersnap device reads back exactly its
# origin image, through O_DIRECT and through the page cache, for several
# chunk sizes and image sizes (an image that does not fill its last chunk
# reads as zeros past its end).
#
#   image file --peersnapd--> /dev/ram1 (cache)   /dev/ram0 (metadata)
#                                  |
#   reader <-- /dev/mapper/ps <----'
. "$PEERSNAP_TOP/tests/vm/lib.sh"
. "$PEERSNAP_TOP/tests/vm/peersnap.sh"

ID=1111111111111111111111111111111111111111111111111111111111111111
IMG=/tmp/image

load_module
make_brd 2 64

# Reads the device both ways and compares with the image, zero-padded to
# the device's length.
check_read() {
	local what=$1 bytes=$2 chunk=$3 sectors dev=/dev/mapper/ps want
	sectors=$(( (bytes + chunk * 512 - 1) / (chunk * 512) * chunk ))
	wipe_metadata
	make_image $IMG "$bytes"
	start_agent "$ID=$IMG"
	ps_create ps "$sectors" "$chunk" $ID
	want=$( { cat $IMG; head -c $((sectors * 512 - bytes)) /dev/zero; } | sha256sum)
	assert_eq "$want" "$(dd if=$dev bs=1M iflag=direct status=none | sha256sum)" \
		"$what: O_DIRECT read equals the image"
	assert_eq "$((sectors / chunk))" "$(ps_field ps fetched)" \
		"$what: every chunk fetched once"
	echo 3 >/proc/sys/vm/drop_caches
	assert_eq "$want" "$(sha256sum <$dev)" \
		"$what: buffered read equals the image"
	assert_eq 0 "$(ps_field ps failed)" \
		"$what: no failed fetch"
	dmsetup remove ps
	stop_agent
}

check_read "4 KiB chunks, 8 MiB" $((8 << 20)) 8
check_read "4 KiB chunks, 5 MiB + 12 KiB" $(((5 << 20) + 12288)) 8
check_read "64 KiB chunks, 8 MiB" $((8 << 20)) 128
check_read "64 KiB chunks, 3 MiB + 100 bytes" $(((3 << 20) + 100)) 128
check_read "1 MiB chunks, 16 MiB" $((16 << 20)) 2048
check_read "1 MiB chunks, 7 MiB + 4 KiB" $(((7 << 20) + 4096)) 2048

ktap_finish
