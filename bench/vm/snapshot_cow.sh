#!/bin/sh
# Copy-on-write and image benchmarks, in the test VM (cloud kernel), module
# loaded with 64 KiB chunks. Our snapshot of /dev/ram0 keeps its difference
# storage on /dev/ram3; the peer, LVM-classic dm-snapshot, has its origin on
# /dev/ram1 and its exception store on /dev/ram2, 64 KiB chunks: the same
# chunk size and storage medium (brd). Writes are 4 KiB, direct, psync (QD1)
# unless said otherwise, over the first $SIZE bytes. Rows (ids):
#
#   cow.first_touch.vs_none / .vs_dm_snapshot / .vs_dm_transient
#       random writes on a fresh snapshot: fio writes each 4 KiB block once,
#       so about one write in 16 copies a chunk; vs the device tracked with no
#       snapshot, vs dm-snapshot persistent (P, what LVM uses) and transient (N)
#   cow.steady.vs_none / .vs_dm_snapshot
#       the same once every chunk is copied
#   cow.every_copy.vs_limit
#       every write lands on an uncopied chunk (4 KiB written, 60 KiB skipped)
#       vs its physical limit measured in the same run on the same device:
#       the time of that write plus one 64 KiB read of its chunk
#   cow.every_copy.vs_limit_with_store
#       the same vs that limit plus one 64 KiB write to the difference
#       storage's device (the copy must be saved too; on brd under TCG each
#       of the three is a CPU copy on the same cores)
#   cow.p99_latency.vs_none
#       p99 completion latency at queue depth 16 (libaio), first touch
#   image.read.vs_original (half the chunks copied), image.read.all_copied.vs_original,
#   image.read.none_copied.vs_original
#       1 MiB sequential reads of the image vs the original
#   snapshot.take.vs_dm_snapshot
#       take time with random writes running vs dm-snapshot suspend+create+resume
#
# Prints one BENCH {...} line per row (see bench/run.ts). BENCH_QUICK=1: small runs.
set -u
. /project/bench/vm/_lib.sh
DEV=/dev/ram0
ORIG=/dev/ram1
COW=/dev/ram2
STORE=/dev/ram3
REPS=5
RUNTIME=6
SIZE=64M
HALF=32M
CHUNK=65536
[ "${BENCH_QUICK:-0}" = 1 ] && { REPS=1; RUNTIME=1; SIZE=8M; HALF=4M; }
rmmod blksnap 2>/dev/null
insmod /project/kmod/module/blksnap.ko chunk_minimum_shift=16 || exit 1

COND="brd 128 MiB, 64 KiB chunks, storage on brd, first $SIZE of the device, QEMU TCG, cloud kernel $(uname -r)"

snap_take() { # DEV -> ID
	ID=$(snap_ctl create $STORE 262144) && snap_ctl add "$ID" "$1" && snap_ctl take "$ID"
}
dm_up() { # P|N: dm-snapshot of $ORIG on $COW
	dd if=/dev/zero of=$COW bs=1M count=1 oflag=direct 2>/dev/null
	dmsetup create bo --table "0 $s snapshot-origin $ORIG" &&
		dmsetup create bs --table "0 $s snapshot $ORIG $COW $1 128" && dmsetup mknodes
}
dm_down() { dmsetup remove bs && dmsetup remove bo; }

snap_ctl attach $DEV >/dev/null 2>&1
for f in none first steady dmfirst dmsteady dmnfirst imghalf orighalf imgall origall imgnone orignone \
	every wlim rlim slim p99 p99none; do : >/tmp/$f; done
