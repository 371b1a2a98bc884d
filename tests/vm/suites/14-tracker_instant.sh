#!/bin/sh
# vm-tags: kernels
# vm-modparams: enable_test_ioctls=1 chunk_minimum_shift=16 diff_storage_minimum=16384
# A take is one instant for every write, and every write is seen once, at
# the right sectors, by every tracker it touches:
#  - a write held by blk-throttle (cgroup io.max) or by dm-delay when the
#    take comes: the take waits for it, the image holds it, reads the same
#    before and after, and the CBT marks it in the interval the take ends;
#  - the remainders of a write split below a stacked device (dm linear over
#    a partition, 64 KiB max_sectors) mark exactly the blocks written, in the
#    partition's and the disk's maps;
#  - a whole-disk write into tracked partitions is marked in their maps and
#    copied for their snapshots (also one spanning two partitions, each in a
#    taken snapshot);
#  - a partition and its whole disk are never both in snapshots (EBUSY);
#  - a device whose old image still exists cannot join a new snapshot
#    (EEXIST) until that snapshot is destroyed.
# Chunks are 64 KiB, tracking blocks 64 KiB.
. /project/tests/vm/lib.sh

t=/tmp/14-instant
mkdir -p $t
STORE=/dev/shm/14
mkdir -p $STORE

# md5 PATH: of the first MiB (devices read with O_DIRECT, past the page cache).
md5() {
	if [ -b "$1" ]; then
		dd if="$1" bs=1M count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1
	else
		dd if="$1" bs=1M count=1 2>/dev/null | md5sum | cut -d' ' -f1
	fi
}
image_of() { # device: waits for the image node and prints it
	_img=$(snap_ctl image "$1") && wait_bdev "$_img" && echo "$_img"
}
changes_number() { cbt_tool info "$1" | tr ' ' '\n' | sed -n 's/^changes_number=//p'; }
# blocks_marked DEV N: the blocks whose read-map value is N, space-separated.
blocks_marked() { cbt_tool map "$1" | awk -v n="$2" '$2 == n {printf "%s ", $1}' | sed 's/ $//'; }
seq_blocks() { i=$1; out=""; while [ "$i" -le "$2" ]; do out="$out $i"; i=$((i + 1)); done; echo "${out# }"; }

# held_write_take DEV WRITE-CMD: starts WRITE-CMD (which writes /tmp/w.bin
# to DEV's first MiB and is held below the hook), takes a snapshot of DEV
# while it is held, reads the image, waits for the write, reads again.
held_write_take() {
	dev=$1
	dd if=/dev/zero of="$dev" bs=1M count=1 oflag=direct 2>/dev/null || return 1
	cbt_tool switch "$dev" || return 1	# the held write is alone in its interval
	sh -c "$2" &
	wpid=$!
	sleep 1
	kill -0 $wpid 2>/dev/null || { echo "the write was not held"; return 1; }
	ID=$(snap_ctl create $STORE 1048576) && snap_ctl add "$ID" "$dev" || return 1
	t0=$(date +%s)
	snap_ctl take "$ID" || return 1
	echo "take took $(($(date +%s) - t0)) s (the held write lands first)"
	IMG=$(image_of "$dev") || return 1
	a=$(md5 "$IMG")
	wait $wpid
	b=$(md5 "$IMG")
	w=$(md5 /tmp/w.bin)
	echo "image before the write landed $a, after $b; the write $w"
	n=$(changes_number "$dev")
	marked=$(blocks_marked "$dev" "$n")
	echo "blocks marked $n (the interval the take ends): $marked"
	snap_ctl destroy "$ID"
	[ "$a" = "$b" ] && [ "$a" = "$w" ] && [ "$marked" = "$(seq_blocks 0 15)" ]
}

dd if=/dev/urandom of=/tmp/w.bin bs=1M count=1 2>/dev/null

# --- blk-throttle: a write held by io.max across the take ---------------------
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
if echo +io >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null && mkdir -p /sys/fs/cgroup/slow14 &&
	echo "1:0 wbps=131072" >/sys/fs/cgroup/slow14/io.max; then
	check "attach /dev/ram0" snap_ctl attach /dev/ram0
	step "a 1 MiB write held by io.max (128 KiB/s) across a take: image = the write, before and after it lands; CBT marks it" \
		held_write_take /dev/ram0 \
		"echo \$\$ >/sys/fs/cgroup/slow14/cgroup.procs; exec dd if=/tmp/w.bin of=/dev/ram0 bs=1M count=1 oflag=direct 2>/dev/null"
	echo "1:0 wbps=max" >/sys/fs/cgroup/slow14/io.max
	check "detach /dev/ram0" snap_ctl detach /dev/ram0
