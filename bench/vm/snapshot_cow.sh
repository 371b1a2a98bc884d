#!/bin/sh
# Snapshot benchmarks, in the test VM (cloud kernel), module loaded:
#  1. 4 KiB random direct writes to a brd device with a snapshot held,
#     first touch (every write copies a chunk) and steady state (all chunks
#     copied), vs the same device tracked without a snapshot, vs LVM-classic
#     dm-snapshot (origin on brd, COW on brd, 64 KiB chunks) in the same run.
#  2. Snapshot take time with writes running, vs dm-snapshot creation time
#     (suspend, load, resume) with writes running.
#  3. Sequential 1 MiB reads of the image (every chunk in the storage) vs the
#     original.
# Difference storage: a directory on /dev/shm (RAM, like brd). Prints one
# BENCH {...} line per metric (see bench/run.ts). BENCH_QUICK=1: small runs.
set -u
DEV=/dev/ram0
ORIG=/dev/ram1
COW=/dev/ram2
STORE=/dev/shm/bench_snap
REPS=3
RUNTIME=4
SIZE=64M
[ "${BENCH_QUICK:-0}" = 1 ] && { REPS=1; RUNTIME=1; SIZE=16M; }
mkdir -p $STORE
# 64 KiB chunks like the dm-snapshot peer; 128 MiB growth steps.
rmmod blksnap 2>/dev/null
insmod /project/kmod/module/blksnap.ko chunk_minimum_shift=16 diff_storage_minimum=262144 || exit 1

COND="brd 128 MiB, 64 KiB chunks, storage on tmpfs, QEMU TCG, cloud kernel $(uname -r)"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
spread() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; if (m>0) printf "%.3f", (a[NR]-a[1])/m; else print 0}'; }

# fio_bw DEV RW BS [extra...]: MiB/s (terse v3: read bw field 7, write bw field 48, KiB/s).
fio_bw() {
	dev=$1 rw=$2 bs=$3
	shift 3
	fio --name=b --filename="$dev" --rw="$rw" --bs="$bs" --direct=1 --ioengine=psync \
		--size=$SIZE --runtime=$RUNTIME --time_based=0 --minimal "$@" 2>/dev/null |
		awk -F';' -v rw="$rw" '{ kb = (rw ~ /read/) ? $7 : $48; printf "%.1f\n", kb / 1024 }'
}

bench_line() { # metric unit ours peer peerName higherIsBetter reps spread
	printf 'BENCH {"metric":"%s","unit":"%s","ours":%s,"peer":%s,"peerName":"%s","higherIsBetter":%s,"reps":%s,"spread":%s,"conditions":"%s"}\n' \
		"$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$COND"
}

snap_take() { # DEV -> ID
	ID=$(snap_ctl create $STORE 4194304) && snap_ctl add "$ID" "$1" && snap_ctl take "$ID"
}

now_us() { awk '{printf "%d\n", $1 * 1000000}' /proc/uptime; }

snap_ctl attach $DEV >/dev/null 2>&1

: >/tmp/none; : >/tmp/first; : >/tmp/steady; : >/tmp/dmfirst; : >/tmp/dmsteady
: >/tmp/imgread; : >/tmp/origread
s=$(blockdev --getsz $ORIG)
for r in $(seq $REPS); do
	# Tracked, no snapshot.
	fio_bw $DEV randwrite 4k --io_size=$SIZE >>/tmp/none
	# Ours, first touch then steady state.
	snap_take $DEV || exit 1
	fio_bw $DEV randwrite 4k --io_size=$SIZE >>/tmp/first
	dd if=/dev/zero of=$DEV bs=1M oflag=direct 2>/dev/null # copy every chunk
	fio_bw $DEV randwrite 4k --io_size=$SIZE >>/tmp/steady
	IMG=$(snap_ctl image $DEV)
	fio_bw "$IMG" read 1M >>/tmp/imgread
	fio_bw $DEV read 1M >>/tmp/origread
	snap_ctl destroy "$ID"
	# dm-snapshot.
	dd if=/dev/zero of=$COW bs=1M count=1 oflag=direct 2>/dev/null
	dmsetup create bo --table "0 $s snapshot-origin $ORIG" &&
		dmsetup create bs --table "0 $s snapshot $ORIG $COW P 128" && dmsetup mknodes || exit 1
	fio_bw /dev/mapper/bo randwrite 4k --io_size=$SIZE >>/tmp/dmfirst
	dd if=/dev/zero of=/dev/mapper/bo bs=1M count=100 oflag=direct 2>/dev/null
	fio_bw /dev/mapper/bo randwrite 4k --io_size=$SIZE >>/tmp/dmsteady
	dmsetup remove bs && dmsetup remove bo
done

n=$(median </tmp/none); f=$(median </tmp/first); st=$(median </tmp/steady)
df=$(median </tmp/dmfirst); ds=$(median </tmp/dmsteady)
bench_line "4 KiB random write with a snapshot held, first touch, vs no snapshot" MiB/s "$f" "$n" "tracked, no snapshot" true $REPS "$(spread </tmp/first)"
bench_line "4 KiB random write with a snapshot held, steady state, vs no snapshot" MiB/s "$st" "$n" "tracked, no snapshot" true $REPS "$(spread </tmp/steady)"
bench_line "4 KiB random write with a snapshot held, first touch, vs dm-snapshot" MiB/s "$f" "$df" "dm-snapshot (LVM classic), first touch" true $REPS "$(spread </tmp/first)"
bench_line "4 KiB random write with a snapshot held, steady state, vs dm-snapshot" MiB/s "$st" "$ds" "dm-snapshot (LVM classic), steady state" true $REPS "$(spread </tmp/steady)"
bench_line "1 MiB sequential read of the image (all chunks in storage) vs the original" MiB/s "$(median </tmp/imgread)" "$(median </tmp/origread)" "the original device" true $REPS "$(spread </tmp/imgread)"

# Take time with writes running.
: >/tmp/take; : >/tmp/dmtake
for r in $(seq $REPS); do
	fio --name=w --filename=$DEV --rw=randwrite --bs=4k --direct=1 --size=$SIZE \
		--runtime=30 --time_based >/dev/null 2>&1 &
	fpid=$!
	sleep 1
	ID=$(snap_ctl create $STORE 4194304) && snap_ctl add "$ID" $DEV || exit 1
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
	dmsetup remove bs; dmsetup remove bo
done
bench_line "snapshot take time with 4 KiB random writes running vs dm-snapshot creation" ms "$(median </tmp/take)" "$(median </tmp/dmtake)" "dm-snapshot suspend+create+resume" false $REPS "$(spread </tmp/take)"

snap_ctl detach $DEV >/dev/null 2>&1
rm -rf $STORE
rmmod blksnap && insmod /project/kmod/module/blksnap.ko