s=$(blockdev --getsz $ORIG)
AIO="ioengine=libaio iodepth=16 io_size=$HALF"
for r in $(seq $REPS); do
	# Tracked, no snapshot: random writes, the parts of the every-copy limit
	# (the write, the chunk's read, the chunk's write to the storage device),
	# and the latency at queue depth 16.
	fio_jobs "$DEV randwrite 4k io_size=$SIZE" "$DEV write:60k 4k" "$DEV read 64k" \
		"$DEV randwrite 4k $AIO" "$STORE write 64k" >/tmp/out
	nth 1 1 </tmp/out >>/tmp/none
	nth 2 1 </tmp/out >>/tmp/wlim
	nth 3 1 </tmp/out >>/tmp/rlim
	nth 4 2 </tmp/out >>/tmp/p99none
	nth 5 1 </tmp/out >>/tmp/slim

	# Ours: image reads with no chunk copied, then first touch.
	snap_take $DEV || exit 1
	IMG=$(snap_ctl image $DEV)
	fio_jobs "$IMG read 1M" "$DEV read 1M" "$DEV randwrite 4k io_size=$SIZE" >/tmp/out
	nth 1 1 </tmp/out >>/tmp/imgnone
	nth 2 1 </tmp/out >>/tmp/orignone
	nth 3 1 </tmp/out >>/tmp/first
	snap_ctl destroy "$ID"
	# Ours: every other chunk copied, image reads; every chunk copied, steady
	# state, image reads.
	snap_take $DEV || exit 1
	IMG=$(snap_ctl image $DEV)
	fio_jobs "$DEV write:64k 64k" "$IMG read 1M" "$DEV read 1M" "$DEV write 1M" \
		"$DEV randwrite 4k io_size=$SIZE" "$IMG read 1M" "$DEV read 1M" >/tmp/out
	nth 2 1 </tmp/out >>/tmp/imghalf
	nth 3 1 </tmp/out >>/tmp/orighalf
	nth 5 1 </tmp/out >>/tmp/steady
	nth 6 1 </tmp/out >>/tmp/imgall
	nth 7 1 </tmp/out >>/tmp/origall
	snap_ctl destroy "$ID"
	# Ours: every write copies a chunk; then the latency at queue depth 16.
	snap_take $DEV || exit 1
	fio_jobs "$DEV write:60k 4k" | nth 1 1 >>/tmp/every
	snap_ctl destroy "$ID"
	snap_take $DEV || exit 1
	fio_jobs "$DEV randwrite 4k $AIO" | nth 1 2 >>/tmp/p99
	snap_ctl destroy "$ID"

	# dm-snapshot, persistent then transient.
	dm_up P || exit 1
	fio_jobs "/dev/mapper/bo randwrite 4k io_size=$SIZE" "/dev/mapper/bo write 1M" \
		"/dev/mapper/bo randwrite 4k io_size=$SIZE" >/tmp/out
	nth 1 1 </tmp/out >>/tmp/dmfirst
	nth 3 1 </tmp/out >>/tmp/dmsteady
	dm_down
	dm_up N || exit 1
	fio_jobs "/dev/mapper/bo randwrite 4k io_size=$SIZE" | nth 1 1 >>/tmp/dmnfirst
	dm_down
done