else
	tap_skip "a write held by io.max across a take" "no cgroup v2 io controller"
fi

# --- dm-delay: a write held below a tracked dm device, and above a tracked disk --
if dmsetup create d14 --table "0 262144 delay /dev/ram1 0 0 /dev/ram1 0 4000" 2>/dev/null; then
	D=/dev/mapper/d14
	wait_bdev $D || { dmsetup mknodes; wait_bdev $D; }
	check "attach the dm-delay device" snap_ctl attach $D
	step "a write held 4 s by dm-delay under the tracked dm device across a take" \
		held_write_take $D "dd if=/tmp/w.bin of=$D bs=1M count=1 oflag=direct 2>/dev/null"
	check "detach the dm-delay device" snap_ctl detach $D
	# Tracked below: the write reaches /dev/ram1 after the take, so it is
	# copied first and marked in the next interval.
	below_take() {
		dd if=/dev/zero of=/dev/ram1 bs=1M count=1 oflag=direct 2>/dev/null || return 1
		dd if=/tmp/w.bin of=$D bs=1M count=1 oflag=direct 2>/dev/null &
		wpid=$!
		sleep 1
		ID=$(snap_ctl create $STORE 1048576) && snap_ctl add "$ID" /dev/ram1 &&
			snap_ctl take "$ID" || return 1
		IMG=$(image_of /dev/ram1) || return 1
		a=$(md5 "$IMG")
		wait $wpid
		b=$(md5 "$IMG")
		z=$(dd if=/dev/zero bs=1M count=1 2>/dev/null | md5sum | cut -d' ' -f1)
		on=$(md5 /dev/ram1)
		echo "image $a then $b (zeros $z); device $on (the write $(md5 /tmp/w.bin))"
		n=$(changes_number /dev/ram1)
		snap_ctl destroy "$ID"
		ID=$(snap_ctl create $STORE 1048576) && snap_ctl add "$ID" /dev/ram1 &&
			snap_ctl take "$ID" || return 1
		next=$(blocks_marked /dev/ram1 $((n + 1)))
		echo "blocks marked $((n + 1)) at the next take: $next"
		snap_ctl destroy "$ID"
		[ "$a" = "$z" ] && [ "$b" = "$z" ] && [ "$on" = "$(md5 /tmp/w.bin)" ] &&
			[ "$next" = "$(seq_blocks 0 15)" ]
	}
	check "attach /dev/ram1" snap_ctl attach /dev/ram1
	step "a write held by dm-delay over a tracked disk lands after the take: copied first, marked next" below_take
	check "detach /dev/ram1" snap_ctl detach /dev/ram1
	dmsetup remove d14
else
	tap_skip "writes held by dm-delay across a take" "no dm-delay"
fi

