#!/bin/sh
# vm-tags: smoke
# vm-modparams: enable_test_ioctls=1
# The tracker and its CBT map: writes checked byte by byte against a model
# (single-sector, straddling, first and last block, discard, write-zeroes,
# reads), cbtdirty, the 255 wrap, partitions, resize, attach/detach errors.
. /project/tests/vm/lib.sh

t=/tmp/10-cbt
mkdir -p $t

# --- ramdisk: model checks --------------------------------------------------
check "attach /dev/ram0" cbt_tool attach /dev/ram0
check "cbtinfo of a new tracker: 128 MiB, 64 KiB blocks, 2048 blocks, changes 0" \
	sh -c 'cbt_tool info /dev/ram0 | grep -q "^device_capacity=134217728 block_size=65536 block_count=2048 changes_number=0 "'
cbt_tool semantics /dev/ram0 || TAP_FAILED=1
check "attach twice gives EALREADY" cbt_tool expect EALREADY attach /dev/ram0
check "detach /dev/ram0" cbt_tool detach /dev/ram0
check "detach again gives ENOENT" cbt_tool expect ENOENT detach /dev/ram0
check "cbtinfo after detach gives ENOENT" cbt_tool expect ENOENT info /dev/ram0
check "attach again starts a new map (changes 0)" \
	sh -c 'cbt_tool attach /dev/ram0 && cbt_tool info /dev/ram0 | grep -q "changes_number=0 " && cbt_tool detach /dev/ram0'

# --- the 255 wrap --------------------------------------------------------------
check "attach /dev/ram1" cbt_tool attach /dev/ram1
cbt_tool wrap /dev/ram1 || TAP_FAILED=1
check "detach /dev/ram1" cbt_tool detach /dev/ram1

# --- loop device on tmpfs: discard and write-zeroes reach the tracker ----------
truncate -s 128M $t/disk.img
loop=$(loop_setup $t/disk.img)
check "attach $loop" cbt_tool attach "$loop"
cbt_tool semantics "$loop" || TAP_FAILED=1
check "detach $loop" cbt_tool detach "$loop"
losetup -d "$loop"

# --- partitions: sectors relative to the partition ---------------------------
truncate -s 64M $t/part.img
loop=$(loop_setup -P $t/part.img)
# one partition at sector 2048 (1 MiB), 32 MiB long
cbt_tool mkpart "$loop" 2048 65536 >/dev/null
i=0
while [ ! -b "${loop}p1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b "${loop}p1" ]; then
	check "attach the partition ${loop}p1" cbt_tool attach "${loop}p1"
	check "attach its disk $loop" cbt_tool attach "$loop"
	check "partition capacity is 32 MiB" \
		sh -c "cbt_tool info ${loop}p1 | grep -q '^device_capacity=33554432 '"
	cbt_tool switch "${loop}p1"
	cbt_tool switch "$loop"
	# 4 KiB at 192 KiB into the partition: partition block 3; disk block
	# (1 MiB + 192 KiB) / 64 KiB = 19
	dd if=/dev/urandom of="${loop}p1" bs=4k seek=48 count=1 oflag=direct 2>/dev/null
	cbt_tool switch "${loop}p1"
	cbt_tool switch "$loop"
	check "the partition's map marks partition block 3 only" \
		sh -c "[ \"\$(cbt_tool map ${loop}p1)\" = '3 2' ]"
	check "the disk's map marks disk block 19 only" \
		sh -c "[ \"\$(cbt_tool map $loop | grep -v '^0 ')\" = '19 2' ]"
	check "detach the partition" cbt_tool detach "${loop}p1"
	check "detach the disk" cbt_tool detach "$loop"
else
	tap_skip "partition tests" "no ${loop}p1 appeared"
fi
losetup -d "$loop"

# --- resize: a new generation at the next switch -----------------------------
truncate -s 64M $t/grow.img
loop=$(loop_setup $t/grow.img)
cbt_tool attach "$loop"
cbt_tool switch "$loop"
gen1=$(cbt_tool info "$loop" | sed 's/.*generation_id=//')
truncate -s 96M $t/grow.img
losetup -c "$loop"
check "after the resize the map still has the old capacity until the switch" \
	sh -c "cbt_tool info $loop | grep -q '^device_capacity=67108864 '"
dd if=/dev/urandom of="$loop" bs=64k seek=1200 count=1 oflag=direct 2>/dev/null
check "a write past the old end corrupts the map: cbtmap gives EFAULT" \
	cbt_tool expect EFAULT map "$loop"
check "the switch after the resize succeeds" cbt_tool switch "$loop"
info=$(cbt_tool info "$loop")
gen2=$(echo "$info" | sed 's/.*generation_id=//')
check "after the switch: 96 MiB, 1536 blocks, changes 1" \
	sh -c "echo '$info' | grep -q '^device_capacity=100663296 block_size=65536 block_count=1536 changes_number=1 '"
check "after the switch: a new generation" test "$gen1" != "$gen2"
check "the new map reads again" cbt_tool map "$loop"
check "detach the resized loop" cbt_tool detach "$loop"
losetup -d "$loop"

rm -rf $t
tap_done
