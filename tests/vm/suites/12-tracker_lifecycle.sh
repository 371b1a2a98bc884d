#!/bin/sh
# vm-modparams: enable_test_ioctls=1
# Lifecycle: attach/detach on a mounted, busy file system; an ext4 workload
# whose changed blocks must all be marked; 1,000 attach/detach cycles under
# writes; device removal (loop) after a detach-while-writing; unload with
# trackers attached; whole-map CBTMAP reads racing switches (EAGAIN or one
# switch's map).
. /project/tests/vm/lib.sh

t=/tmp/12-life
mkdir -p $t /mnt/12

writer_start() { # device-or-file
	# On TERM the loop ends after the dd in progress, so writer_stop's wait
	# returns only when no write is left running. It also ends when its
	# device node goes (a cleared loop device's partitions): dd would
	# create a regular file of that name in /dev, and a later suite's
	# partition of that name could then never appear.
	(trap 'exit 0' TERM; while [ -b "$1" ] || [ -f "$1" ]; do dd if=/dev/urandom of="$1" bs=64k count=64 oflag=direct conv=notrunc 2>/dev/null || sleep 0.05; done) &
	writer=$!
}
writer_stop() {
	kill $writer 2>/dev/null
	wait $writer 2>/dev/null
}

# --- ext4 workload: every changed block is marked -----------------------------
check "attach /dev/ram1" cbt_tool attach /dev/ram1
cbt_tool switch /dev/ram1	# changes_number 1: the baseline
dd if=/dev/ram1 of=$t/before.img bs=1M 2>/dev/null
mkfs.ext4 -q -F /dev/ram1
mount /dev/ram1 /mnt/12
i=0
while [ $i -lt 40 ]; do
	dd if=/dev/urandom of=/mnt/12/f$i bs=4k count=$((i * 7 + 1)) 2>/dev/null
	i=$((i + 1))
done
mkdir /mnt/12/d && cp /mnt/12/f3 /mnt/12/d/ && rm /mnt/12/f5
sync
umount /mnt/12
dd if=/dev/ram1 of=$t/after.img bs=1M 2>/dev/null
cbt_tool switch /dev/ram1
out=$(cbt_tool imgcmp /dev/ram1 $t/before.img $t/after.img 1)
rc=$?
echo "# ext4 workload: $out"
if [ $rc -eq 0 ]; then tap_ok "ext4 workload: every changed block is marked"; else
	tap_fail "ext4 workload: every changed block is marked"; fi
rm -f $t/before.img $t/after.img
check "detach /dev/ram1" cbt_tool detach /dev/ram1

# --- attach and detach on a mounted file system under writes ------------------
mkfs.ext4 -q -F /dev/ram2
mount /dev/ram2 /mnt/12
writer_start /mnt/12/busy
n=0
while [ $n -lt 20 ]; do
	cbt_tool attach /dev/ram2 || break
	cbt_tool info /dev/ram2 >/dev/null || break
	cbt_tool detach /dev/ram2 || break
	n=$((n + 1))
done
writer_stop
check "20 attach/detach cycles on mounted ext4 under writes" test $n = 20
umount /mnt/12
check "the file system is clean afterwards" e2fsck -fn /dev/ram2

# --- 1,000 attach/detach cycles under writes ----------------------------------
writer_start /dev/ram3
start=$(date +%s)
check "1000 attach/detach cycles of /dev/ram3 under writes" cbt_tool cycles /dev/ram3 1000
echo "# 1000 cycles took $(($(date +%s) - start)) s"
writer_stop