# --- split remainders through dm over a partition -----------------------------
truncate -s 128M $t/s.img
loop=$(loop_setup -P $t/s.img)
cbt_tool mkpart "$loop" 2048 131072 133120 65536 >/dev/null
wait_bdev "${loop}p1" && wait_bdev "${loop}p2"
if dmsetup create s14 --table "0 131072 linear ${loop}p1 0" 2>/dev/null; then
	wait_bdev /dev/mapper/s14 || { dmsetup mknodes; wait_bdev /dev/mapper/s14; }
	echo 64 >/sys/block/${loop#/dev/}/queue/max_sectors_kb
	cbt_tool attach "${loop}p1"
	cbt_tool attach "$loop"
	cbt_tool switch "${loop}p1"
	cbt_tool switch "$loop"
	dd if=/dev/zero of=/dev/mapper/s14 bs=1M seek=8 count=1 oflag=direct 2>/dev/null
	cbt_tool switch "${loop}p1"
	cbt_tool switch "$loop"
	check "a 1 MiB write through dm, split in 16 below, marks p1 blocks 128..143 only" \
		test "$(blocks_marked "${loop}p1" 2)" = "$(seq_blocks 128 143)"
	check "and the disk's blocks 144..159 only (p1 starts at 1 MiB)" \
		test "$(blocks_marked "$loop" 2)" = "$(seq_blocks 144 159)"
	cbt_tool detach "$loop"
	cbt_tool detach "${loop}p1"
	dmsetup remove s14
else
	tap_skip "split remainders through dm" "dmsetup create failed"
fi
echo 1024 >/sys/block/${loop#/dev/}/queue/max_sectors_kb 2>/dev/null

# --- whole-disk writes into tracked partitions --------------------------------
check "attach p1 and p2 (not the disk)" sh -c "cbt_tool attach ${loop}p1 && cbt_tool attach ${loop}p2"
cbt_tool switch "${loop}p1"
dd if=/dev/urandom of="$loop" bs=64k seek=26 count=1 oflag=direct 2>/dev/null
cbt_tool switch "${loop}p1"
check "a whole-disk write at disk block 26 is marked in p1's map as block 10" \
	test "$(cbt_tool map "${loop}p1" | tr '\n' ' ')" = "10 2 "

whole_disk_cow() {
	snap_sectors fill "${loop}p1" 1 >/dev/null && snap_sectors fill "${loop}p2" 1 >/dev/null || return 1
	ID=$(snap_ctl create $STORE 1048576) && snap_ctl add "$ID" "${loop}p1" &&
		snap_ctl add "$ID" "${loop}p2" && snap_ctl take "$ID" || return 1
	I1=$(image_of "${loop}p1") && I2=$(image_of "${loop}p2") || return 1
	# Into p1 only; then one write across the p1|p2 border at disk 65 MiB
	# (1.5 MiB from 64.5 MiB: its first bio holds 1 MiB across the border).
	dd if=/dev/urandom of="$loop" bs=64k seek=100 count=4 oflag=direct 2>/dev/null &&
		dd if=/dev/urandom of="$loop" bs=1536k seek=43 count=1 oflag=direct 2>/dev/null || return 1
	snap_sectors check "$I1" 1 && snap_sectors check "$I2" 1 || return 1
	snap_ctl info "${loop}p1" | grep -q '^error_code=0 ' && snap_ctl info "${loop}p2" | grep -q '^error_code=0 ' || return 1
	snap_ctl destroy "$ID"
}
step "whole-disk writes into p1, and across p1|p2, are copied for both partitions' snapshot" whole_disk_cow
check "and marked in both maps" sh -c "cbt_tool switch ${loop}p2 && [ -n \"\$(cbt_tool map ${loop}p2)\" ]"

# --- a partition and its whole disk in snapshots ------------------------------
check "attach the whole disk" cbt_tool attach "$loop"
I1=$(snap_ctl create $STORE 1048576)
check "p1 joins snapshot 1" snap_ctl add "$I1" "${loop}p1"
I2=$(snap_ctl create $STORE 1048576)
check "the whole disk cannot join snapshot 2 while p1 is in one (EBUSY)" snap_ctl expect EBUSY add "$I2" "$loop"
check "nor snapshot 1 (EBUSY)" snap_ctl expect EBUSY add "$I1" "$loop"
check "p2 (no overlap) joins snapshot 1" snap_ctl add "$I1" "${loop}p2"
check "take snapshot 1" snap_ctl take "$I1"
check "the disk still cannot join snapshot 2 (EBUSY)" snap_ctl expect EBUSY add "$I2" "$loop"
check "destroy snapshot 1" snap_ctl destroy "$I1"
check "now the disk joins snapshot 2" snap_ctl add "$I2" "$loop"
check "and p1 cannot join snapshot 2 (EBUSY)" snap_ctl expect EBUSY add "$I2" "${loop}p1"
check "take snapshot 2" snap_ctl take "$I2"
check "destroy snapshot 2" snap_ctl destroy "$I2"
for d in "$loop" "${loop}p1" "${loop}p2"; do cbt_tool detach "$d"; done
losetup -d "$loop"

# --- an old image of a re-attached device ------------------------------------
reattach() {
	snap_ctl attach /dev/ram2 || return 1
	S1=$(snap_ctl create $STORE 1048576) && snap_ctl add "$S1" /dev/ram2 && snap_ctl take "$S1" || return 1
	image_of /dev/ram2 >/dev/null || return 1
	snap_ctl detach /dev/ram2 && snap_ctl attach /dev/ram2 || return 1
	S2=$(snap_ctl create $STORE 1048576) || return 1
	snap_ctl expect EEXIST add "$S2" /dev/ram2 || return 1
	snap_ctl destroy "$S1" && snap_ctl add "$S2" /dev/ram2 && snap_ctl take "$S2" || return 1
	test "$(snap_ctl image /dev/ram2)" = /dev/blksnap-1-2 || return 1
	snap_ctl destroy "$S2" && snap_ctl detach /dev/ram2
}
log_mark
step "a re-attached device whose old image exists cannot join a snapshot (EEXIST) until that one is destroyed" reattach
check "no duplicate-name warning in the log" test "$(log_count_since_mark 'duplicate')" = 0

rm -rf $t $STORE
tap_done
