#!/bin/bash
# The peersnap constructor: every bad table line is refused with its own
# reason, a good one round-trips through `dmsetup table`, and the metadata
# device is formatted once, reopened, and refused when it does not match.
#
#   /dev/ram0  metadata (64 MiB)     /dev/ram1  cache (64 MiB)
#   /dev/ram2  slices: too small for a cache or for metadata
. "$PEERSNAP_TOP/tests/vm/lib.sh"

ID=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ID2=fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210

cleanup() {
	dmsetup remove ps >/dev/null 2>&1
	dmsetup remove bad >/dev/null 2>&1
	true
}

load_module
make_brd 3 64
# Devices too small to be a cache (1 MiB) or metadata (4 KiB: only the
# superblock fits, not the bitmaps): linear slices of ram2.
dm_create small "0 2048 linear /dev/ram2 0"
dm_create tiny "0 8 linear /dev/ram2 4096"

# Expects `dmsetup create` of TABLE to fail with REASON in the kernel log.
refused() {
	local reason=$1 table=$2 log
	kmsg_mark
	if dmsetup create bad --table "$table" >/dev/null 2>&1; then
		dmsetup remove bad
		not_ok "refused: $reason (table was accepted: $table)"
		return
	fi
	# (dmsetup itself removes the device whose table load failed.)
	log=$(kmsg_since_mark)
	if [[ $log == *"peersnap: $reason"* ]]; then
		ok "refused: $reason"
	else
		not_ok "refused: $reason (kernel said: $(grep peersnap <<<"$log" | tail -n 1))"
	fi
}

M=/dev/ram0 C=/dev/ram1
refused "Not enough arguments" "0 8192 peersnap $M $C 8"
refused "Error opening metadata device" "0 8192 peersnap /dev/nonexistent $C 8 $ID"
refused "Error opening cache device" "0 8192 peersnap $M /dev/nonexistent 8 $ID"
refused "Metadata and cache devices must differ" "0 8192 peersnap $M $M 8 $ID"
refused "Invalid chunk size: not a number" "0 8192 peersnap $M $C 8k $ID"
refused "Chunk size is not a power of two" "0 8192 peersnap $M $C 24 $ID"
refused "Chunk size out of range (8 to 8192 sectors)" "0 8192 peersnap $M $C 4 $ID"
refused "Chunk size out of range (8 to 8192 sectors)" "0 32768 peersnap $M $C 16384 $ID"
refused "Target length is not a multiple of the chunk size" "0 8196 peersnap $M $C 8 $ID"
refused "Cache device is smaller than the target" "0 8192 peersnap $M /dev/mapper/small 8 $ID"
refused "Metadata device too small for this many chunks" "0 8192 peersnap /dev/mapper/tiny $C 8 $ID"
refused "Snapshot id must be 64 hex characters" "0 8192 peersnap $M $C 8 ${ID:1}"
refused "Snapshot id is not lowercase hexadecimal" "0 8192 peersnap $M $C 8 ${ID^^}"
refused "Snapshot id is not lowercase hexadecimal" "0 8192 peersnap $M $C 8 ${ID:1}g"
refused "Invalid number of feature arguments" "0 8192 peersnap $M $C 8 $ID x"
refused "Invalid number of feature arguments" "0 8192 peersnap $M $C 8 $ID 5 a b c d e"
refused "Invalid number of feature arguments" "0 8192 peersnap $M $C 8 $ID 2 fail_if_no_agent"
refused "Unknown feature argument" "0 8192 peersnap $M $C 8 $ID 1 bogus"
refused "agent_timeout needs a number of seconds" "0 8192 peersnap $M $C 8 $ID 1 agent_timeout"
refused "Invalid agent_timeout (0 to 86400 seconds)" "0 8192 peersnap $M $C 8 $ID 2 agent_timeout 1s"
refused "Invalid agent_timeout (0 to 86400 seconds)" "0 8192 peersnap $M $C 8 $ID 2 agent_timeout 86401"
refused "Feature argument given twice" "0 8192 peersnap $M $C 8 $ID 2 fail_if_no_agent fail_if_no_agent"
refused "Too many arguments after the feature arguments" "0 8192 peersnap $M $C 8 $ID 1 fail_if_no_agent extra"

# The table round-trips byte for byte (devices as major:minor, as dm prints them).
mm() {
	local dev
	read -r dev </sys/class/block/"${1##*/}"/dev && echo "$dev"
}
line="0 16384 peersnap $(mm $M) $(mm $C) 16 $ID 4 agent_timeout 7 no_discard_passdown fail_if_no_agent"
dmsetup create ps --table "$line"
assert_eq "$line" "$(dmsetup table ps)" \
	"table round-trips"
assert_eq "PSNAPMD1" "$(dd if=$M bs=1 skip=8 count=8 status=none)" \
	"fresh metadata is formatted (magic)"
status=$(dmsetup status ps)
assert_eq "0 16384 peersnap 3/16384 16 0/1024 0 0 0 0 0 disconnected idle 4 agent_timeout 7 no_discard_passdown fail_if_no_agent rw" "$status" \
	"status of a fresh device"
dmsetup message ps 0 agent_timeout 3
assert_eq "0 16384 peersnap $(mm $M) $(mm $C) 16 $ID 4 agent_timeout 3 no_discard_passdown fail_if_no_agent" "$(dmsetup table ps)" \
	"agent_timeout message shows in the table"
dmsetup remove ps

# The same table opens the metadata it formatted.
if dmsetup create ps --table "0 16384 peersnap $M $C 16 $ID"; then
	ok "same table reopens its metadata"
	dmsetup remove ps
else
	not_ok "same table reopens its metadata"
fi

refused "Metadata belongs to another snapshot" "0 16384 peersnap $M $C 16 $ID2"
refused "Metadata chunk size differs from the table's" "0 16384 peersnap $M $C 32 $ID"
refused "Metadata device length differs from the table's" "0 32768 peersnap $M $C 16 $ID"

# Flip one byte of the superblock's reserved area: only the checksum notices.
printf '\x01' | dd of=$M bs=1 seek=200 conv=notrunc status=none
refused "Metadata superblock checksum mismatch" "0 16384 peersnap $M $C 16 $ID"
# Something that is not ours is never formatted over.
printf 'not peersnap' | dd of=$M bs=1 seek=0 conv=notrunc status=none
refused "Metadata device holds something else (bad magic); zero it to format" "0 16384 peersnap $M $C 16 $ID"

ktap_finish
