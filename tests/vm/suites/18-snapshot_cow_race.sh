#!/bin/sh
# vm-tags: kernels
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384 chunk_buffer_mib=1
# Copy-on-write racing the image on the same chunks: writers make the first
# write into every chunk since the take (one logical block each, random
# order) while two readers read exactly those chunks from the image. A held
# write is released once its chunk's old data is in memory, and must not
# overtake an image read of the device; an image read of a chunk whose copy
# is in memory is served from that copy. With chunk_buffer_mib=1 (16 chunks
# of 64 KiB in memory) and 32 writers, the buffers run out and writers wait.
# Oracle: every sector of the image as at the take, of the device as last
# written, during and after.
. /project/tests/vm/lib.sh

DEV=/dev/ram0
CHUNK=128
STORE=/dev/shm/snap18
mkdir -p $STORE

# take_snapshot GEN: fill, create, add, take; sets ID, IMG.
take_snapshot() { snap_take_filled $DEV $STORE "$1"; }

param_is() { [ "$(cat /sys/module/blksnap/parameters/$1)" = "$2" ]; }

check "attach $DEV" snap_ctl attach $DEV
check "the budget is 1 MiB" param_is chunk_buffer_mib 1

for threads in 32 4; do
	step "take (writers: $threads)" take_snapshot $threads
	step "$threads first-touch writers, 2 image readers on the same chunks: image unchanged, original exact" \
		snap_sectors firsttouch $DEV $IMG $threads $threads $CHUNK
	check "not corrupted" sh -c "snap_ctl info $DEV | grep -q '^error_code=0 '"
	check "every sector of the image is still as filled" snap_sectors check $IMG $threads
	check "destroy" snap_ctl destroy "$ID"
done

check "detach $DEV" snap_ctl detach $DEV
rm -rf $STORE
tap_done
