#!/bin/sh
# vm-tags: kernels
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# Image reads, byte for byte against a copy of the original made at the
# take. The original is a loop device of 48 MiB + 20.5 KiB: its last 64 KiB
# chunk is partial. Each snapshot is read with no chunk copied (every read
# goes to the device), with every other chunk saved to the storage, while
# writers make the first write into every chunk of the original (reads of
# the device race the copies: a held write must not land under them), and
# once every chunk is copied. Reads are one sector to 4 MiB, across chunk
# borders, up to the device's end, O_DIRECT with the buffer at several
# offsets into a page, and buffered at odd byte offsets (image_read.c).
# Storage: a file on tmpfs, then a block device (brd).
. /project/tests/vm/lib.sh

CHUNK=128
SIZE=$((48 * 1048576 + 20992))
W=$(mktemp -d /dev/shm/imgr.XXXXXX)
trap 'rm -rf "$W"' EXIT

head -c $SIZE /dev/urandom >"$W/orig" || exit 1
ORIG=$(loop_setup "$W/orig") || exit 1
check "the original $ORIG has $SIZE bytes" test "$(blockdev --getsize64 $ORIG)" = $SIZE
check "attach $ORIG" snap_ctl attach $ORIG

# take STORAGE: new content on the original, its copy, then create, add,
# take; sets ID and IMG.
take() {
	head -c $SIZE /dev/urandom >$ORIG && sync || return 1
	cat $ORIG >"$W/copy" || return 1
	ID=$(snap_ctl create "$1" 2097152) && snap_ctl add "$ID" $ORIG &&
		snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image $ORIG) && wait_bdev "$IMG"
}

mkdir -p /dev/shm/snap17
for storage in /dev/shm/snap17 /dev/ram3; do
	step "snapshot, storage $storage" take $storage
	step "no chunk copied: fixed reads match the copy" image_read fixed "$IMG" "$W/copy" $CHUNK
	step "every other chunk of the original written (saved)" image_read scribble $ORIG $CHUNK 0
	step "every other chunk saved: fixed reads match the copy" image_read fixed "$IMG" "$W/copy" $CHUNK
	step "random reads racing first writes into every chunk match the copy" \
		image_read race "$IMG" "$W/copy" $ORIG $CHUNK 10 8
	step "every chunk copied: fixed reads match the copy" image_read fixed "$IMG" "$W/copy" $CHUNK
	check "not corrupted" sh -c "snap_ctl info $ORIG | grep -q '^error_code=0 '"
	check "destroy" snap_ctl destroy "$ID"
done

check "detach $ORIG" snap_ctl detach $ORIG
losetup -d $ORIG
rm -rf /dev/shm/snap17
tap_done
