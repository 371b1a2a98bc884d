#!/bin/sh
# vm-tags: smoke
# vm-modparams: diff_storage_minimum=16384
# Bad input and errors of the snapshot requests: unknown ids, double take,
# add after take, a device in two snapshots, storage that is not a file,
# directory or block device, a limit of 0, bad user pointers, PATH_MAX;
# wait-event: a timeout really in milliseconds (ENOENT), EINTR on a signal,
# ESRCH when the snapshot is destroyed during the wait; CAP_SYS_ADMIN.
. /project/tests/vm/lib.sh

A=/dev/ram0
B=/dev/ram1

# The TAP lines of the C checks.
snap_ctl badinput /dev/shm || true

check "attach $A" snap_ctl attach $A
check "attach $B" snap_ctl attach $B
ID=$(snap_ctl create /dev/shm 1048576)
ID2=$(snap_ctl create /dev/shm 1048576)
check "two snapshots created" test -n "$ID" -a -n "$ID2"
check "add to an unknown id gives ESRCH" snap_ctl expect ESRCH add 5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a $A
check "add of a device that is not attached gives ENOENT" snap_ctl expect ENOENT add "$ID" /dev/ram2
check "add $A" snap_ctl add "$ID" $A
check "add $A to a second snapshot gives EBUSY" snap_ctl expect EBUSY add "$ID2" $A
check "take" snap_ctl take "$ID"
check "take again gives EALREADY" snap_ctl expect EALREADY take "$ID"
check "add after take gives EBUSY" snap_ctl expect EBUSY add "$ID" $B
check "collect lists both" sh -c "test \$(snap_ctl collect | wc -l) -eq 2"
snap_ctl nobody "$ID" $A || true

# Destroy wakes a waiter, which gets ESRCH.
snap_ctl wait "$ID2" 20000 >/tmp/w23.out 2>&1 &
wpid=$!
sleep 1
check "destroy while a waiter waits" snap_ctl destroy "$ID2"
wait $wpid
check "the waiter returns 'not found' (ESRCH) at once" grep -q "result=not found" /tmp/w23.out

# A detached device leaves a snapshot that was not taken.
ID3=$(snap_ctl create /dev/shm 1048576)
check "add $B to a third snapshot" snap_ctl add "$ID3" $B
check "detach $B" snap_ctl detach $B
check "take of the now empty snapshot gives ENODEV" snap_ctl expect ENODEV take "$ID3"
check "destroy it" snap_ctl destroy "$ID3"

# A detached device of a taken snapshot: its image is marked corrupted.
check "detach $A while its snapshot is taken" snap_ctl detach $A
check "a corrupted event (ENODEV) follows" sh -c "snap_ctl wait $ID 2000 | grep -qx 'event=corrupted dev=1:0 err=-19'"
check_fails "the image read fails" dd if=/dev/blksnap-1-0 of=/dev/null bs=4096 count=1 iflag=direct
check "destroy" snap_ctl destroy "$ID"
check "collect is empty" sh -c "test -z \"\$(snap_ctl collect)\""

# Out-of-range snapshot parameters are clamped at load, each with a warning.
p=/sys/module/blksnap/parameters
param_is() { [ "$(cat $p/$1)" = "$2" ]; }
module_unload
log_mark
module_load chunk_minimum_shift=3 chunk_maximum_shift=99 chunk_maximum_count_shift=0 \
	chunk_maximum_in_queue=0 chunk_buffer_mib=0 diff_storage_minimum=1
check "chunk_minimum_shift 3 is raised to the page shift (12)" param_is chunk_minimum_shift 12
check "chunk_maximum_shift 99 is lowered to 30" param_is chunk_maximum_shift 30
check "chunk_maximum_count_shift 0 is raised to 1" param_is chunk_maximum_count_shift 1
check "chunk_maximum_in_queue 0 is raised to 1" param_is chunk_maximum_in_queue 1
check "chunk_buffer_mib 0 is raised to 1" param_is chunk_buffer_mib 1
check "diff_storage_minimum 1 is raised to two 4 KiB chunks (16 sectors)" param_is diff_storage_minimum 16
check "each clamp is logged" test "$(log_count_since_mark 'out of \[')" = 6
module_unload
log_mark
module_load chunk_minimum_shift=16 diff_storage_minimum=300
check "diff_storage_minimum 300 is aligned to 64 KiB chunks (384 sectors)" param_is diff_storage_minimum 384
check "the alignment is logged" test "$(log_count_since_mark 'aligned to 384')" = 1
module_unload
module_load chunk_minimum_shift=18 diff_storage_minimum=4294967295
check "diff_storage_minimum 2^32-1 stays a whole number of 256 KiB chunks, without wrapping" \
	param_is diff_storage_minimum 4294966784
module_unload
module_load diff_storage_minimum=16384
tap_done
