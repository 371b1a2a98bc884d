#!/bin/sh
# vm-tags: kernels
# DAX devices are refused at attach with EOPNOTSUPP (review finding 11):
# a write to DAX memory is a store, no bio ever shows it, so a tracker could
# never see it. The device is a legacy pmem region: vm.sh boots the cloud
# kernels with memmap=16M!1G, and nd_e820 + nd_pmem make it /dev/pmem0 with
# the queue's DAX flag. A kernel without those drivers (the debug kernels)
# skips, with the reason.
. /project/tests/vm/lib.sh

pmem=/dev/pmem0
[ -b $pmem ] || modprobe -a nd_e820 nd_pmem 2>/dev/null
wait_bdev $pmem
if [ ! -b $pmem ]; then
	tap_skip "a DAX device is refused at attach" \
		"no $pmem: this kernel has no legacy pmem drivers (X86_PMEM_LEGACY, BLK_DEV_PMEM) or was booted without memmap=SIZE!START"
	tap_done
fi
if [ "$(cat /sys/block/pmem0/queue/dax 2>/dev/null)" != 1 ]; then
	tap_skip "a DAX device is refused at attach" \
		"$pmem does not have DAX (no ZONE_DEVICE pages for the region)"
	tap_done
fi
echo "# $pmem: $(blockdev --getsize64 $pmem) bytes, queue/dax 1"

check "attach of the DAX device through the control device: EOPNOTSUPP" \
	cbt_tool expect EOPNOTSUPP attach $pmem
check "BLKFILTER_ATTACH on its fd: EOPNOTSUPP" \
	sh -c "blkfilter_tool attach $pmem 2>&1 | grep -q EOPNOTSUPP"
check "no tracker is left on it" cbt_tool expect ENOENT info $pmem
check "the Deno binding's Tracker.attach() throws BlksnapError EOPNOTSUPP" \
	deno eval --cached-only --no-check "
		import { BlksnapError, Tracker } from '/project/mod.ts';
		using tracker = Tracker.open('$pmem');
		try {
			tracker.attach();
		} catch (err) {
			if (err instanceof BlksnapError && err.code === 'EOPNOTSUPP') Deno.exit(0);
			throw err;
		}
		Deno.exit(1);"
check "the device still reads and writes" \
	sh -c "dd if=/dev/urandom of=/tmp/15.dat bs=64k count=16 2>/dev/null &&
		dd if=/tmp/15.dat of=$pmem bs=64k oflag=direct 2>/dev/null &&
		cmp -n 1048576 /tmp/15.dat $pmem"
rm -f /tmp/15.dat
tap_done
