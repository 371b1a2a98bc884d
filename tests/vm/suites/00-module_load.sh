#!/bin/sh
# vm-tags: smoke
# The module loads, registers its control device, answers the version
# request, and unloads cleanly; then it loads again.
. /project/tests/vm/lib.sh

check "the module is loaded" module_loaded
check "/dev/blksnap-control is a character device" test -c /dev/blksnap-control
check "the version request answers 2.0.0.0" sh -c '[ "$(ctl_version)" = 2.0.0.0 ]'
check "the module unloads" module_unload
check "the control device is gone after unload" sh -c '! test -e /dev/blksnap-control'
check "the version request fails without the module" sh -c '! ctl_version'
# With ftrace switched off the hooks cannot be installed: the load fails and
# the log says why.
if [ -w /proc/sys/kernel/ftrace_enabled ]; then
	mark=$(dmesg | wc -l)
	echo 0 >/proc/sys/kernel/ftrace_enabled
	check "the module refuses to load with ftrace off" sh -c "! insmod $BLKSNAP_KO"
	echo 1 >/proc/sys/kernel/ftrace_enabled
	check "the log says ftrace is off" sh -c "dmesg | tail -n +$((mark + 1)) | grep 'blksnap-filter: cannot hook .*ftrace is off'"
else
	tap_skip "the module refuses to load with ftrace off" "no /proc/sys/kernel/ftrace_enabled"
fi
check "the module loads again" module_load
check "the control device is back" test -c /dev/blksnap-control
tap_done
