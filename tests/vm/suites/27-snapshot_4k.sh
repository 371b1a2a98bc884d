#!/bin/sh
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# 4 KiB logical blocks: a memory-backed null_blk device with 4096-byte
# sectors (skipped when null_blk's configfs is missing). The image has the
# same block sizes; point-in-time integrity with aligned random writes, two
# threads, and chunk-boundary writes, storage in a directory.
. /project/tests/vm/lib.sh

# null_blk loads configfs (a module on the cloud kernel): mount it after.
modprobe null_blk nr_devices=0 2>/dev/null
mount -t configfs none /sys/kernel/config 2>/dev/null
N=/sys/kernel/config/nullb/snap27
if ! mkdir $N 2>/dev/null; then
	tap_skip "4 KiB logical block device" "no null_blk configfs"
	tap_done
fi
ls /sys/block >/tmp/blk.before
echo 4096 >$N/blocksize && echo 1 >$N/memory_backed && echo 64 >$N/size && echo 1 >$N/power
sleep 1
# The new disk (nullbN or the configfs name, depending on the kernel).
DEV=/dev/$(ls /sys/block | grep -vxF -f /tmp/blk.before | head -n 1)
mdev -s 2>/dev/null
i=0
while [ ! -b "$DEV" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done

take() {
	snap_sectors fill $DEV "$1" >/dev/null || return 1
	ID=$(snap_ctl create /dev/shm 1048576) && snap_ctl add "$ID" $DEV &&
		snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image $DEV) || return 1
	i=0
	while [ ! -b "$IMG" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	test -b "$IMG"
}

check "$DEV has 4096-byte logical blocks" test "$(blockdev --getss $DEV)" = 4096
check "attach $DEV" snap_ctl attach $DEV
step "fill, create, add, take" take 1
check "the image has 4096-byte logical blocks" test "$(blockdev --getss $IMG)" = 4096
check "the image has the original's size" \
	test "$(blockdev --getsize64 $IMG)" = "$(blockdev --getsize64 $DEV)"
step "boundary writes (aligned to 4 KiB)" snap_sectors boundary $DEV "$IMG" 1 128 100
check "destroy" snap_ctl destroy "$ID"
step "take again" take 2
step "two writer threads for 10s: image unchanged, original exact" \
	snap_sectors torture $DEV "$IMG" 2 10 2 128
check "destroy" snap_ctl destroy "$ID"
check "detach $DEV" snap_ctl detach $DEV
echo 0 >$N/power
rmdir $N
tap_done
