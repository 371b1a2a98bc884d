# Helpers of the VM benchmarks (bench/vm/*.sh), sourced by each: medians,
# spreads, fio figures and the BENCH line. Not a benchmark itself (bench/run.ts
# skips files whose name starts with "_").

# median: numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# spread: numbers on stdin -> (max-min)/median.
spread() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; if (m>0) printf "%.3f", (a[NR]-a[1])/m; else print 0}'; }

# fio_jobs JOB...: runs the jobs one after the other in one fio process (fio
# takes seconds to start under TCG), direct I/O, psync unless a job says
# otherwise, over the first $SIZE bytes of its file for at most $RUNTIME
# seconds each. A JOB is "FILE RW BS [OPTION=VALUE...]". Prints one line per
# job: its MiB/s (reads plus writes) and its p99 write completion latency in
# microseconds (terse v3: read KiB/s is field 7, write KiB/s 48, the first
# write clat percentile 59).
fio_jobs() {
	{
		printf '[global]\ndirect=1\nioengine=psync\nsize=%s\nruntime=%s\nstonewall\npercentile_list=99\n' \
			"$SIZE" "$RUNTIME"
		_n=0
		for _j in "$@"; do
			_n=$((_n + 1))
			# shellcheck disable=SC2086
			set -- $_j
			printf '[j%d]\nfilename=%s\nrw=%s\nbs=%s\n' $_n "$1" "$2" "$3"
			shift 3
			for _o in "$@"; do printf '%s\n' "$_o"; done
		done
	} >/tmp/bench-jobs.fio
	fio --minimal /tmp/bench-jobs.fio 2>/dev/null |
		awk -F';' '{ split($59, p, "="); printf "%.2f %.1f\n", ($7 + $48) / 1024, p[2] }'
}

# nth N FIELD: field FIELD of line N of stdin.
nth() { awk -v n="$1" -v f="$2" 'NR == n { print $f }'; }

# bench_line ID METRIC UNIT OURS PEER PEER_NAME HIGHER_IS_BETTER REPS SPREAD [CONDITIONS]
bench_line() {
	printf 'BENCH {"id":"%s","metric":"%s","unit":"%s","ours":%s,"peer":%s,"peerName":"%s","higherIsBetter":%s,"reps":%s,"spread":%s,"conditions":"%s"}\n' \
		"$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10:-$COND}"
}

# now_us: microseconds since boot.
now_us() { awk '{printf "%d\n", $1 * 1000000}' /proc/uptime; }

# kmem_kib: the kernel's own allocations in KiB: slab, vmalloc and per-CPU
# memory (what a module's tables live in), after dropping clean caches so
# that reclaimable slab (dentries, inodes) does not move the figure. Memory
# the previous step freed lazily (RCU callbacks, deferred vfree, per-CPU
# chunks) drains for a while: read until two readings a second apart agree
# within 64 KiB (at most 10 s), or that drain lands in the next difference
# (a dm-snapshot measured right after our snapshot was destroyed once came
# out at -1.4 MiB).
kmem_kib() {
	_prev=-1
	for _i in 1 2 3 4 5 6 7 8 9 10; do
		sync
		echo 3 >/proc/sys/vm/drop_caches
		_k=$(awk '/^(Slab|VmallocUsed|Percpu):/ { k += $2 } END { print k }' /proc/meminfo)
		[ $_prev -ge 0 ] && [ $((_k - _prev)) -lt 64 ] && [ $((_prev - _k)) -lt 64 ] && break
		_prev=$_k
		sleep 1
	done
	echo "$_k"
}
