#!/bin/sh
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# The difference storage: a directory (unnamed temporary file, space freed
# at destroy), a regular file growing in 8 MiB steps, a block device opened
# exclusively; overflow of a small limit (no_space then corrupted events,
# -ENOSPC in snapshotinfo, EIO from the image, the original keeps every
# write, destroy works); storage on a device of the snapshot is refused;
# buffered storage under dirty throttling does not hang.
. /project/tests/vm/lib.sh

DEV=/dev/ram0
STEP_BYTES=$((16384 * 512))

shm_used_kb() { df -k /dev/shm | awk 'NR==2 {print $3}'; }

# snap STORAGE LIMIT GEN: fill, create, add, take; sets ID and IMG.
snap() {
	snap_sectors fill $DEV "$3" >/dev/null || return 1
	ID=$(snap_ctl create "$1" "$2") || return 1
	snap_ctl add "$ID" $DEV && snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image $DEV) && wait_bdev "$IMG"
}

# write_mb N: N MiB of random data at the start of the device, kept in /tmp/pat.
write_mb() {
	dd if=/dev/urandom of=/tmp/pat bs=1M count="$1" 2>/dev/null &&
		dd if=/tmp/pat of=$DEV bs=1M oflag=direct conv=notrunc 2>/dev/null
}

original_has_pattern() {
	n=$(stat -c %s /tmp/pat)
	cmp -n "$n" /tmp/pat $DEV
}

check "attach $DEV" snap_ctl attach $DEV

# --- directory storage -----------------------------------------------------
mkdir -p /dev/shm/dir22
used0=$(shm_used_kb)
step "directory storage: create, add, take" snap /dev/shm/dir22 2097152 1
check "the directory stays empty (unnamed temporary file)" \
	sh -c "test -z \"\$(ls -A /dev/shm/dir22)\""
step "20 MiB written to the original" write_mb 20
used1=$(shm_used_kb)
check "the storage holds the copies ($((used1 - used0)) KiB used on /dev/shm)" \
	test $((used1 - used0)) -ge 20480
check "every sector of the image is as filled" snap_sectors check "$IMG" 1
check "destroy" snap_ctl destroy "$ID"
sleep 1
used2=$(shm_used_kb)
check "destroy frees the temporary file ($((used2 - used0)) KiB left)" \
	test $((used2 - used0)) -lt 4096

# --- regular file, growth --------------------------------------------------
rm -f /dev/shm/file22 && touch /dev/shm/file22
step "file storage (empty file): create, add, take" snap /dev/shm/file22 2097152 2
size0=$(stat -c %s /dev/shm/file22)
check "the empty file got one step at create ($size0 bytes)" test "$size0" -eq $STEP_BYTES
step "40 MiB written to the original" write_mb 40
sleep 1
size1=$(stat -c %s /dev/shm/file22)
check "the file grew over several steps ($size1 bytes, steps of $STEP_BYTES)" \
	sh -c "test $size1 -ge $((42 * 1048576)) && test $((size1 % STEP_BYTES)) -eq 0"
check "every sector of the image is as filled" snap_sectors check "$IMG" 2
check "snapshotinfo: no error" sh -c "snap_ctl info $DEV | grep -q '^error_code=0 '"
check "no event was queued" snap_ctl expect ENOENT wait "$ID" 10
check "destroy" snap_ctl destroy "$ID"
check "the storage file is kept after destroy" test -f /dev/shm/file22
rm -f /dev/shm/file22

# --- block device ------------------------------------------------------------
step "block device storage (/dev/ram3): create, add, take" snap /dev/ram3 2097152 3
check "a second snapshot cannot open /dev/ram3 (exclusive): EBUSY" \
	snap_ctl expect EBUSY create /dev/ram3 2097152
step "20 MiB written to the original" write_mb 20
check "every sector of the image is as filled" snap_sectors check "$IMG" 3
check "destroy" snap_ctl destroy "$ID"
check "/dev/ram3 is free again after destroy" sh -c \
	"id=\$(snap_ctl create /dev/ram3 2097152) && snap_ctl destroy \$id"

# --- overflow ----------------------------------------------------------------
rm -f /dev/shm/small22 && touch /dev/shm/small22
step "file storage with a 16 MiB limit: create, add, take" snap /dev/shm/small22 32768 4
step "64 MiB written to the original (more than the limit)" write_mb 64
check "the first event is no_space" sh -c "snap_ctl wait $ID 2000 | grep -q '^event=no_space sectors=128'"
check "then corrupted, for [1:0], -ENOSPC" sh -c "snap_ctl wait $ID 2000 | grep -qx 'event=corrupted dev=1:0 err=-28'"
check "snapshotinfo reports -ENOSPC (-28)" sh -c "snap_ctl info $DEV | grep -q '^error_code=-28 image=blksnap-1-0'"
check_fails "reading the image fails (EIO)" dd if="$IMG" of=/dev/null bs=64k count=16 iflag=direct
check "the original holds every byte written" original_has_pattern
check "the storage never passed its limit" test "$(stat -c %s /dev/shm/small22)" -le $((32768 * 512))
step "the original keeps working: 8 MiB more written" write_mb 8
check "and reads back" original_has_pattern
check "destroy works after the overflow" snap_ctl destroy "$ID"
rm -f /dev/shm/small22

