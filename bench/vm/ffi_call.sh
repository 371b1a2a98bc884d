#!/bin/sh
# The VM part of bench/ffi_call.ts (cloud kernel, module loaded): the FFI
# call that makes an ioctl, and reading a whole 16 Mi-block CBT map through
# Tracker.readCbtMap(), each against the C twin (built on the host by the
# host part of bench/ffi_call.ts into kmod/ctl/build/bench/ffi_call). The
# tracked device is a loop device on a sparse 64 GiB file in /dev/shm,
# tracked with 4 KiB blocks so its map has 16 Mi entries.
set -u
TWIN=/project/kmod/ctl/build/bench/ffi_call
QUICK=""
[ "${BENCH_QUICK:-0}" = 1 ] && QUICK=--quick
if [ ! -x "$TWIN" ]; then
	echo "ffi_call: $TWIN is missing: run bench/ffi_call.ts on the host first" >&2
	exit 1
fi
grep -q '^blksnap ' /proc/modules && rmmod blksnap
insmod /project/kmod/module/blksnap.ko tracking_block_minimum_shift=12 \
	tracking_block_maximum_count=16777216 || exit 1
truncate -s 64G /dev/shm/ffi_call.img
LOOP=$(losetup -f) && losetup "$LOOP" /dev/shm/ffi_call.img || exit 1
cd /project || exit 1
deno eval --cached-only "
import { Tracker } from './mod.ts';
using t = Tracker.open('$LOOP');
t.attach();
" || exit 1
deno run -A --cached-only bench/ffi_call.ts --twin "$TWIN" --device "$LOOP" $QUICK
rc=$?
deno eval --cached-only "
import { Tracker } from './mod.ts';
using t = Tracker.open('$LOOP');
t.detach();
"
losetup -d "$LOOP"
rm -f /dev/shm/ffi_call.img
rmmod blksnap
exit $rc