# --- loop: detach while writing, then removal detaches the trackers ----------
truncate -s 64M $t/loop.img
loop=$(loop_setup -P $t/loop.img)
num=${loop#/dev/loop}
cbt_tool mkpart "$loop" 2048 65536 >/dev/null
i=0
while [ ! -b "${loop}p1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
check "attach $loop" cbt_tool attach "$loop"
check "attach ${loop}p1" cbt_tool attach "${loop}p1"
writer_start "${loop}p1"
sleep 1
losetup -d "$loop"	# the writer holds it open: cleared at its last close
sleep 1
writer_stop
# The node may have gone between the writer's test and its dd's open.
[ -b "${loop}p1" ] || rm -f "${loop}p1"
sleep 0.5
check "a switch of the cleared loop device (capacity 0) gives ENODEV" \
	cbt_tool expect ENODEV switch "$loop"
log_mark
check "the loop device is removed (LOOP_CTL_REMOVE)" cbt_tool loop_remove "$num"
check "removal detached both trackers" \
	test "$(log_count_since_mark 'device removed, tracker detached')" = 2
loop2=$(loop_setup $t/loop.img)
check "a new device with the same number has no tracker" \
	sh -c "[ $loop2 != $loop ] || cbt_tool expect ENOENT info $loop2"
losetup -d "$loop2"

# --- CBT switches while writes run -------------------------------------------
cbt_tool attach /dev/ram0
writer_start /dev/ram0
n=0
while [ $n -lt 100 ]; do
	cbt_tool switch /dev/ram0 || break
	n=$((n + 1))
done
writer_stop
check "100 CBT switches of /dev/ram0 under writes" test $n = 100
check "the map reads after them" cbt_tool map /dev/ram0
check "detach /dev/ram0" cbt_tool detach /dev/ram0

# --- device-mapper over a tracked disk: both tracked; dm removal detaches -----
if dmsetup create blksnap12 --table "0 262144 linear /dev/ram3 0" 2>/dev/null; then
	dm=/dev/$(dmsetup info -c --noheadings -o blkdevname blksnap12)
	check "attach /dev/ram3" cbt_tool attach /dev/ram3
	check "attach the linear target on it, $dm" cbt_tool attach "$dm"
	cbt_tool switch /dev/ram3
	cbt_tool switch "$dm"
	dd if=/dev/urandom of="$dm" bs=64k seek=77 count=1 oflag=direct 2>/dev/null
	cbt_tool switch /dev/ram3
	cbt_tool switch "$dm"
	check "the dm device's map marks block 77 only" \
		sh -c "[ \"\$(cbt_tool map $dm)\" = '77 2' ]"
	check "the disk below it marks block 77 only" \
		sh -c "[ \"\$(cbt_tool map /dev/ram3)\" = '77 2' ]"
	log_mark
	check "dmsetup remove" dmsetup remove blksnap12
	check "the removal detached the dm device's tracker only" \
		test "$(log_count_since_mark 'device removed, tracker detached')" = 1
	check "the disk below keeps its tracker" cbt_tool info /dev/ram3
	check "detach /dev/ram3" cbt_tool detach /dev/ram3
else
	tap_skip "device-mapper tests" "dmsetup create failed"
fi

# --- CBTMAP requests racing switches (review finding 17) -----------------------
# A 2 GiB sparse loop device has 32768 tracking blocks: one whole-map CBTMAP
# request copies 8 bounce pieces, and a switch can come between two. Each
# request must return one switch's map (checked against the writes) or
# EAGAIN, never parts of two maps. Three rounds of 250 switches (below the
# 255 wrap), each on a fresh attach.
truncate -s 2G $t/race.img
loop=$(loop_setup $t/race.img)
for round in 1 2 3; do
	check "attach the 2 GiB loop device (round $round)" cbt_tool attach "$loop"
	cbt_tool mapraces "$loop" 250 64 || TAP_FAILED=1
	check "detach it (round $round)" cbt_tool detach "$loop"
done
losetup -d "$loop"
rm -f $t/race.img

# --- unload with trackers attached, under writes ------------------------------
cbt_tool attach /dev/ram0
cbt_tool attach /dev/ram3
truncate -s 32M $t/u.img
loop=$(loop_setup $t/u.img)
cbt_tool attach "$loop"
writer_start /dev/ram3
sleep 1
check "rmmod with three trackers attached and writes running" module_unload
sleep 0.5
writer_stop
check "writes go on after the unload" dd if=/dev/zero of=/dev/ram3 bs=4k count=16 oflag=direct
losetup -d "$loop"
check "the module loads again" module_load enable_test_ioctls=1
check "and nothing is attached" cbt_tool expect ENOENT info /dev/ram0

rm -rf $t
tap_done
