#!/bin/sh
# vm-tags: kernels
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# Writable snapshot images: writes to an image land in the difference
# storage, never on the original, and mark both CBT maps of the original.
#  - raw: image writes at once with original writes (image_rw torture): the
#    image reads back its own writes and the snapshot-time data elsewhere,
#    the original holds only its own writes; the read map marks the image's
#    blocks at once, and the next switch shows the write map had them too;
#  - ext4 whose journal needs replay (shut down without flushing its log):
#    the image mounts read-write and replays it, e2fsck -fy then -fn finds
#    it clean, the original's bytes do not change;
#  - xfs mounted read-write on the image while the original stays mounted;
#  - discard and write-zeroes on the image, flushes;
#  - overflow while writing the image: the snapshot is corrupted (-ENOSPC),
#    the image fails with EIO, the original is untouched.
. /project/tests/vm/lib.sh

W=$(mktemp -d /tmp/imgw.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p /mnt/o /mnt/i

# snap DEV STORAGE LIMIT_SECT: create, add, take; sets ID and IMG.
snap() {
	ID=$(snap_ctl create "$2" "$3") && snap_ctl add "$ID" "$1" &&
		snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image "$1") && wait_bdev "$IMG"
}

# --- raw writes, concurrent with the original's ------------------------------
ORIG=/dev/ram1
check "fill $ORIG with the snapshot-time pattern" image_rw fill $ORIG
check "attach $ORIG" blkfilter_tool attach $ORIG
step "snapshot of $ORIG (directory storage)" snap $ORIG /dev/shm 2097152
check "the image is writable" sh -c "[ \$(blockdev --getro $IMG) = 0 ]"
image_rw torture $ORIG "$IMG" 3 "$W/imgmap" || TAP_FAILED=1
check "the snapshot is not corrupted" sh -c "snap_ctl info $ORIG | grep -q '^error_code=0 '"
check "destroy" snap_ctl destroy "$ID"
step "a second snapshot switches the map" snap $ORIG /dev/shm 2097152
image_rw cbtcheck $ORIG "$W/imgmap" || TAP_FAILED=1
check "destroy" snap_ctl destroy "$ID"
check "detach $ORIG" blkfilter_tool detach $ORIG

# --- ext4 with a journal to replay -------------------------------------------
EXT=/dev/ram2
ext4_needs_recovery() {
	dumpe2fs -h "$1" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery'
}
ext4_setup() {
	mkfs.ext4 -q -F $EXT && mount $EXT /mnt/o || return 1
	dd if=/dev/urandom of=/mnt/o/before bs=1M count=2 2>/dev/null && sync || return 1
	# Committed to the journal (fsync), not written home: shut down the
	# file system without flushing its log, as a crash would leave it.
	dd if=/dev/urandom of=/mnt/o/journalled bs=64k count=4 conv=fsync 2>/dev/null &&
		mkdir /mnt/o/dir && echo replayed >/mnt/o/dir/small &&
		sync || return 1
	md5sum /mnt/o/before /mnt/o/journalled /mnt/o/dir/small |
		sed 's|/mnt/o/||' >"$W/ext4.md5"
	image_rw shutdown /mnt/o && umount /mnt/o
}
step "ext4 on $EXT, shut down with its journal to replay" ext4_setup
check "the original needs recovery" ext4_needs_recovery $EXT
sha256sum $EXT >"$W/ext4.sum"
check "attach $EXT" blkfilter_tool attach $EXT
step "snapshot of $EXT" snap $EXT /dev/shm 2097152
ext4_image() {
	mount "$IMG" /mnt/i || return 1
	(cd /mnt/i && md5sum -c "$W/ext4.md5") || return 1
	dd if=/dev/urandom of=/mnt/i/on_image bs=1M count=1 2>/dev/null &&
		rm /mnt/i/before && sync && umount /mnt/i
}
step "the image mounts read-write, replays the journal, keeps every file, takes new ones" ext4_image
check "the image no longer needs recovery" sh -c "! ext4_needs_recovery $IMG"
check "e2fsck -fy of the image exits 0 or 1 (fixed)" sh -c "e2fsck -fy $IMG; [ \$? -le 1 ]"
check "e2fsck -fn then finds the image clean" e2fsck -fn "$IMG"
check "the original's bytes did not change" sha256sum -c "$W/ext4.sum"
check "the original still needs recovery" ext4_needs_recovery $EXT
check "destroy" snap_ctl destroy "$ID"
check "detach $EXT" blkfilter_tool detach $EXT

