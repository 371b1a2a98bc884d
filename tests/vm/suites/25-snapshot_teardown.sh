#!/bin/sh
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# Teardown under load: destroy while the image is read (raw and mounted,
# then lazily unmounted) and the original written; a later take works. The
# original device torn away (dm device reloaded with the error target) while
# a snapshot holds it. Module unload: refused while an image is open, clean
# (snapshots destroyed) when none is.
. /project/tests/vm/lib.sh

A=/dev/ram1

take() { # DEV
	ID=$(snap_ctl create /dev/shm 4194304) && snap_ctl add "$ID" "$1" &&
		snap_ctl take "$ID" && IMG=$(snap_ctl image "$1") && wait_bdev "$IMG"
}

setup() {
	mkfs.ext4 -q -F $A && mkdir -p /mnt/o /mnt/i && mount $A /mnt/o &&
		dd if=/dev/urandom of=/mnt/o/data bs=1M count=16 2>/dev/null && sync &&
		snap_ctl attach $A
}

load_and_destroy() {
	take $A || return 1
	mount -o ro "$IMG" /mnt/i || return 1
	# The writer stops between two dd runs, so nothing holds /mnt/o after wait.
	(trap 'exit 0' TERM; while :; do dd if=/dev/urandom of=/mnt/o/w bs=1M count=8 conv=fsync 2>/dev/null; done) &
	w1=$!
	(while :; do dd if="$IMG" of=/dev/null bs=1M 2>/dev/null; done) &
	r1=$!
	(while :; do cat /mnt/i/data >/dev/null 2>&1; done) &
	r2=$!
	sleep 5
	umount -l /mnt/i
	snap_ctl destroy "$ID"
	rc=$?
	sleep 2
	kill $w1 $r1 $r2 2>/dev/null
	wait $w1 $r1 $r2 2>/dev/null
	return $rc
}

step "ext4 on $A, attached" setup
step "destroy while the image is read (raw, mounted) and the original written" load_and_destroy
check "the image is gone" sh -c "sleep 1; ! test -b /dev/blksnap-1-1"
step "a new take works afterwards" take $A
check "the new image mounts and has the file" sh -c "mount -o ro $IMG /mnt/i && test -s /mnt/i/data && umount /mnt/i"
check "destroy" snap_ctl destroy "$ID"
check "umount the original's filesystem" umount /mnt/o
check "detach $A" snap_ctl detach $A

# The original goes bad underneath (dm table swapped for error).
dm_gone() {
	sectors=$(blockdev --getsz /dev/ram2)
	dmsetup create snap25 --table "0 $sectors linear /dev/ram2 0" && dmsetup mknodes || return 1
	DM=/dev/mapper/snap25
	wait_bdev $DM || return 1
	snap_ctl attach $DM && take $DM || return 1
	dmsetup suspend snap25 && dmsetup load snap25 --table "0 $sectors error" &&
		dmsetup resume snap25 || return 1
	dd if=/dev/zero of=$DM bs=64k count=4 oflag=direct conv=notrunc 2>/dev/null
	ev=$(snap_ctl wait "$ID" 3000)
	echo "$ev"
	echo "$ev" | grep -q "event=corrupted" || return 1
	! dd if="$IMG" of=/dev/null bs=64k count=1 iflag=direct 2>/dev/null || return 1
	snap_ctl destroy "$ID" && snap_ctl detach $DM && dmsetup remove snap25
}
step "the original fails underneath: corrupted event, image EIO, destroy and detach work" dm_gone

# Module unload with a snapshot left.
unload() {
	snap_ctl attach /dev/ram3 && take /dev/ram3 || return 1
	exec 3<"$IMG"
	if rmmod blksnap 2>/dev/null; then
		echo "rmmod succeeded with an image open"
		exec 3<&-
		return 1
	fi
	exec 3<&-
	rmmod blksnap || return 1
	sleep 1; ! test -b /dev/blksnap-1-3 || return 1
	module_load
}
step "rmmod is refused while an image is open, and cleans up a snapshot otherwise" unload
check "the module is loaded again" module_loaded
check "no snapshot is left" sh -c "test -z \"\$(snap_ctl collect)\""
tap_done
