#!/bin/sh
# vm-tags: userland
# vm-modparams: blkfilter_ioctls=0
# Suite 40's low-level commands (every per-device request: attach, cbtinfo,
# readcbtmap, markdirty, snapshot info, detach) over the control-device
# transport: the module does not answer BLKFILTER requests on device fds
# (suite 40 itself runs over them). Tagged userland: the test command runs
# it once, on the cloud kernel (on the debug one it would cost minutes).
. /project/tests/vm/lib.sh
cd /project || exit 1
check "libblksnap falls back to the control device" \
	sh -c '[ "$(deno eval --cached-only "import { Tracker } from \"./mod.ts\"; using t = Tracker.open(\"/dev/ram0\"); console.log(t.transport);")" = control ]'
CLI_SUITE_LOW_LEVEL_ONLY=1 exec sh tests/vm/suites/40-cli.sh
