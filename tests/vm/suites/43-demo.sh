#!/bin/sh
# vm-tags: userland
# The README's demo (examples/demo.ts) on a ramdisk: full and incremental
# backup of a live ext4 filesystem, both restored and checked.
. /project/tests/vm/lib.sh
cd /project || exit 1
deno run -A --cached-only examples/demo.ts >/tmp/demo.out 2>&1
rc=$?
sed 's/^/# /' /tmp/demo.out
check "the demo exits 0" test "$rc" -eq 0
check "the demo's second backup is incremental" grep -q '^incremental incremental' /tmp/demo.out
check "the demo's checks pass" grep -qx 'demo: all checks passed' /tmp/demo.out
umount /tmp/blksnap-demo/live 2>/dev/null
deno run -A --cached-only cli/main.ts detach -d /dev/ram0 >/dev/null 2>&1
tap_done
