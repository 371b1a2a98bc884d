#!/bin/sh
# Helpers for the in-VM shell suites (busybox sh). Source it, then report
# each test with tap_ok/tap_fail/tap_skip or `check`. Results are TAP lines;
# the suite runner numbers and names them.
#
#   . /project/tests/vm/lib.sh
#   check "the control device exists" test -c /dev/blksnap-control
#   module_unload && module_load enable_test_ioctls=1

BLKSNAP_KO=/project/kmod/module/blksnap.ko
TAP_FAILED=0

tap_ok() { echo "ok - $*"; }
tap_fail() { echo "not ok - $*"; TAP_FAILED=1; }
tap_skip() { # description reason
	echo "ok - $1 # SKIP $2"
}

# check DESCRIPTION COMMAND [ARG...]: passes when the command exits 0. The
# command runs in this shell (variables it sets stay set); when it fails, the
# end of its output is shown as TAP comments. Returns 0 when it passed.
check() {
	_check 0 "$@"
}

# step DESCRIPTION COMMAND [ARG...]: check, and when the command passes, its
# last line of output is shown as a TAP comment (a figure worth seeing).
step() {
	_check 1 "$@"
}

_check() {
	_ck_show=$1
	_ck_desc=$2
	shift 2
	if "$@" >/tmp/check.out 2>&1; then
		tap_ok "$_ck_desc"
		if [ "$_ck_show" = 1 ]; then
			tail -n 1 /tmp/check.out | sed 's/^/# /'
		fi
		return 0
	fi
	tap_fail "$_ck_desc"
	tail -n 20 /tmp/check.out | sed 's/^/#   /'
	return 1
}

# check_fails DESCRIPTION COMMAND [ARG...]: passes when the command fails.
check_fails() {
	_ck_desc=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		tap_fail "$_ck_desc"
		tail -n 20 /tmp/check.out | sed 's/^/#   /'
		return 1
	fi
	tap_ok "$_ck_desc"
}

# log_mark: puts a unique marker line in the kernel log.
# log_count_since_mark PATTERN: prints how many kernel log lines since the
# last marker match PATTERN (a marker, since the ring buffer may be full and
# line counts cannot be used).
log_mark() {
	mark="blksnap-test-mark-$$-$RANDOM-$RANDOM"
	echo "$mark" >/dev/kmsg
}
log_count_since_mark() {
	dmesg | sed -n "/$mark/,\$p" | grep -c "$1"
}

# loop_setup [-P] FILE: binds FILE to the next free loop device (-P: scan
# its partitions) and prints the device.
loop_setup() {
	_dev=$(losetup -f) || return 1
	if [ "$1" = -P ]; then
		losetup -P "$_dev" "$2" || return 1
	else
		losetup "$_dev" "$1" || return 1
	fi
	echo "$_dev"
}

# wait_bdev PATH: waits up to 5 s for a block device node to appear.
wait_bdev() {
	_wb_i=0
	while [ ! -b "$1" ] && [ $_wb_i -lt 50 ]; do
		sleep 0.1
		_wb_i=$((_wb_i + 1))
	done
	test -b "$1"
}

# snap_take_filled DEV STORE GEN: fills DEV with self-describing sectors of
# generation GEN (snap_sectors), then creates a snapshot (storage: the
# directory STORE, up to 1 GiB), adds DEV and takes it; sets ID and IMG (the
# image, waited for).
snap_take_filled() {
	snap_sectors fill "$1" "$3" >/dev/null || return 1
	ID=$(snap_ctl create "$2" 2097152) || return 1
	snap_ctl add "$ID" "$1" || return 1
	snap_ctl take "$ID" || return 1
	IMG=$(snap_ctl image "$1") || return 1
	udevadm settle 2>/dev/null
	wait_bdev "$IMG"
}

module_loaded() { grep -q '^blksnap ' /proc/modules; }

module_load() { # [PARAM=VALUE...]
	module_loaded && return 0
	insmod "$BLKSNAP_KO" "$@"
}

module_unload() {
	module_loaded || return 0
	rmmod blksnap
}

# The exit status of a suite: non-zero when any test failed.
tap_done() { exit "$TAP_FAILED"; }
