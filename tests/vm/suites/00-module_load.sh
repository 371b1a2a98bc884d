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
check "the module loads again" module_load
check "the control device is back" test -c /dev/blksnap-control
tap_done
