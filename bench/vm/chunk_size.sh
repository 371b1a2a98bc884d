#!/bin/sh
# The copy-on-write chunk size: the module's default (chunk_minimum_shift)
# against a quarter of it and four times it, side by side in one boot (cloud
# kernel, QEMU TCG). What the default is chosen from (docs/kernel-abi.md).
# Rows (ids; DEFAULT, SMALLER and LARGER are sizes such as 64k):
#
#   chunk.first_touch.DEFAULT.vs_SMALLER, chunk.first_touch.DEFAULT.vs_LARGER
#       4 KiB random writes on a fresh snapshot (brd, 64 MiB), MiB/s
#   chunk.seq_first_touch.DEFAULT.vs_SMALLER, ...vs_LARGER
#       1 MiB sequential writes on a fresh snapshot, MiB/s
#   chunk.p99.DEFAULT.vs_SMALLER, ...vs_LARGER
#       p99 latency of 4 KiB random writes at queue depth 16, first touch
#   chunk.growth.DEFAULT.vs_SMALLER, ...vs_LARGER
#       difference storage consumed by 4 MiB of 4 KiB random writes spread
#       over a 1 TiB device (a file on tmpfs growing in 4 MiB steps)
#   chunk.kmem.DEFAULT.vs_SMALLER, ...vs_LARGER
#       kernel memory of a snapshot of that 1 TiB device (chunk table and
#       the chunk buffers allocated at take)
#
# Prints BENCH lines (see bench/run.ts). BENCH_QUICK=1: small runs.
set -u
. /project/bench/vm/_lib.sh
DEV=/dev/ram0
STORE=/dev/ram3
SIZE=64M
RUNTIME=6
REPS=3
[ "${BENCH_QUICK:-0}" = 1 ] && { REPS=1; RUNTIME=1; SIZE=8M; }
rmmod blksnap 2>/dev/null
insmod /project/kmod/module/blksnap.ko || exit 1
DEFAULT=$(cat /sys/module/blksnap/parameters/chunk_minimum_shift)
rmmod blksnap
truncate -s 1099511627776 /tmp/big.img
BIG=$(losetup -f) && losetup "$BIG" /tmp/big.img || exit 1

snap_take() { # DEV STORE SECTORS -> ID
	ID=$(snap_ctl create "$2" "$3") && snap_ctl add "$ID" "$1" && snap_ctl take "$ID"
}
name() { echo "$((1 << ($1 - 10)))k"; }

for shift in $((DEFAULT - 2)) "$DEFAULT" $((DEFAULT + 2)); do
	insmod /project/kmod/module/blksnap.ko chunk_minimum_shift="$shift" diff_storage_minimum=8192 ||
		exit 1
	snap_ctl attach $DEV >/dev/null 2>&1
	for f in first seq p99 grow kmem; do : >"/tmp/$f.$shift"; done
	for r in $(seq $REPS); do
		snap_take $DEV $STORE 262144 || exit 1
		fio_jobs "$DEV randwrite 4k io_size=$SIZE" | nth 1 1 >>"/tmp/first.$shift"
		snap_ctl destroy "$ID"
		snap_take $DEV $STORE 262144 || exit 1
		fio_jobs "$DEV write 1M io_size=$SIZE" | nth 1 1 >>"/tmp/seq.$shift"
		snap_ctl destroy "$ID"
		snap_take $DEV $STORE 262144 || exit 1
		fio_jobs "$DEV randwrite 4k ioengine=libaio iodepth=16 io_size=$((${SIZE%M} / 2))M" |
			nth 1 2 >>"/tmp/p99.$shift"
		snap_ctl destroy "$ID"
		snap_ctl attach "$BIG" >/dev/null 2>&1
		: >/tmp/store.img
		b=$(kmem_kib)
		snap_take "$BIG" /tmp/store.img 4194304 || exit 1
		a=$(kmem_kib)
		echo $((a - b)) >>"/tmp/kmem.$shift"
		fio --name=g --filename="$BIG" --rw=randwrite --bs=4k --direct=1 --io_size=4M --norandommap \
			--randseed="$r" >/dev/null 2>&1
		du -k /tmp/store.img | awk '{ printf "%.1f\n", $1 / 1024 }' >>"/tmp/grow.$shift"
		snap_ctl destroy "$ID"
		snap_ctl detach "$BIG"
	done
	snap_ctl detach $DEV >/dev/null 2>&1
	rmmod blksnap
done
losetup -d "$BIG"
rm -f /tmp/big.img /tmp/store.img

D=$(name "$DEFAULT")
COND="default chunk $D against a quarter and four times it, brd 128 MiB (first $SIZE) with storage on brd; growth and kernel memory on a 1 TiB sparse loop device; QEMU TCG, cloud kernel $(uname -r)"
# row ID-STEM METRIC UNIT HIGHER-IS-BETTER FILE
row() {
	for other in $((DEFAULT - 2)) $((DEFAULT + 2)); do
		bench_line "chunk.$1.$D.vs_$(name "$other")" "$2, chunk $D vs $(name "$other")" "$3" \
			"$(median <"/tmp/$5.$DEFAULT")" "$(median <"/tmp/$5.$other")" "chunk $(name "$other")" \
			"$4" $REPS "$(spread <"/tmp/$5.$DEFAULT")"
	done
}
row first_touch "4 KiB random writes on a fresh snapshot" MiB/s true first
row seq_first_touch "1 MiB sequential writes on a fresh snapshot" MiB/s true seq
row p99 "p99 latency of 4 KiB random writes at queue depth 16, first touch" us false p99
row growth "difference storage consumed by 4 MiB of 4 KiB random writes over 1 TiB" MiB false grow
row kmem "kernel memory of a snapshot of a 1 TiB device" KiB false kmem
