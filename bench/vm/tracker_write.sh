#!/bin/sh
# Write throughput on a ramdisk, untracked vs tracked (cloud kernel, module
# loaded): fio 4 KiB random writes and 1 MiB sequential writes, direct I/O,
# psync, one job, on /dev/ram0 (brd, 128 MiB). Untracked and tracked runs
# alternate, REPS times each; each figure is the median. Prints one BENCH
# line per workload (ours = tracked, peer = untracked) and a summary line
#   TRACKER_WRITE {"rand4k_ratio":R,"seq1m_ratio":R,...}
# with ratio = tracked / untracked throughput. Needs cbt_tool (the VM's
# tests/vm/tools/bin) and fio.
set -u
DEV=${TRACKER_WRITE_DEV:-/dev/ram0}
RUNTIME=5
REPS=5
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	RUNTIME=1
	REPS=1
fi
PATH=/project/tests/vm/tools/bin:$PATH

grep -q '^blksnap ' /proc/modules || insmod /project/kmod/module/blksnap.ko || exit 1
cbt_tool detach "$DEV" 2>/dev/null

# fio_bw RW BS: write bandwidth in KiB/s (terse field 48)
fio_bw() {
	fio --name=tw --filename="$DEV" --rw="$1" --bs="$2" --direct=1 \
		--ioengine=psync --numjobs=1 --runtime="$RUNTIME" --time_based \
		--size=128M --minimal 2>/dev/null | awk -F';' '{print $48}'
}

median() { # numbers on stdin
	sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

spread() { # numbers on stdin: (max-min)/median
	sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; if (m>0) printf "%.3f", (a[NR]-a[1])/m; else print 0}'
}

measure() { # name rw bs -> sets $untracked $tracked $spread (MiB/s)
	: >/tmp/tw.u
	: >/tmp/tw.t
	i=0
	while [ $i -lt "$REPS" ]; do
		fio_bw "$2" "$3" >>/tmp/tw.u
		cbt_tool attach "$DEV" || exit 1
		fio_bw "$2" "$3" >>/tmp/tw.t
		cbt_tool detach "$DEV" || exit 1
		i=$((i + 1))
	done
	untracked=$(median </tmp/tw.u | awk '{printf "%.1f", $1 / 1024}')
	tracked=$(median </tmp/tw.t | awk '{printf "%.1f", $1 / 1024}')
	spread=$(spread </tmp/tw.t)
}

cond="fio psync direct=1 numjobs=1 runtime=${RUNTIME}s on $DEV (brd 128 MiB), QEMU TCG, $(uname -r)"

measure rand4k randwrite 4k
r4u=$untracked
r4t=$tracked
echo "BENCH {\"id\":\"tracker.rand4k.vs_untracked\",\"metric\":\"4 KiB random write, tracked vs untracked\",\"unit\":\"MiB/s\",\"ours\":$r4t,\"peer\":$r4u,\"peerName\":\"untracked\",\"higherIsBetter\":true,\"reps\":$REPS,\"spread\":$spread,\"conditions\":\"$cond\"}"

measure seq1m write 1M
s1u=$untracked
s1t=$tracked
echo "BENCH {\"id\":\"tracker.seq1m.vs_untracked\",\"metric\":\"1 MiB sequential write, tracked vs untracked\",\"unit\":\"MiB/s\",\"ours\":$s1t,\"peer\":$s1u,\"peerName\":\"untracked\",\"higherIsBetter\":true,\"reps\":$REPS,\"spread\":$spread,\"conditions\":\"$cond\"}"

awk -v a="$r4t" -v b="$r4u" -v c="$s1t" -v d="$s1u" 'BEGIN {
	printf "TRACKER_WRITE {\"rand4k_tracked_mibs\":%s,\"rand4k_untracked_mibs\":%s,\"rand4k_ratio\":%.3f,\"seq1m_tracked_mibs\":%s,\"seq1m_untracked_mibs\":%s,\"seq1m_ratio\":%.3f}\n", a, b, (b > 0 ? a / b : 0), c, d, (d > 0 ? c / d : 0)
}'
rm -f /tmp/tw.u /tmp/tw.t