# --- storage on a device of the snapshot -------------------------------------
check "block device storage on the device itself: add gives EBUSY" sh -c \
	"id=\$(snap_ctl create $DEV 2097152) && snap_ctl expect EBUSY add \$id $DEV; r=\$?; snap_ctl destroy \$id; exit \$r"
refuse_fs() {
	mkfs.ext4 -q -F /dev/ram1 && mkdir -p /mnt/s22 && mount /dev/ram1 /mnt/s22 || return 1
	snap_ctl attach /dev/ram1 || return 1
	id=$(snap_ctl create /mnt/s22 2097152) || return 1
	snap_ctl expect EBUSY add "$id" /dev/ram1
	r=$?
	snap_ctl destroy "$id"
	snap_ctl detach /dev/ram1
	umount /mnt/s22
	return $r
}
step "storage in a file system on the device: add gives EBUSY" refuse_fs

# --- a growth step that fails: what the file has is used up first -------------
# A 12 MiB ext4: the file gets its first 8 MiB step at create, the second
# step cannot fit. 8 MiB less the 2 MiB skipped hold 96 chunks of 64 KiB;
# the failing step is tried after 32.
grow_fails() {
	truncate -s 12M /tmp/g22.img && g=$(loop_setup /tmp/g22.img) || return 1
	mkfs.ext4 -q -F "$g" && mkdir -p /mnt/g22 && mount "$g" /mnt/g22 || return 1
	log_mark
	snap /mnt/g22 2097152 6 || return 1
	write_mb 4 || return 1
	sleep 1
	echo "growth failures logged: $(log_count_since_mark 'growing the difference storage')"
	test "$(log_count_since_mark 'growing the difference storage')" -ge 1 || return 1
	snap_ctl info $DEV | grep -q '^error_code=0 ' || { snap_ctl info $DEV; return 1; }
	snap_sectors check "$IMG" 6 || return 1
	write_mb 8 || return 1
	# Chunks are stored after their writes went on: the overflow is found
	# by the store, shortly after the write that caused it returned.
	snap_ctl wait "$ID" 2000 | grep -q '^event=no_space' || return 1
	snap_ctl wait "$ID" 2000 | grep -q '^event=corrupted .* err=-28' || return 1
	snap_ctl info $DEV | grep -q '^error_code=-28 ' || return 1
	snap_ctl destroy "$ID"
	umount /mnt/g22
	losetup -d "$g"
	rm -f /tmp/g22.img
}
step "a failed growth step: 4 MiB of copies still fit in the 6 MiB the file has; 8 MiB overflow (ENOSPC)" grow_fails

# --- buffered storage under dirty throttling (review finding 8) ---------------
# Storage in an ext4 mounted data=journal (its writes are buffered) while
# buffered writes to a file system on the original push the machine past a
# 1% dirty ratio: a copy-on-write worker throttled by dirty pages that only
# its own copies let the original's writeback drain would hang. Oracle: the
# writes end, and the hung-task detector (10 s meanwhile) reports nothing.
dirty_throttle() {
	ratio=$(cat /proc/sys/vm/dirty_ratio) hung=$(cat /proc/sys/kernel/hung_task_timeout_secs)
	mkfs.ext4 -q -F /dev/ram2 && mkdir -p /mnt/s22 /mnt/o22 &&
		mount -o data=journal /dev/ram2 /mnt/s22 || return 1
	mkfs.ext4 -q -F $DEV && mount $DEV /mnt/o22 || return 1
	ID=$(snap_ctl create /mnt/s22 2097152) && snap_ctl add "$ID" $DEV && snap_ctl take "$ID" || return 1
	echo 1 >/proc/sys/vm/dirty_ratio
	echo 10 >/proc/sys/kernel/hung_task_timeout_secs
	timeout 300 dd if=/dev/urandom of=/mnt/o22/big bs=1M count=40 conv=fsync 2>/dev/null
	r=$?
	echo "$ratio" >/proc/sys/vm/dirty_ratio
	echo "$hung" >/proc/sys/kernel/hung_task_timeout_secs
	snap_ctl info $DEV | grep -q '^error_code=0 ' || { snap_ctl info $DEV; r=1; }
	snap_ctl destroy "$ID"
	umount /mnt/o22
	umount /mnt/s22
	[ $r -eq 0 ] && [ "$(log_count_since_mark 'blocked for more than')" = 0 ]
}
log_mark
step "40 MiB of buffered writes at a 1% dirty ratio, storage buffered in ext4 data=journal: no hang" dirty_throttle

check "detach $DEV" snap_ctl detach $DEV
tap_done
