#!/bin/sh
# vm-tags: smoke, kernels
# The per-device transport (kmod/module/ioctl_hook.c): BLKFILTER_ATTACH,
# _DETACH and _CTL on the block device's own fd, as upstream's tools send
# them. Every request gives the same result and the same errno as through
# the control device; an fd used without CAP_SYS_ADMIN gets EPERM; every
# other request on the same fd (BLKGETSIZE64, BLKFLSBUF, LOOP_GET_STATUS64,
# the neighbouring numbers) is answered exactly as without the module, and
# so are the three with blkfilter_ioctls=0.
. /project/tests/vm/lib.sh

W=$(mktemp -d /tmp/blkfilter.XXXXXX)
dd if=/dev/urandom of="$W/disk.img" bs=1M count=64 2>/dev/null
LOOP=$(loop_setup "$W/disk.img") || exit 1
PIMG="$W/part.img"
dd if=/dev/zero of="$PIMG" bs=1M count=64 2>/dev/null
cleanup() {
	losetup -d "$LOOP" 2>/dev/null
	[ -n "${PLOOP:-}" ] && losetup -d "$PLOOP" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT

# unrelated DEV TAG: what the other requests answer now, kept in $W.
unrelated() {
	blkfilter_tool unrelated "$1" >"$W/$2" 2>&1
}
# same_lines A B: equal, the probe's line left out.
same_lines() {
	grep -v '^BLKFILTER_DETACH_NULL=' "$W/$1" >"$W/$1.cmp"
	grep -v '^BLKFILTER_DETACH_NULL=' "$W/$2" >"$W/$2.cmp"
	if ! cmp -s "$W/$1.cmp" "$W/$2.cmp"; then
		diff "$W/$1.cmp" "$W/$2.cmp"
		return 1
	fi
}
probe_is() { # TAG ERRNAME
	grep -qx "BLKFILTER_DETACH_NULL=$2" "$W/$1" || { cat "$W/$1"; return 1; }
}

# Without the module: the driver's answers.
module_unload
unrelated /dev/ram3 ram.none
unrelated "$LOOP" loop.none
check "without the module a loop device answers LOOP_GET_STATUS64" \
	grep -q '^LOOP_GET_STATUS64=OK ' "$W/loop.none"
check "without the module brd answers BLKFILTER_DETACH with ENOTTY" probe_is ram.none ENOTTY
check "without the module loop answers BLKFILTER_DETACH with EINVAL" probe_is loop.none EINVAL

# With the hook: the three requests are ours, everything else is not.
module_load
# Which entry points ftrace redirects: both entries always (compat.h names
# them), blkdev_common_ioctl where the compiler kept it out of line.
TR=/sys/kernel/debug/tracing
mount -t debugfs none /sys/kernel/debug 2>/dev/null
mount -t tracefs none $TR 2>/dev/null
if [ -r $TR/enabled_functions ]; then
	grep -E '^(blkdev_ioctl|block_ioctl|compat_blkdev_ioctl|blkdev_common_ioctl) ' \
		$TR/enabled_functions >"$W/hooked"
	sed 's/^/# ftrace: /' "$W/hooked"
	check "the native entry (blkdev_ioctl, 5.10: block_ioctl) and compat_blkdev_ioctl are hooked" \
		sh -c "grep -Eq '^(blkdev_ioctl|block_ioctl) ' '$W/hooked' && grep -q '^compat_blkdev_ioctl ' '$W/hooked'"
	if grep -qw blkdev_common_ioctl $TR/available_filter_functions; then
		check "blkdev_common_ioctl (traceable here) is hooked" \
			grep -q '^blkdev_common_ioctl ' "$W/hooked"
	else
		echo "# blkdev_common_ioctl is inlined in this kernel: not hooked"
	fi
else
	echo "# no tracefs: the hooked functions are not listed"
fi
unrelated /dev/ram3 ram.hook
unrelated "$LOOP" loop.hook
check "with the module the probe gets EFAULT on brd" probe_is ram.hook EFAULT
check "with the module the probe gets EFAULT on loop" probe_is loop.hook EFAULT
check "other requests on a brd fd answer as without the module" same_lines ram.none ram.hook
check "other requests on a loop fd answer as without the module" same_lines loop.none loop.hook
check "attach /dev/ram3 and the loop device through their fds" \
	sh -c "blkfilter_tool attach /dev/ram3 && blkfilter_tool attach $LOOP"
unrelated /dev/ram3 ram.tracked
unrelated "$LOOP" loop.tracked
check "other requests on a tracked brd fd answer as without the module" same_lines ram.none ram.tracked
check "other requests on a tracked loop fd answer as without the module" same_lines loop.none loop.tracked
check "BLKFLSBUF of a tracked device as root succeeds" grep -qx 'BLKFLSBUF=OK' "$W/ram.tracked"
check "the control device sees both trackers" \
	sh -c "cbt_tool info /dev/ram3 && cbt_tool info $LOOP"
check "detach both through their fds" \
	sh -c "blkfilter_tool detach /dev/ram3 && blkfilter_tool detach $LOOP"
check "a second detach through the fd gives ENOENT" \
	sh -c "blkfilter_tool detach /dev/ram3 2>&1 | grep -q ENOENT"

# Every request through both routes, on a whole disk, a loop device and a
# partition (the partition's fd names the partition, not its disk).
blkfilter_tool same /dev/ram3 || TAP_FAILED=1
blkfilter_tool same "$LOOP" || TAP_FAILED=1
cbt_tool mkpart "$PIMG" 2048 65536 >/dev/null || exit 1
PLOOP=$(loop_setup -P "$PIMG") || exit 1
if [ -b "${PLOOP}p1" ]; then
	blkfilter_tool same "${PLOOP}p1" || TAP_FAILED=1
	check "the partition's whole disk was never attached" \
		cbt_tool expect ENOENT info "$PLOOP"
else
	tap_fail "the partition ${PLOOP}p1 exists"
fi

# Bad input: the same errno through both routes, nothing changed.
check "attach /dev/ram3" blkfilter_tool attach /dev/ram3
cbt_tool dirty /dev/ram3 0:128 >/dev/null
blkfilter_tool badinput /dev/ram3 || TAP_FAILED=1
blkfilter_tool nobody /dev/ram3 || TAP_FAILED=1
check "the tracker survived the unprivileged attempts" blkfilter_tool info /dev/ram3

# blkfilter_ioctls=0: the three requests go to the driver, as without the
# module, and the control device still works.
module_unload
module_load blkfilter_ioctls=0
unrelated /dev/ram3 ram.off
unrelated "$LOOP" loop.off
check "blkfilter_ioctls=0: brd answers the probe itself (ENOTTY)" probe_is ram.off ENOTTY
check "blkfilter_ioctls=0: loop answers the probe itself (EINVAL)" probe_is loop.off EINVAL
check "blkfilter_ioctls=0: other requests answer as without the module" \
	sh -c "cmp -s '$W/ram.none' '$W/ram.off' && cmp -s '$W/loop.none' '$W/loop.off'"
check "blkfilter_ioctls=0: attach through the control device works" \
	sh -c 'cbt_tool attach /dev/ram3 && cbt_tool detach /dev/ram3'
check "blkfilter_ioctls is read-only" \
	sh -c '[ "$(stat -c %a /sys/module/blksnap/parameters/blkfilter_ioctls)" = 444 ]'
module_unload
module_load
tap_done
