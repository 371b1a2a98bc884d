#!/bin/sh
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384 chunk_maximum_in_queue=2 chunk_buffer_mib=1
# REQ_NOWAIT writes under a taken snapshot (io_uring O_DIRECT on a loop
# device, which is blk-mq and accepts NOWAIT). With at most 2 writes held
# for copy-on-write and 16 chunks in memory, a NOWAIT write that would wait
# for room or for a chunk buffer ends with
# BLK_STS_AGAIN, and io_uring reissues it from a worker that may wait; on
# the debug kernel, failslab also fails every allocation of a held-write
# record that may not wait. Oracle: the snapshot is never marked corrupted,
# fio verifies what it wrote on the original, the image still shows the
# take. A kretprobe counts the NOWAIT refusals where kprobe events exist.
. /project/tests/vm/lib.sh

t=/tmp/28-nowait
mkdir -p $t
truncate -s 64M $t/n.img
loop=$(loop_setup $t/n.img)
TR=/sys/kernel/debug/tracing
mount -t debugfs none /sys/kernel/debug 2>/dev/null
mount -t tracefs none $TR 2>/dev/null

# again_probe on|off|count: a kretprobe on diff_area_cow_bio() returning
# DIFF_AREA_AGAIN (2).
again_probe() {
	case $1 in
	on)
		echo 'r:blksnap_again blksnap:diff_area_cow_bio ret=$retval:s32' >>$TR/kprobe_events 2>/dev/null &&
			echo 'ret == 2' >$TR/events/kprobes/blksnap_again/filter &&
			echo >$TR/trace && echo 1 >$TR/events/kprobes/blksnap_again/enable ;;
	off)
		echo 0 >$TR/events/kprobes/blksnap_again/enable 2>/dev/null
		echo '-:blksnap_again' >>$TR/kprobe_events 2>/dev/null ;;
	count) grep -c blksnap_again $TR/trace ;;
	esac
}

nowait_run() { # label
	snap_sectors fill "$loop" 1 >/dev/null || return 1
	ID=$(snap_ctl create /dev/shm 1048576) && snap_ctl add "$ID" "$loop" && snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image "$loop") && wait_bdev "$IMG" || return 1
	fio --name=nw --filename="$loop" --ioengine=io_uring --direct=1 --rw=randwrite \
		--bs=4k --iodepth=64 --size=32M --verify=crc32c --do_verify=1 \
		--output=$t/fio.out >/dev/null 2>&1
	rc=$?
	grep -E "err=|WRITE:" $t/fio.out | head -n 3
	[ $rc -eq 0 ] || return 1
	snap_ctl info "$loop" | grep -q '^error_code=0 ' || { snap_ctl info "$loop"; return 1; }
	snap_sectors check "$IMG" 1 || return 1
	snap_ctl destroy "$ID"
}

check "attach $loop" snap_ctl attach "$loop"
probe=0
again_probe on && probe=1
step "io_uring NOWAIT random writes with a 2-write copy-on-write queue: fio verifies, snapshot intact" nowait_run
if [ $probe = 1 ]; then
	n=$(again_probe count)
	check "NOWAIT writes were refused with AGAIN ($n times) and retried" test "$n" -gt 0
else
	tap_skip "NOWAIT writes were refused with AGAIN" "no kprobe events"
fi

FS=/sys/kernel/debug/failslab
if [ -d $FS ] && [ -e /sys/kernel/slab/cow_req/failslab ]; then
	echo 1 >/sys/kernel/slab/cow_req/failslab
	echo N >$FS/task-filter
	echo Y >$FS/ignore-gfp-wait	# only allocations that may not wait fail
	echo 0 >$FS/verbose
	echo -1 >$FS/times
	echo 100 >$FS/probability
	step "the same with failslab failing every NOWAIT held-write allocation" nowait_run
	echo 0 >$FS/probability
	echo 0 >/sys/kernel/slab/cow_req/failslab
else
	tap_skip "NOWAIT allocation failures" "no failslab on the cow_req cache"
fi
[ $probe = 1 ] && again_probe off
check "detach $loop" snap_ctl detach "$loop"
losetup -d "$loop"
rm -rf $t
tap_done
