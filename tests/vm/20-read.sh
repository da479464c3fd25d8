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

# Each case: chunk size (sectors) and label, MiB, bytes past them (a last
# chunk the image does not fill). On the debug kernel, where each fetch is
# several times slower, the same cases run on about a quarter of the data.
if [ -z "${PEERSNAP_DEBUG_KERNEL:-}" ]; then
	mib=(8 5 8 3 16 7)
else
	mib=(2 1 2 1 4 2)
fi
chunks=(8 8 128 128 2048 2048)
chunk_labels=("4 KiB" "4 KiB" "64 KiB" "64 KiB" "1 MiB" "1 MiB")
tails=(0 12288 0 100 0 4096)
tail_labels=("" " + 12 KiB" "" " + 100 bytes" "" " + 4 KiB")
for i in "${!mib[@]}"; do
	check_read "${chunk_labels[i]} chunks, ${mib[i]} MiB${tail_labels[i]}" \
		$(((mib[i] << 20) + tails[i])) "${chunks[i]}"
done

ktap_finish
