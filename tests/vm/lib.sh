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

# check DESCRIPTION COMMAND [ARG...]: passes when the command exits 0; its
# output is shown as TAP comments when it fails.
check() {
	desc=$1
	shift
	if out=$("$@" 2>&1); then
		tap_ok "$desc"
	else
		tap_fail "$desc"
		printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'
	fi
}

# check_fails DESCRIPTION COMMAND [ARG...]: passes when the command fails.
check_fails() {
	desc=$1
	shift
	if out=$("$@" 2>&1); then
		tap_fail "$desc"
		printf '%s\n' "$out" | tail -n 20 | sed 's/^/#   /'
	else
		tap_ok "$desc"
	fi
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
