#!/bin/sh
# vm-tags: smoke, kernels
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# Point-in-time integrity of a snapshot image: the device is filled with
# self-describing sectors, a snapshot is taken, then the original is
# written (sector 0 again and again, random ranges, chunk borders, first
# and last sectors of chunks; one and four threads) while the image is read.
# Every sector of the image must be as it was at the take, every sector of
# the original what was last written. Chunks are 64 KiB (128 sectors).
. /project/tests/vm/lib.sh

DEV=/dev/ram0
CHUNK=128
SECONDS_PER_RUN=${SNAP_TORTURE_SECONDS:-15}
STORE=/dev/shm/snap20
mkdir -p $STORE

# take_snapshot GEN: fill, create, add, take; sets ID, IMG.
take_snapshot() { snap_take_filled $DEV $STORE "$1"; }

check "attach $DEV" snap_ctl attach $DEV

step "create, add, take" take_snapshot 1
ID1=$ID
check "the image is named blksnap-1-0" test "$IMG" = /dev/blksnap-1-0
check "the image has the original's size" \
	test "$(blockdev --getsize64 $IMG)" = "$(blockdev --getsize64 $DEV)"
check "the image has the original's logical block size" \
	test "$(blockdev --getss $IMG)" = "$(blockdev --getss $DEV)"
check "the image has the original's physical block size" \
	test "$(blockdev --getpbsz $IMG)" = "$(blockdev --getpbsz $DEV)"
check "the image is writable (BLKROGET 0; suite 19 writes to images)" test "$(blockdev --getro $IMG)" = 0
image_mode_narrower() {
	i=$(stat -c '%a %u %g' "$IMG") && o=$(stat -c '%a' $DEV) || return 1
	echo "image $i, original mode $o"
	[ "$i" = "600 0 0" ] && [ $((0$(echo "$i" | cut -d' ' -f1) & ~0$o)) = 0 ]
}
step "the image node is root:root 0600, no wider than the original's" image_mode_narrower
check "snapshotinfo names the image, error 0" \
	sh -c "snap_ctl info $DEV | grep -qx 'error_code=0 image=blksnap-1-0'"
check "a second take gives EALREADY" snap_ctl expect EALREADY take "$ID"
check "adding the device again gives EALREADY" snap_ctl expect EALREADY add "$ID" $DEV
check "the snapshot is listed by collect" sh -c "snap_ctl collect | grep -qx $ID"
check "every sector of the image is as filled" snap_sectors check $IMG 1
check "boundary writes: first/last sectors of chunks and across borders" \
	snap_sectors boundary $DEV $IMG 1 $CHUNK 200
check_fails "after blockdev --setro a write to the image fails" \
	sh -c "blockdev --setro $IMG && dd if=/dev/zero of=$IMG bs=4096 count=1 oflag=direct conv=notrunc"
blockdev --setrw "$IMG" 2>/dev/null
check "the image is still as filled after the refused write" snap_sectors check $IMG 1
check "no event is queued (wait gives ENOENT)" snap_ctl expect ENOENT wait "$ID" 100
check "destroy" snap_ctl destroy "$ID"
check "the image is gone" sh -c "! test -b /dev/blksnap-1-0 || { sleep 1; ! test -b /dev/blksnap-1-0; }"
check "snapshotinfo is empty after destroy" \
	sh -c "snap_ctl info $DEV | grep -qx 'error_code=0 image='"
check "destroy again gives ENODEV" snap_ctl expect ENODEV destroy "$ID1"

step "take again (generation 2)" take_snapshot 2
step "one writer thread for ${SECONDS_PER_RUN}s: image unchanged, original exact" \
	snap_sectors torture $DEV $IMG 2 "$SECONDS_PER_RUN" 1 $CHUNK
check "destroy" snap_ctl destroy "$ID"

step "take again (generation 3)" take_snapshot 3
step "four writer threads for ${SECONDS_PER_RUN}s: image unchanged, original exact" \
	snap_sectors torture $DEV $IMG 3 "$SECONDS_PER_RUN" 4 $CHUNK
check "destroy" snap_ctl destroy "$ID"

check "detach $DEV" snap_ctl detach $DEV
rm -rf $STORE
tap_done
