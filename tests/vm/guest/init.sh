#!/bin/sh
# The guest's /init (busybox sh): prepares the machine, runs the job that
# tests/vm/vm.sh put in /project/.vm-job, reports on the second serial port
# (/dev/ttyS1, a file on the host) and powers off.
export PATH=/project/tests/vm/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root DENO_DIR=/project/.cache/deno DENO_NO_UPDATE_CHECK=1 NO_COLOR=1 TERM=dumb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/shm /dev/pts /tmp /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t configfs configfs /sys/kernel/config 2>/dev/null
hostname blksnap-vm
ln -sf /proc/self/fd /dev/fd 2>/dev/null
ln -sf /proc/self/fd/0 /dev/stdin 2>/dev/null
ln -sf /proc/self/fd/1 /dev/stdout 2>/dev/null
ln -sf /proc/self/fd/2 /dev/stderr 2>/dev/null

results=/dev/ttyS1
say() { echo "$*" >"$results"; }

# Cloud kernel: its drivers are modules. The debug kernel has them built in
# (brd's size then comes from the kernel command line).
rel=$(uname -r)
if [ -d "/lib/modules/$rel" ]; then
	for m in virtio_pci virtio_blk loop dm-mod dm-snapshot dm-flakey dm-delay dm-log-writes zram xfs; do
		modprobe "$m" 2>/dev/null
	done
	modprobe brd rd_nr=4 rd_size=131072
fi
mdev -s 2>/dev/null
i=0
while [ ! -b /dev/ram0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done

# Up: from here on the kernel log is ours to answer for. Anything bad it
# holds already came from booting, before our module was loaded: say so and
# stop, and the host boots again.
bad=$(cat /project/tests/vm/guest/kernel_log_problems.ere)
say "BLKSNAP-GUEST-UP"
if dmesg | grep -E -q "$bad"; then
	say "BLKSNAP-BOOT-TAINTED"
	dmesg | grep -E "$bad" | head -n 5 >"$results"
	sync
	poweroff -f
fi

cd /project || exit 1
. /project/.vm-job
export BLKSNAP_VM_KERNEL="$JOB_KERNEL"

rc=0
case "$JOB_KIND" in
suites)
	say "BLKSNAP-TAP-BEGIN"
	eval "set -- $JOB_ARGS"
	sh /project/tests/vm/guest/run_suites.sh "$JOB_TAGS" "$@"
	rc=$?
	say "BLKSNAP-TAP-END"
	;;
run | demo)
	if [ "$JOB_LOAD_MODULE" = 1 ]; then
		# shellcheck disable=SC2086
		insmod /project/kmod/module/blksnap.ko $JOB_MODPARAMS || rc=$?
	fi
	if [ $rc -eq 0 ]; then
		if [ "$JOB_KIND" = demo ]; then
			eval "deno run -A --cached-only examples/demo.ts $JOB_ARGS"
		else
			eval "$JOB_ARGS"
		fi
		rc=$?
	fi
	if [ "$JOB_LOAD_MODULE" = 1 ] && grep -q '^blksnap ' /proc/modules; then
		rmmod blksnap || { echo "vm: rmmod blksnap failed" >&2; [ $rc -eq 0 ] && rc=1; }
	fi
	;;
esac

sync
say "BLKSNAP-DMESG-BEGIN"
dmesg >"$results"
say "BLKSNAP-DMESG-END"
say "BLKSNAP-VM-EXIT $rc"
sync
poweroff -f
