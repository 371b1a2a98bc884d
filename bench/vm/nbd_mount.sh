#!/bin/sh
# Time to the first file of a backup point, in the test VM (cloud kernel, its
# nbd.ko). Row (id):
#
#   nbd.first_file.vs_restore
#       `blksnap mount` (server in the background, nbd-client, read-only mount)
#       and reading one file, vs the way without NBD: `blksnap restore` of the
#       whole device to a file on tmpfs, a loop mount, reading the same file.
#
# Same backup, same run: an ext4 file system (256 MiB) holding FILL MiB of
# random files, backed up as an image into a repository on tmpfs (4 MiB
# chunks). Prints one BENCH {...} line (see bench/run.ts). BENCH_QUICK=1:
# a smaller fill, one repetition.
set -u
. /project/bench/vm/_lib.sh
REPS=3
FILL=128
[ "${BENCH_QUICK:-0}" = 1 ] && { REPS=1; FILL=16; }
W=/dev/shm/bench_nbd
IMG=$W/disk.img
REPO=$W/repo
COND="ext4 256 MiB with $FILL MiB of files, 4 MiB chunks, repository on tmpfs, QEMU TCG, cloud kernel $(uname -r)"
blksnap() { deno run -A --cached-only /project/cli/main.ts "$@"; }
now_ms() { awk '{printf "%d\n", $1 * 1000}' /proc/uptime; }

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
blksnap init -r $REPO --no-encryption >/dev/null || exit 1
ID=$(blksnap --json backup -r $REPO --image $IMG |
	sed -n 's/.*"id": "\([0-9]\{8\}T[0-9]\{9\}Z-[0-9a-f]\{8\}\)".*/\1/p' | head -n 1)
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
bench_line nbd.first_file.vs_restore \
	"time to the first file: blksnap mount + read vs restore + loop mount + read" s \
	"$(median <$W/ours | awk '{printf "%.2f", $1 / 1000}')" \
	"$(median <$W/peer | awk '{printf "%.2f", $1 / 1000}')" \
	"full restore to tmpfs, loop mount" false "$REPS" "$(spread <$W/ours)"
rm -rf $W