m() { median <"/tmp/$1"; }
sp() { spread <"/tmp/$1"; }
bench_line cow.first_touch.vs_none "4 KiB random write with a snapshot held, first touch, vs no snapshot" MiB/s "$(m first)" "$(m none)" "tracked, no snapshot" true $REPS "$(sp first)"
bench_line cow.first_touch.vs_dm_snapshot "4 KiB random write with a snapshot held, first touch, vs dm-snapshot" MiB/s "$(m first)" "$(m dmfirst)" "dm-snapshot persistent (LVM classic), first touch" true $REPS "$(sp first)"
bench_line cow.first_touch.vs_dm_transient "4 KiB random write with a snapshot held, first touch, vs dm-snapshot transient" MiB/s "$(m first)" "$(m dmnfirst)" "dm-snapshot transient (no metadata writes), first touch" true $REPS "$(sp first)"
bench_line cow.steady.vs_none "4 KiB random write with a snapshot held, steady state, vs no snapshot" MiB/s "$(m steady)" "$(m none)" "tracked, no snapshot" true $REPS "$(sp steady)"
bench_line cow.steady.vs_dm_snapshot "4 KiB random write with a snapshot held, steady state, vs dm-snapshot" MiB/s "$(m steady)" "$(m dmsteady)" "dm-snapshot persistent (LVM classic), steady state" true $REPS "$(sp steady)"
# The limit of a write that copies: 4 KiB at the write's speed plus 64 KiB at the read's.
lim=$(awk -v w="$(m wlim)" -v r="$(m rlim)" 'BEGIN { if (w > 0 && r > 0) printf "%.2f", 4 / (4 / w + 64 / r); else print 0 }')
bench_line cow.every_copy.vs_limit "4 KiB write that copies its 64 KiB chunk, every write, vs its limit" MiB/s "$(m every)" "$lim" "limit: the write plus one read of its chunk (both measured, no snapshot)" true $REPS "$(sp every)"
lims=$(awk -v w="$(m wlim)" -v r="$(m rlim)" -v s="$(m slim)" 'BEGIN { if (w > 0 && r > 0 && s > 0) printf "%.2f", 4 / (4 / w + 64 / r + 64 / s); else print 0 }')
bench_line cow.every_copy.vs_limit_with_store "4 KiB write that copies its 64 KiB chunk, every write, vs its limit with the copy saved" MiB/s "$(m every)" "$lims" "limit: the write, one read of its chunk and one 64 KiB write to the storage device (all measured, no snapshot)" true $REPS "$(sp every)"
bench_line cow.p99_latency.vs_none "p99 latency of 4 KiB random writes at queue depth 16 (libaio), first touch, vs no snapshot" us "$(m p99)" "$(m p99none)" "tracked, no snapshot" false $REPS "$(sp p99)"
bench_line image.read.vs_original "1 MiB sequential read of the image (half the chunks copied) vs the original" MiB/s "$(m imghalf)" "$(m orighalf)" "the original device" true $REPS "$(sp imghalf)"
bench_line image.read.all_copied.vs_original "1 MiB sequential read of the image (every chunk copied) vs the original" MiB/s "$(m imgall)" "$(m origall)" "the original device" true $REPS "$(sp imgall)"
bench_line image.read.none_copied.vs_original "1 MiB sequential read of the image (no chunk copied) vs the original" MiB/s "$(m imgnone)" "$(m orignone)" "the original device" true $REPS "$(sp imgnone)"

# Take time with writes running.
: >/tmp/take; : >/tmp/dmtake
for r in $(seq $REPS); do
	fio --name=w --filename=$DEV --rw=randwrite --bs=4k --direct=1 --size=$SIZE \
		--runtime=30 --time_based >/dev/null 2>&1 &
	fpid=$!
	sleep 1
	ID=$(snap_ctl create $STORE 262144) && snap_ctl add "$ID" $DEV || exit 1
	t0=$(now_us); snap_ctl take "$ID"; t1=$(now_us)
	echo $(((t1 - t0) / 1000)) >>/tmp/take
	kill $fpid; wait $fpid 2>/dev/null
	snap_ctl destroy "$ID"

	dmsetup create bo --table "0 $s snapshot-origin $ORIG" && dmsetup mknodes || exit 1
	fio --name=w --filename=/dev/mapper/bo --rw=randwrite --bs=4k --direct=1 --size=$SIZE \
		--runtime=30 --time_based >/dev/null 2>&1 &
	fpid=$!
	sleep 1
	dd if=/dev/zero of=$COW bs=1M count=1 oflag=direct 2>/dev/null
	t0=$(now_us)
	dmsetup suspend bo && dmsetup create bs --table "0 $s snapshot $ORIG $COW P 128" &&
		dmsetup resume bo
	t1=$(now_us)
	echo $(((t1 - t0) / 1000)) >>/tmp/dmtake
	kill $fpid; wait $fpid 2>/dev/null
	dm_down
done
bench_line snapshot.take.vs_dm_snapshot "snapshot take time with 4 KiB random writes running vs dm-snapshot creation" ms "$(m take)" "$(m dmtake)" "dm-snapshot suspend+create+resume" false $REPS "$(sp take)"

snap_ctl detach $DEV >/dev/null 2>&1
rmmod blksnap && insmod /project/kmod/module/blksnap.ko
