#!/bin/sh
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# Faults (debug kernel; skipped where the fault injection is missing):
# I/O errors on the difference storage (fail_make_request on its device,
# then a dm device under it switched to the error target) while a snapshot
# is held: the snapshot is marked corrupted with -EIO, an event is queued,
# the image fails reads, the original keeps every write, destroy works.
# Allocation failures (failslab, only for the ioctl's task) during create
# and take: each call succeeds or fails with an errno and leaves nothing;
# a clean take afterwards works and its image is right.
. /project/tests/vm/lib.sh

DEV=/dev/ram0
DBG=/sys/kernel/debug
mount -t debugfs none $DBG 2>/dev/null

write_pattern() {
	dd if=/dev/urandom of=/tmp/pat bs=1M count=4 2>/dev/null &&
		dd if=/tmp/pat of=$DEV bs=1M oflag=direct conv=notrunc 2>/dev/null
}

# storage_fault STORAGE_DEV BREAK_CMD HEAL_CMD
storage_fault() {
	snap_sectors fill $DEV 7 >/dev/null || return 1
	ID=$(snap_ctl create "$1" 2097152) && snap_ctl add "$ID" $DEV &&
		snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image $DEV) && wait_bdev "$IMG" || return 1
	sh -c "$2" || return 1
	write_pattern
	ev=$(snap_ctl wait "$ID" 5000)
	echo "event: $ev"
	sh -c "$3"
	echo "$ev" | grep -qx "event=corrupted dev=1:0 err=-5" || return 1
	snap_ctl info $DEV | grep -q "^error_code=-5 " || return 1
	! dd if="$IMG" of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null || return 1
	cmp -n 4194304 /tmp/pat $DEV || return 1
	snap_ctl destroy "$ID"
}

check "attach $DEV" snap_ctl attach $DEV

F=$DBG/fail_make_request
if [ -d $F ] && [ -e /sys/block/ram3/make-it-fail ]; then
	echo 100 >$F/probability
	echo -1 >$F/times
	echo 0 >$F/verbose
	step "fail_make_request on the storage device: corrupted (-EIO), event, image EIO, original intact" \
		storage_fault /dev/ram3 "echo 1 >/sys/block/ram3/make-it-fail" "echo 0 >/sys/block/ram3/make-it-fail"
	echo 0 >$F/probability
else
	tap_skip "fail_make_request on the storage device" "no fail_make_request"
fi

if dmsetup version >/dev/null 2>&1; then
	s=$(blockdev --getsz /dev/ram3)
	if dmsetup create st26 --table "0 $s linear /dev/ram3 0" && dmsetup mknodes && wait_bdev /dev/mapper/st26; then
		step "dm-error under the storage: corrupted (-EIO), event, image EIO, original intact" \
			storage_fault /dev/mapper/st26 \
			"dmsetup suspend st26 && dmsetup load st26 --table '0 $s error' && dmsetup resume st26" true
		dmsetup remove st26
	else
		tap_fail "dm-linear over /dev/ram3"
	fi
else
	tap_skip "dm-error under the storage" "no device-mapper"
fi

FS=$DBG/failslab
failslab_loop() { # what: create|take
	echo 0 >$FS/probability
	echo N >$FS/ignore-gfp-wait 2>/dev/null
	echo Y >$FS/task-filter
	echo 0 >$FS/verbose
	echo -1 >$FS/times
	ok=0
	failed=0
	for p in 5 10 20 40 60 80 100; do
		for i in 1 2 3; do
			ID=$(snap_ctl create /dev/shm 1048576) || return 1
			snap_ctl add "$ID" $DEV || { snap_ctl destroy "$ID"; return 1; }
			echo $p >$FS/probability
			if [ "$1" = take ]; then
				snap_ctl faulty take "$ID" 2>/tmp/fs.err
			else
				snap_ctl faulty create /dev/shm 1048576 >/tmp/fs.id 2>/tmp/fs.err
			fi
			rc=$?
			echo 0 >$FS/probability
			if [ $rc -eq 0 ]; then
				ok=$((ok + 1))
				[ "$1" = create ] && { snap_ctl destroy "$(cat /tmp/fs.id)" || return 1; }
			else
				failed=$((failed + 1))
				grep -q "snap_ctl: .*: E" /tmp/fs.err || { cat /tmp/fs.err; return 1; }
			fi
			snap_ctl destroy "$ID" || return 1
		done
	done
	echo "$1: $ok succeeded, $failed failed with an errno"
	test -z "$(snap_ctl collect)"
}

if [ -d $FS ]; then
	step "failslab during create: success or an errno, nothing left" failslab_loop create
	step "failslab during take: success or an errno, nothing left" failslab_loop take
	clean() {
		snap_sectors fill $DEV 8 >/dev/null || return 1
		ID=$(snap_ctl create /dev/shm 1048576) && snap_ctl add "$ID" $DEV &&
			snap_ctl take "$ID" || return 1
		IMG=$(snap_ctl image $DEV) && wait_bdev "$IMG" || return 1
		write_pattern && snap_sectors check "$IMG" 8 && snap_ctl destroy "$ID"
	}
	step "a clean take afterwards works and its image is right" clean
else
	tap_skip "failslab during create and take" "no failslab"
fi

# Overflow while the image is read: once the storage is full, writes skip
# copy-on-write; a read of a chunk that was never copied must then fail,
# not return what such a write put on the original.
overflow_reads() {
	snap_sectors fill $DEV 9 >/dev/null || return 1
	# Room for about 150 chunks of 64 KiB past the 4096 skipped sectors.
	ID=$(snap_ctl create /dev/shm $((4096 + 150 * 128))) && snap_ctl add "$ID" $DEV &&
		snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image $DEV) && wait_bdev "$IMG" || return 1
	snap_sectors overflow $DEV "$IMG" 9 10 4 128 || return 1
	snap_ctl info $DEV | grep -q '^error_code=-28 ' || return 1
	snap_ctl destroy "$ID"
}
step "overflow under 4 writers and an image reader: every read that succeeds shows the take" overflow_reads

check "detach $DEV" snap_ctl detach $DEV
tap_done
