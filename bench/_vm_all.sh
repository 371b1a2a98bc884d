#!/bin/sh
# Runs the VM benchmarks (bench/vm/*.sh) inside the test VM, one after the
# other, and copies each one's output to the results port between markers.
# Arguments: quick|full FILE...
mode=$1
shift
export BENCH_QUICK=0
[ "$mode" = quick ] && export BENCH_QUICK=1
rc=0
for name in "$@"; do
	echo "BENCH-FILE $name" >/dev/ttyS1
	sh "/project/bench/vm/$name" >"/tmp/bench.$name.out" 2>&1
	st=$?
	cat "/tmp/bench.$name.out"
	cat "/tmp/bench.$name.out" >/dev/ttyS1
	echo "BENCH-FILE-END" >/dev/ttyS1
	[ $st -eq 0 ] || { echo "bench: $name exited $st"; rc=1; }
	grep -q '^blksnap ' /proc/modules || insmod /project/kmod/module/blksnap.ko
done
exit $rc
