#!/bin/sh
# vm-modparams: enable_test_ioctls=1
# Bad input to the tracker requests, as root and as an unprivileged user:
# errno only, no state change, no kernel warning. Also the test-only switch
# without enable_test_ioctls, and the module parameters' clamping.
. /project/tests/vm/lib.sh

check "attach /dev/ram2" cbt_tool attach /dev/ram2
dd if=/dev/urandom of=/dev/ram2 bs=64k count=3 seek=10 oflag=direct 2>/dev/null
cbt_tool switch /dev/ram2
cbt_tool badinput /dev/ram2 || TAP_FAILED=1
cbt_tool nobody /dev/ram2 || TAP_FAILED=1
check "the map is intact after the unprivileged attempts" \
	sh -c '[ "$(cbt_tool map /dev/ram2 | tr "\n" " ")" = "10 1 11 1 12 1 " ]'
check "detach /dev/ram2" cbt_tool detach /dev/ram2

# Without enable_test_ioctls the switch request does not exist.
module_unload
module_load
check "the test switch gives ENOTTY without enable_test_ioctls" \
	sh -c 'cbt_tool attach /dev/ram2 && cbt_tool expect ENOTTY switch /dev/ram2'
check "detach /dev/ram2" cbt_tool detach /dev/ram2
check "enable_test_ioctls is read-only" \
	sh -c '[ "$(stat -c %a /sys/module/blksnap/parameters/enable_test_ioctls)" = 444 ]'
module_unload

# Out-of-range parameters are clamped, with a warning.
log_mark
module_load tracking_block_minimum_shift=5 tracking_block_maximum_shift=40 \
	tracking_block_maximum_count=0
p=/sys/module/blksnap/parameters
check "tracking_block_minimum_shift 5 is raised to 12" \
	sh -c "[ \$(cat $p/tracking_block_minimum_shift) = 12 ]"
check "tracking_block_maximum_shift 40 is lowered to 30" \
	sh -c "[ \$(cat $p/tracking_block_maximum_shift) = 30 ]"
check "tracking_block_maximum_count 0 is raised to 1" \
	sh -c "[ \$(cat $p/tracking_block_maximum_count) = 1 ]"
check "each clamp is logged" \
	test "$(log_count_since_mark 'out of \[')" = 3
check "with those parameters a 128 MiB device gets one 128 MiB block" \
	sh -c 'cbt_tool attach /dev/ram2 && cbt_tool info /dev/ram2 | grep -q "block_size=134217728 block_count=1 " && cbt_tool detach /dev/ram2'
module_unload
module_load tracking_block_minimum_shift=12 tracking_block_maximum_count=1000
check "min shift 12, max count 1000: 128 MiB gives 256 KiB blocks, 512 of them" \
	sh -c 'cbt_tool attach /dev/ram2 && cbt_tool info /dev/ram2 | grep -q "block_size=262144 block_count=512 " && cbt_tool detach /dev/ram2'
module_unload
module_load enable_test_ioctls=1
tap_done
