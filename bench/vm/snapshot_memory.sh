#!/bin/sh
# What tracking and snapshots cost in kernel memory and in difference
# storage, in the test VM (cloud kernel), module loaded with its defaults
# (what operators run). Rows (ids):
#
#   kmem.tracker_per_tib.vs_cbt_map
#       kernel memory (slab + vmalloc + per-CPU) taken by attaching a tracker to a 1 TiB device (a loop device
#       on a sparse file), vs one CBT map of that device at the module's
#       block size (one byte per block), the least a tracker can hold
#   kmem.snapshot_per_tib.vs_dm_snapshot
#       kernel memory taken by taking a snapshot of that device (difference storage
#       on /dev/vda), vs dm-snapshot of it at the same chunk size with an
#       exception store as large as the device
#   diffstore.growth.vs_written, diffstore.growth.vs_dm_snapshot
#       difference storage consumed per GiB of 4 KiB random writes spread
#       over the 1 TiB device while a snapshot is held (so almost every write
#       lands in a chunk of its own, as a database's writes over a large
#       volume do), vs the bytes written (the least: each block is written
#       once) and vs dm-snapshot with LVM's default 4 KiB chunks
#
# Kernel memory is read after dropping clean caches; a figure is the median
# of the repetitions' differences. Prints BENCH lines (see bench/run.ts).
set -u
. /project/bench/vm/_lib.sh
REPS=3
WRITE_MIB=4
[ "${BENCH_QUICK:-0}" = 1 ] && { REPS=1; WRITE_MIB=1; }
rmmod blksnap 2>/dev/null
insmod /project/kmod/module/blksnap.ko || exit 1
P=/sys/module/blksnap/parameters
CHUNK_SHIFT=$(cat $P/chunk_minimum_shift)
CHUNK_SECT=$((1 << (CHUNK_SHIFT - 9)))

# A 1 TiB device and a 1 TiB exception store for dm, both sparse.
truncate -s 1099511627776 /tmp/big.img
truncate -s 1099511627776 /tmp/cow.img
BIG=$(losetup -f) && losetup "$BIG" /tmp/big.img || exit 1
BIGCOW=$(losetup -f) && losetup "$BIGCOW" /tmp/cow.img || exit 1
s=$(blockdev --getsz "$BIG")


: >/tmp/trk; : >/tmp/snap; : >/tmp/dmsnap
for r in $(seq $REPS); do
	b=$(kmem_kib); snap_ctl attach "$BIG" || exit 1; a=$(kmem_kib)
	echo $((a - b)) >>/tmp/trk
	# The block size and count the module chose: one map is a byte per block.
	cbt_tool info "$BIG" >/tmp/cbtinfo
	block_size=$(sed -n 's/.*block_size=\([0-9]*\).*/\1/p' /tmp/cbtinfo)
	block_count=$(sed -n 's/.*block_count=\([0-9]*\).*/\1/p' /tmp/cbtinfo)
	b=$(kmem_kib)
	ID=$(snap_ctl create /dev/vda 1048576) && snap_ctl add "$ID" "$BIG" && snap_ctl take "$ID" || exit 1
	a=$(kmem_kib)
	echo $((a - b)) >>/tmp/snap
	snap_ctl destroy "$ID"
	snap_ctl detach "$BIG"

	dd if=/dev/zero of="$BIGCOW" bs=1M count=1 oflag=direct 2>/dev/null
	b=$(kmem_kib)
	dmsetup create bo --table "0 $s snapshot-origin $BIG" &&
		dmsetup create bs --table "0 $s snapshot $BIG $BIGCOW P $CHUNK_SECT" && dmsetup mknodes ||
		exit 1
	a=$(kmem_kib)
	echo $((a - b)) >>/tmp/dmsnap
	dmsetup remove bs; dmsetup remove bo
