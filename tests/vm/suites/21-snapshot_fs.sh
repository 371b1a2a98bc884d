#!/bin/sh
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# Two devices in one snapshot, each with a mounted file system (ext4 on
# ram1, xfs on vda), storage in a regular file. Files written before the
# take match on the mounted images; files written or changed after it do
# not show; fsck -n / xfs_repair -n find the images clean; a raw write to
# each original right after the take is absent from every image.
. /project/tests/vm/lib.sh

A=/dev/ram1
B=/dev/vda
STORE=/dev/shm/snap21.diff

setup() {
	mkfs.ext4 -q -F $A && mkfs.xfs -q -f -d size=320m $B || return 1
	mkdir -p /mnt/a /mnt/b /mnt/ia /mnt/ib
	mount $A /mnt/a && mount $B /mnt/b || return 1
	for m in /mnt/a /mnt/b; do
		dd if=/dev/urandom of=$m/before1 bs=1M count=8 2>/dev/null &&
			dd if=/dev/urandom of=$m/before2 bs=64k count=3 2>/dev/null &&
			mkdir -p $m/dir && echo hello >$m/dir/small || return 1
	done
	sync
	(cd /mnt/a && md5sum before1 before2 dir/small) >/tmp/a.md5 &&
		(cd /mnt/b && md5sum before1 before2 dir/small) >/tmp/b.md5
}

take() {
	rm -f $STORE && touch $STORE || return 1
	snap_ctl attach $A && snap_ctl attach $B || return 1
	ID=$(snap_ctl create $STORE 1048576) || return 1
	snap_ctl add "$ID" $A && snap_ctl add "$ID" $B || return 1
	snap_ctl take "$ID" || return 1
	IA=$(snap_ctl image $A) && IB=$(snap_ctl image $B) || return 1
	wait_bdev "$IA" && wait_bdev "$IB"
}

after_writes() {
	for m in /mnt/a /mnt/b; do
		dd if=/dev/urandom of=$m/after bs=1M count=4 2>/dev/null &&
			dd if=/dev/urandom of=$m/before1 bs=1M count=8 conv=notrunc 2>/dev/null &&
			echo changed >$m/dir/small && rm -f $m/before2 || return 1
	done
	sync
}

images_match() {
	mount -o ro $IA /mnt/ia || return 1
	dd if=$IB of=/dev/shm/xfs21.img bs=1M count=320 2>/dev/null || return 1
	XL=$(losetup -f) && losetup "$XL" /dev/shm/xfs21.img || return 1
	mount -o nouuid $XL /mnt/ib || return 1
	(cd /mnt/ia && md5sum -c /tmp/a.md5) && (cd /mnt/ib && md5sum -c /tmp/b.md5)
}

afters_absent() {
	! test -e /mnt/ia/after && ! test -e /mnt/ib/after
}

step "ext4 on $A and xfs on $B with files" setup
step "attach both, one snapshot, take (file storage)" take
step "files changed and added on both originals after the take" after_writes
check "the originals changed (md5 differs now)" sh -c "! (cd /mnt/a && md5sum -c /tmp/a.md5 >/dev/null 2>&1)"
step "both images mount read-only and files from before the take match" images_match
check "files written after the take are absent from both images" afters_absent
umount /mnt/ia 2>/dev/null
umount /mnt/ib 2>/dev/null
check "e2fsck -fn finds the ext4 image clean" e2fsck -fn $IA
check "xfs_repair -n finds the xfs image clean (after its log replay)" xfs_repair -n "$XL"
losetup -d "$XL" 2>/dev/null
rm -f /dev/shm/xfs21.img
check "the storage file grew" sh -c "test \$(stat -c %s $STORE) -gt 0"
check "snapshotinfo of both: no error" sh -c \
	"snap_ctl info $A | grep -qx 'error_code=0 image=blksnap-1-1' && snap_ctl info $B | grep -q 'error_code=0 image=blksnap-[0-9]*-0\$'"
check "destroy" snap_ctl destroy "$ID"
umount /mnt/a
umount /mnt/b

# Raw: a write to each original right after the take is absent from every image.
raw() {
	B=/dev/ram2
	snap_ctl attach $B || return 1
	snap_sectors fill $A 5 >/dev/null && snap_sectors fill $B 6 >/dev/null || return 1
	ID=$(snap_ctl create /dev/shm 1048576) || return 1
	snap_ctl add "$ID" $A && snap_ctl add "$ID" $B && snap_ctl take "$ID" || return 1
	dd if=/dev/zero of=$A bs=4096 count=1 oflag=direct conv=notrunc 2>/dev/null &&
		dd if=/dev/zero of=$B bs=4096 seek=100 count=1 oflag=direct conv=notrunc 2>/dev/null || return 1
	IA=$(snap_ctl image $A) && IB=$(snap_ctl image $B) && wait_bdev "$IA" && wait_bdev "$IB" || return 1
	snap_sectors check "$IA" 5 && snap_sectors check "$IB" 6 || return 1
	snap_ctl destroy "$ID" && snap_ctl detach $B
}
step "raw writes right after a two-device take are absent from both images" raw
check "detach $A" snap_ctl detach $A
check "detach /dev/vda" snap_ctl detach /dev/vda
rm -f $STORE
tap_done
