#!/bin/sh
# vm-tags: userland
# vm-modparams: blkfilter_ioctls=0
# Suite 40 whole (the low-level per-device commands and the operator's
# init, full and incremental backup, verify, restore) over the control-device
# transport: the module does not answer BLKFILTER requests on device fds
# (suite 40 itself runs over them). A function trace of the control device's
# ioctl entry shows the operator's commands went through it. Tagged
# userland: the test command runs it once, on the cloud kernel (on the debug
# one it would cost minutes).
. /project/tests/vm/lib.sh
cd /project || exit 1
check "libblksnap falls back to the control device" \
	sh -c '[ "$(deno eval --cached-only "import { Tracker } from \"./mod.ts\"; using t = Tracker.open(\"/dev/ram0\"); console.log(t.transport);")" = control ]'

TR=/sys/kernel/debug/tracing
mount -t tracefs none $TR 2>/dev/null
traced=0
if echo ctrl_unlocked_ioctl >$TR/set_ftrace_filter 2>/dev/null; then
	echo >$TR/trace
	echo function >$TR/current_tracer && traced=1
fi
check "no block-layer ioctl entry is hooked" \
	sh -c "[ -r $TR/enabled_functions ] && ! grep -Eq '^(blkdev_ioctl|block_ioctl|compat_blkdev_ioctl|blkdev_common_ioctl) ' $TR/enabled_functions"

sh tests/vm/suites/40-cli.sh
suite=$?

if [ $traced = 1 ]; then
	# the requests after 40-cli.sh's marker: its operator's commands (read
	# before the tracer is switched off: that empties the buffer)
	n=$(sed -n '/cli-suite: operator commands/,$p' $TR/trace | grep -c 'ctrl_unlocked_ioctl')
	echo nop >$TR/current_tracer
	echo >$TR/set_ftrace_filter
	echo "# $n control-device requests traced during the operator's commands"
	check "the operator's commands went through /dev/blksnap-control ($n requests)" [ "$n" -gt 10 ]
else
	tap_fail "the control device's ioctl entry can be traced (tracefs, ctrl_unlocked_ioctl)"
fi
[ $suite = 0 ] || TAP_FAILED=1
tap_done