# --- xfs, original mounted, image mounted read-write -------------------------
XFS=/dev/vda
xfs_setup() {
	mkfs.xfs -q -f -d size=320m $XFS && mount $XFS /mnt/o || return 1
	dd if=/dev/urandom of=/mnt/o/before bs=1M count=2 2>/dev/null && sync &&
		(cd /mnt/o && md5sum before) >"$W/xfs.md5"
}
step "xfs on $XFS, mounted" xfs_setup
check "attach $XFS" blkfilter_tool attach $XFS
step "snapshot of the mounted $XFS" snap $XFS /dev/shm 2097152
xfs_image() {
	mount -o nouuid "$IMG" /mnt/i || return 1
	(cd /mnt/i && md5sum -c "$W/xfs.md5") || return 1
	dd if=/dev/urandom of=/mnt/i/on_image bs=1M count=1 2>/dev/null &&
		rm /mnt/i/before && sync && umount /mnt/i
}
step "the xfs image mounts read-write and takes writes" xfs_image
check "xfs_repair -n finds the image clean" xfs_repair -n "$IMG"
check "the original still has its file, not the image's" \
	sh -c "(cd /mnt/o && md5sum -c $W/xfs.md5) && ! test -e /mnt/o/on_image"
check "destroy with the original mounted" snap_ctl destroy "$ID"
umount /mnt/o
check "xfs_repair -n finds the original clean" xfs_repair -n $XFS
check "detach $XFS" blkfilter_tool detach $XFS

# --- discard, write-zeroes, flush --------------------------------------------
check "attach $ORIG" blkfilter_tool attach $ORIG
image_rw fill $ORIG
sha256sum $ORIG >"$W/orig.sum"
step "snapshot of $ORIG" snap $ORIG /dev/shm 2097152
zeroed() { # DEV OFFSET_BYTES LEN_BYTES
	[ "$(dd if="$1" bs=65536 skip=$(($2 / 65536)) count=$(($3 / 65536)) iflag=direct 2>/dev/null |
		tr -d '\000' | wc -c)" = 0 ]
}
check "write-zeroes of 1 MiB at 3 MiB on the image (blkdiscard -z)" \
	/usr/sbin/blkdiscard -z -o $((3 << 20)) -l $((1 << 20)) "$IMG"
check "the image reads zeros there" zeroed "$IMG" $((3 << 20)) $((1 << 20))
check "discard of 1 MiB at 8 MiB on the image succeeds" \
	/usr/sbin/blkdiscard -o $((8 << 20)) -l $((1 << 20)) "$IMG"
check "a flush of the image succeeds (fsync)" \
	sh -c "dd if=/dev/zero of=$IMG bs=4096 count=1 seek=100 oflag=direct conv=fsync,notrunc 2>/dev/null"
check "the original's bytes did not change" sha256sum -c "$W/orig.sum"
check "destroy" snap_ctl destroy "$ID"

# --- overflow while writing the image ----------------------------------------
# 12 MiB limit: 10 MiB usable after the 2 MiB the storage skips.
touch /dev/shm/small19
step "snapshot of $ORIG with a 12 MiB storage limit" snap $ORIG /dev/shm/small19 24576
check_fails "writing 32 MiB to the image fails" \
	dd if=/dev/urandom of="$IMG" bs=1M count=32 oflag=direct
check "the first event is no_space" sh -c "snap_ctl wait $ID 2000 | grep -q '^event=no_space'"
check "then corrupted, -ENOSPC" sh -c "snap_ctl wait $ID 2000 | grep -q '^event=corrupted .* err=-28'"
check "snapshotinfo reports -ENOSPC (-28)" sh -c "snap_ctl info $ORIG | grep -q '^error_code=-28 '"
check_fails "the image fails reads" dd if="$IMG" of=/dev/null bs=4096 count=1 iflag=direct
check "the original's bytes did not change" sha256sum -c "$W/orig.sum"
check "the original takes writes" \
	sh -c "dd if=/dev/zero of=$ORIG bs=4096 count=1 oflag=direct conv=notrunc 2>/dev/null"
check "destroy" snap_ctl destroy "$ID"
rm -f /dev/shm/small19
check "detach $ORIG" blkfilter_tool detach $ORIG
tap_done
