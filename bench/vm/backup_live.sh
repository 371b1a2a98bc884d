#!/bin/sh
# A backup while the device is being written, in the test VM (cloud kernel):
# full backups with backupDevices (what `blksnap backup --device` runs:
# snapshot, backup of the image, snapshot destroyed) of a loop device on
# tmpfs, alone and while fio writes 4 KiB random blocks to the device
# (bench/vm/_backup_live.ts, one Deno process). Rows (ids):
#
#   backup.during_writes.vs_idle   backup time with the writer vs without
#   writes.during_backup.vs_idle   the writer's throughput during the backup
#                                  vs with no backup (and no snapshot)
#
# Prints BENCH lines (see bench/run.ts). BENCH_QUICK=1 measures nothing (Deno
# alone takes minutes to start under TCG) and prints the rows with zeros.
set -u
. /project/bench/vm/_lib.sh
REPS=3
MIB=128
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	COND="not run with --quick"
	bench_line backup.during_writes.vs_idle "full backup of a device while it is written vs idle" s 0 0 "not measured" false 0 0
	bench_line writes.during_backup.vs_idle "4 KiB random write throughput during a backup vs without" MiB/s 0 0 "not measured" true 0 0
	exit 0
fi
grep -q '^blksnap ' /proc/modules || insmod /project/kmod/module/blksnap.ko || exit 1
truncate -s ${MIB}M /tmp/live.img
DEV=$(losetup -f) && losetup "$DEV" /tmp/live.img || exit 1
# Half compressible data, like a used disk.
fio --name=fill --filename="$DEV" --rw=write --bs=1M --direct=1 --size=${MIB}M \
	--buffer_compress_percentage=50 --refill_buffers >/dev/null 2>&1
cd /project || exit 1
deno run -A --cached-only bench/vm/_backup_live.ts "$DEV" $REPS >/tmp/live.json || exit 1
losetup -d "$DEV"
rm -f /tmp/live.img
col() { # field of the JSON lines
	sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" /tmp/live.json
}
col idle >/tmp/idle; col busy >/tmp/busy; col writerBusy >/tmp/wbusy; col writerAlone >/tmp/walone
COND="${MIB} MiB loop device on tmpfs, half compressible; full backups with backupDevices (what blksnap backup --device runs), repository and difference storage on tmpfs; writer: fio 4 KiB random writes, psync, direct; QEMU TCG, cloud kernel $(uname -r)"
bench_line backup.during_writes.vs_idle "full backup of a device while it is written vs idle" s "$(median </tmp/busy)" "$(median </tmp/idle)" "the same backup with no writer" false $REPS "$(spread </tmp/busy)"
bench_line writes.during_backup.vs_idle "4 KiB random write throughput during a backup vs without" MiB/s "$(median </tmp/wbusy)" "$(median </tmp/walone)" "the same writer, no backup, no snapshot (tracked)" true $REPS "$(spread </tmp/wbusy)"
