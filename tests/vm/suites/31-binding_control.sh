#!/bin/sh
# vm-modparams: enable_test_ioctls=1 chunk_minimum_shift=16 diff_storage_minimum=16384 blkfilter_ioctls=0
# Suite 30 (the Deno binding) over the other transport: the module does not
# answer BLKFILTER requests on device fds, so libblksnap's probe falls back
# to the control device for every per-device request.
cd /project || exit 1
exec deno test -A --cached-only --no-check --reporter=tap tests/vm/suites/30-binding_test.ts
