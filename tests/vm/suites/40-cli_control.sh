#!/bin/sh
# vm-modparams: blkfilter_ioctls=0
# Suite 40 (the CLI) over the control-device transport: the module does not
# answer BLKFILTER requests on device fds (suite 40 itself runs over them).
. /project/tests/vm/lib.sh
cd /project || exit 1
check "libblksnap falls back to the control device" \
	sh -c '[ "$(deno eval --cached-only "import { Tracker } from \"./mod.ts\"; using t = Tracker.open(\"/dev/ram0\"); console.log(t.transport);")" = control ]'
exec sh tests/vm/suites/40-cli.sh
