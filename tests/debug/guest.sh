#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest half of tests/debug/selftest.sh, booted on the debug kernel:
# loads the deliberately broken module with bug=$1 (uaf, lock, leak or
# none) and leaves the verdict to scripts/vm, which must fail the run for
# every bug and pass it for none. For none the module is also unloaded.
ko=$PEERSNAP_TOP/build/debug/broken/peersnap_broken.ko
insmod "$ko" bug="$1" || exit 1
[ "$1" != none ] || rmmod peersnap_broken
