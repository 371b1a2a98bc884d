#!/bin/sh
# vm-modparams: enable_test_ioctls=1
# Runs last: a failure here wedges the kernel. 3,000 CBT switches of a
# partition while writes through a dm device over it are split below (64
# KiB max_sectors) and resubmitted in pieces, and a second writer writes the
# partition directly. Each switch closes the disk's write gate and waits
# for every write in flight; a remainder re-entering the hook must pass,
# never wait. Oracle: every switch returns, and the hung-task detector
# (10 s) reports nothing.
. /project/tests/vm/lib.sh

t=/tmp/90-stress
mkdir -p $t
truncate -s 128M $t/s.img
loop=$(loop_setup -P $t/s.img)
cbt_tool mkpart "$loop" 2048 131072 >/dev/null
wait_bdev "${loop}p1"
dmsetup create s90 --table "0 131072 linear ${loop}p1 0" || { tap_fail "dm linear over ${loop}p1"; tap_done; }
wait_bdev /dev/mapper/s90 || { dmsetup mknodes; wait_bdev /dev/mapper/s90; }
echo 64 >/sys/block/${loop#/dev/}/queue/max_sectors_kb
check "attach ${loop}p1 and the disk" sh -c "cbt_tool attach ${loop}p1 && cbt_tool attach $loop"

old=$(cat /proc/sys/kernel/hung_task_timeout_secs)
echo 10 >/proc/sys/kernel/hung_task_timeout_secs
(trap 'exit 0' TERM; while :; do dd if=/dev/zero of=/dev/mapper/s90 bs=1M count=64 oflag=direct 2>/dev/null; done) &
w1=$!
(trap 'exit 0' TERM; while :; do dd if=/dev/urandom of="${loop}p1" bs=64k count=64 seek=512 oflag=direct 2>/dev/null; done) &
w2=$!
log_mark
step "3000 switches of ${loop}p1 under split stacked writes" timeout 1200 cbt_tool switches "${loop}p1" 3000
step "and 500 of the whole disk" timeout 600 cbt_tool switches "$loop" 500
kill $w1 $w2 2>/dev/null
wait $w1 $w2 2>/dev/null
check "no hung task" test "$(log_count_since_mark 'blocked for more than')" = 0
echo "$old" >/proc/sys/kernel/hung_task_timeout_secs
check "the maps read after it" sh -c "cbt_tool map ${loop}p1 >/dev/null && cbt_tool map $loop >/dev/null"
cbt_tool detach "$loop"
cbt_tool detach "${loop}p1"
dmsetup remove s90
losetup -d "$loop"
rm -rf $t
tap_done