done
mib() { median <"/tmp/$1" | awk '{ printf "%.2f", $1 / 1024 }'; }
sp() { spread <"/tmp/$1"; }
MAP_MIB=$(awk -v n="$block_count" 'BEGIN { printf "%.3f", n / 1048576 }')
COND="1 TiB loop device on a sparse file, module defaults (CBT block $block_size bytes, chunk $((1 << CHUNK_SHIFT)) bytes), slab + vmalloc + per-CPU after drop_caches, QEMU TCG, cloud kernel $(uname -r)"
bench_line kmem.tracker_per_tib.vs_cbt_map "kernel memory of a tracker per TiB tracked" MiB "$(mib trk)" "$MAP_MIB" "limit: one CBT map (one byte per $block_size-byte block)" false $REPS "$(sp trk)"
bench_line kmem.snapshot_per_tib.vs_dm_snapshot "kernel memory of a snapshot per TiB of device" MiB "$(mib snap)" "$(mib dmsnap)" "dm-snapshot persistent, same chunk size, 1 TiB exception store" false $REPS "$(sp snap)"

# Difference storage growth: a file on tmpfs that grows in 4 MiB steps, so
# its allocated size shows what was consumed; dm's store reports its own.
rmmod blksnap && insmod /project/kmod/module/blksnap.ko diff_storage_minimum=8192 || exit 1
: >/tmp/grow; : >/tmp/dmgrow
for r in $(seq $REPS); do
	snap_ctl attach "$BIG" >/dev/null 2>&1
	: >/tmp/store.img
	ID=$(snap_ctl create /tmp/store.img 4194304) && snap_ctl add "$ID" "$BIG" && snap_ctl take "$ID" ||
		exit 1
	fio --name=g --filename="$BIG" --rw=randwrite --bs=4k --direct=1 --io_size=${WRITE_MIB}M --norandommap \
		--randseed=$r >/dev/null 2>&1
	du -k /tmp/store.img | awk -v w=$WRITE_MIB '{ printf "%.1f\n", $1 / 1024 * 1024 / w }' >>/tmp/grow
	snap_ctl destroy "$ID"
	snap_ctl detach "$BIG"
	rm -f /tmp/store.img
	fallocate -p -o 0 -l 1099511627776 /tmp/big.img 2>/dev/null # give the written blocks back

	dd if=/dev/zero of=/dev/ram2 bs=1M count=1 oflag=direct 2>/dev/null
	dmsetup create bo --table "0 $s snapshot-origin $BIG" &&
		dmsetup create bs --table "0 $s snapshot $BIG /dev/ram2 P 8" && dmsetup mknodes || exit 1
	fio --name=g --filename=/dev/mapper/bo --rw=randwrite --bs=4k --direct=1 \
		--io_size=${WRITE_MIB}M --norandommap --randseed=$r >/dev/null 2>&1
	st=$(dmsetup status bs)
	echo "dm status: $st" >&2
	# status: start length snapshot allocated/total metadata
	echo "$st" | awk -v w=$WRITE_MIB '{ split($4, a, "/"); printf "%.1f\n", a[1] / 2048 * 1024 / w }' >>/tmp/dmgrow
	dmsetup remove bs; dmsetup remove bo
done
losetup -d "$BIG"; losetup -d "$BIGCOW"
rm -f /tmp/big.img /tmp/cow.img
COND="${WRITE_MIB} MiB of 4 KiB random writes over a 1 TiB loop device with a snapshot held, our chunk $((1 << CHUNK_SHIFT)) bytes (module default), QEMU TCG, cloud kernel $(uname -r)"
bench_line diffstore.growth.vs_written "difference storage consumed per GiB of 4 KiB random writes" MiB "$(median </tmp/grow)" 1024 "limit: the bytes written (each block once)" false $REPS "$(sp grow)"
bench_line diffstore.growth.vs_dm_snapshot "difference storage consumed per GiB of 4 KiB random writes vs dm-snapshot" MiB "$(median </tmp/grow)" "$(median </tmp/dmgrow)" "dm-snapshot persistent, 4 KiB chunks (LVM's default)" false $REPS "$(sp grow)"
rmmod blksnap && insmod /project/kmod/module/blksnap.ko
