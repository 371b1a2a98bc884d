#!/bin/sh
# Time to the first file of a backup point, in the test VM (cloud kernel,
# its nbd.ko): `blksnap mount` (server in the background, nbd-client,
# read-only mount) and reading one file, vs the way without NBD: `blksnap
# restore` of the whole device to a file, a loop mount, reading the same
# file. Same backup, same run. The ext4 file system (256 MiB) holds FILL MiB
# of random files. Prints one BENCH {...} line (see bench/run.ts).
# BENCH_QUICK=1: smaller fill, one repetition.
set -u
REPS=3
FILL=128
[ "${BENCH_QUICK:-0}" = 1 ] && { REPS=1; FILL=16; }
W=/dev/shm/bench_nbd
IMG=$W/disk.img
REPO=$W/repo
blksnap() { deno run -A --cached-only /project/cli/main.ts "$@"; }
now_ms() { awk '{printf "%d\n", $1 * 1000}' /proc/uptime; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
spread() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; if (m>0) printf "%.3f", (a[NR]-a[1])/m; else print 0}'; }

rm -rf $W && mkdir -p $W/fs $W/nbd $W/loop || exit 1
truncate -s 256M $IMG && mkfs.ext4 -q -F $IMG || exit 1
mount -o loop $IMG $W/fs || exit 1
mkdir -p $W/fs/data $W/fs/etc
i=0
while [ $i -lt $((FILL / 8)) ]; do
	dd if=/dev/urandom of=$W/fs/data/blob$i bs=1M count=8 2>/dev/null
	i=$((i + 1))
done
echo "the file an operator needs back" >$W/fs/etc/first
umount $W/fs || exit 1
blksnap init -r $REPO >/dev/null || exit 1
ID=$(blksnap --json backup -r $REPO --image $IMG | sed -n 's/.*"id": "\([0-9TZ-]*[0-9a-f]\)".*/\1/p' | head -n 1)
[ -n "$ID" ] || { echo "no backup id"; exit 1; }
rm -f $IMG

: >$W/ours
: >$W/peer
for r in $(seq $REPS); do
	t0=$(now_ms)
	blksnap mount -r $REPO "$ID" $W/nbd >/dev/null && cat $W/nbd/etc/first >/dev/null || exit 1
	t1=$(now_ms)
	blksnap umount $W/nbd >/dev/null || exit 1
	echo $((t1 - t0)) >>$W/ours

	t0=$(now_ms)
	blksnap restore -r $REPO "$ID" $W/restored.img >/dev/null &&
		mount -o ro,loop,noload $W/restored.img $W/loop && cat $W/loop/etc/first >/dev/null || exit 1
	t1=$(now_ms)
	umount $W/loop && rm -f $W/restored.img
	echo $((t1 - t0)) >>$W/peer
done
ours=$(median <$W/ours)
peer=$(median <$W/peer)
printf 'BENCH {"metric":"%s","unit":"s","ours":%s,"peer":%s,"peerName":"%s","higherIsBetter":false,"reps":%s,"spread":%s,"conditions":"%s"}\n' \
	"time to the first file: blksnap mount + read vs restore + loop mount + read" \
	"$(awk -v v="$ours" 'BEGIN{printf "%.2f", v/1000}')" \
	"$(awk -v v="$peer" 'BEGIN{printf "%.2f", v/1000}')" \
	"full restore to tmpfs, loop mount" "$REPS" "$(spread <$W/ours)" \
	"ext4 256 MiB with $FILL MiB of files, 4 MiB chunks, repository on tmpfs, QEMU TCG, cloud kernel $(uname -r)"
rm -rf $W
