#!/bin/sh
# vm-modparams: enable_test_ioctls=1 test_lookup_delay_us=2000
# vm-tags: kernels
# Teardown racing the I/O path. The I/O path finds trackers under RCU only,
# and test_lookup_delay_us holds each lookup open for 2 ms, so a tracker
# freed without a grace period is touched after its free: the VM boots with
# slub_debug=FZP,blksnap_tracker, which poisons freed trackers, and the
# kernel log check of the suite reports the fault or the overwritten poison
# (on the cloud kernel too, where no lockdep hides the missing grace period).
#  - detach racing writers on the device and on others (same hash chain);
#  - device removal (null_blk powered off under open writers: del_gendisk);
#  - the disk driver's module unloaded (brd, loop) while a tracker reference
#    is held by a long cbtdirty: the tracker must not pin the disk, whose
#    last put would run the unloaded driver's code (cloud kernel: the
#    drivers are modules).
. /project/tests/vm/lib.sh

t=/tmp/13-race
mkdir -p $t

writers=""
# A writer ends when its device node goes: dd would create a regular file
# of that name in /dev, which a later suite's device of that name could
# never replace.
writer_start() { # device
	(trap 'exit 0' TERM; while [ -b "$1" ]; do dd if=/dev/urandom of="$1" bs=4k count=64 oflag=direct conv=notrunc 2>/dev/null || sleep 0.05; done) &
	writers="$writers $!"
}
writers_stop() {
	# shellcheck disable=SC2086
	kill $writers 2>/dev/null
	# shellcheck disable=SC2086
	wait $writers 2>/dev/null
	writers=""
}

check "the lookup delay is set" test "$(cat /sys/module/blksnap/parameters/test_lookup_delay_us)" = 2000

# --- detach under writers with slow lookups -----------------------------------
for d in /dev/ram0 /dev/ram1 /dev/ram2; do cbt_tool attach $d; done
for d in /dev/ram0 /dev/ram1 /dev/ram2 /dev/ram3; do writer_start $d; done
log_mark
step "200 attach/detach cycles of /dev/ram3 under writers on it and on three tracked disks" \
	cbt_tool cycles /dev/ram3 200 10
writers_stop
check "no fault while detaching under slow RCU readers" \
	test "$(log_count_since_mark 'Poison overwritten\|general protection\|BUG')" = 0
for d in /dev/ram0 /dev/ram1 /dev/ram2; do cbt_tool detach $d; done

# --- device removal under writers ----------------------------------------------
# null_blk loads configfs (a module on the cloud kernel): mount it after.
modprobe null_blk nr_devices=0 2>/dev/null
mount -t configfs none /sys/kernel/config 2>/dev/null
C=/sys/kernel/config/nullb
if [ -d $C ]; then
	removal_cycles() { # count
		n=0
		while [ $n -lt "$1" ]; do
			# A new name each time: devtmpfs may still be removing the last.
			d=$C/r13_$n
			ls /sys/block >$t/before
			mkdir $d && echo 64 >$d/size && echo 1 >$d/power || return 1
			dev=/dev/$(ls /sys/block | grep -vxF -f $t/before | head -n 1)
			wait_bdev "$dev" || { echo "no $dev"; return 1; }
			cbt_tool attach "$dev" || return 1
			writer_start "$dev"
			writer_start "$dev"
			sleep 0.3
			echo 0 >$d/power || return 1	# del_gendisk with writers on it
			writers_stop
			# Its node may go between a writer's test and its dd's open.
			[ -b "$dev" ] || rm -f "$dev"
			rmdir $d || return 1
			n=$((n + 1))
		done
		echo "$n removals"
	}
	cbt_tool attach /dev/ram0
	writer_start /dev/ram0
	log_mark
	step "20 null_blk removals under their own writers and a tracked neighbour's" removal_cycles 20
	writers_stop
	check "every removal detached its tracker" \
		test "$(log_count_since_mark 'device removed, tracker detached')" = 20
	cbt_tool detach /dev/ram0
else
	tap_skip "device removal under writers" "no null_blk configfs"
fi

# --- the disk driver unloaded while a tracker reference is held -------------------
# rmmod_under_cbtdirty DRIVER DEVICE PREPARE-COMMAND RELOAD-COMMAND
# (the device is 4 GiB: 65536 tracking blocks)
rmmod_under_cbtdirty() {
	cbt_tool attach "$2" || return 1
	sh -c "$3" || return 1
	# 16,384 whole-device ranges: the ioctl holds its tracker reference for
	# seconds while the driver goes (with 4,096 a loaded machine's slow
	# rmmod loop outlasted it).
	cbt_tool dirtyall "$2" 16384 >$t/dirty.out 2>&1 &
	pid=$!
	sleep 1
	kill -0 $pid 2>/dev/null || { echo "cbtdirty ended too early"; return 1; }
	rmmod "$1" || return 1
	held=no
	kill -0 $pid 2>/dev/null && held=yes
	wait $pid
	echo "cbtdirty: $(cat $t/dirty.out) (still running when rmmod returned: $held)"
	sleep 1
	sh -c "$4" || return 1
	test $held = yes
}
# Where brd and loop are modules (every cloud kernel), not built in (the
# debug kernels).
if grep -q '^brd ' /proc/modules && grep -q '^loop ' /proc/modules; then
	log_mark
	rmmod brd && modprobe brd rd_nr=1 rd_size=4194304 && sleep 1
	step "rmmod brd while a cbtdirty of /dev/ram0 holds the tracker" \
		rmmod_under_cbtdirty brd /dev/ram0 true \
		"modprobe brd rd_nr=4 rd_size=131072 && sleep 1 && test -b /dev/ram3"
	check "the removal detached the tracker" \
		test "$(log_count_since_mark 'device removed, tracker detached')" = 1
	truncate -s 4G $t/l.img
	loop=$(loop_setup $t/l.img)
	log_mark
	# Unbound first (the tracker stays: capacity 0), so the unload is clean.
	step "rmmod loop while a cbtdirty of $loop holds the tracker" \
		rmmod_under_cbtdirty loop "$loop" "losetup -d $loop" "modprobe loop"
	check "the removal detached the tracker" \
		test "$(log_count_since_mark 'device removed, tracker detached')" = 1
else
	tap_skip "rmmod of the disk driver under a held tracker" "brd and loop are built in"
fi

rm -rf $t
tap_done
