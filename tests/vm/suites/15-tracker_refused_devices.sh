#!/bin/sh
# vm-tags: kernels
# Devices the module refuses, each refusal through the control device, the
# device's own fd (BLKFILTER_*) and the Deno binding; the device is left as
# it was, and it still reads and writes. A kernel that cannot make such a
# device skips that part, with the reason.
#
# DAX: refused at attach with EOPNOTSUPP (review finding 11). A write to DAX
# memory is a store, no bio ever shows it, so a tracker could never see it.
# The device is a legacy pmem region: vm.sh boots the cloud kernels with
# memmap=16M!1G, and nd_e820 + nd_pmem make it /dev/pmem0 with the queue's
# DAX flag. The debug kernels have no pmem drivers.
#
# Data integrity (T10 PI): attach is allowed (tracking reads no data), and
# snapshotadd refuses with EPERM: a copy-on-write copy and the image carry
# the sectors without their protection information. The device is a SCSI
# disk of scsi_debug with DIF type 1 and DIX, which gets the block layer's
# T10-DIF-TYPE1-CRC profile. The debug kernels have neither scsi_debug nor
# BLK_DEV_INTEGRITY. Inline encryption, refused at snapshotadd the same way,
# cannot be tested: no device of QEMU has a crypto profile.
. /project/tests/vm/lib.sh

# rw_check DEV: random data written with O_DIRECT at the start of DEV reads
# back the same.
rw_check() {
	dd if=/dev/urandom of=/tmp/15.dat bs=64k count=16 2>/dev/null &&
		dd if=/tmp/15.dat of="$1" bs=64k oflag=direct 2>/dev/null &&
		cmp -n 1048576 /tmp/15.dat "$1"
}

# dax_device: sets $pmem to the DAX device, or skips (and returns 1).
dax_device() {
	pmem=/dev/pmem0
	[ -b $pmem ] || modprobe -a nd_e820 nd_pmem 2>/dev/null
	wait_bdev $pmem
	if [ ! -b $pmem ]; then
		tap_skip "a DAX device is refused at attach" \
			"no $pmem: this kernel has no legacy pmem drivers (X86_PMEM_LEGACY, BLK_DEV_PMEM) or was booted without memmap=SIZE!START"
		pmem=
		return 1
	fi
	if [ "$(cat /sys/block/pmem0/queue/dax 2>/dev/null)" != 1 ]; then
		tap_skip "a DAX device is refused at attach" \
			"$pmem does not have DAX (no ZONE_DEVICE pages for the region)"
		pmem=
		return 1
	fi
	echo "# $pmem: $(blockdev --getsize64 $pmem) bytes, queue/dax 1"
}

# The disk scsi_debug made (sdX), once sd has probed it (asynchronously):
# up to 10 s.
scsi_debug_disk() {
	_sd_i=0
	while [ $_sd_i -lt 100 ]; do
		for _sd in /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*/block/*; do
			[ -d "$_sd" ] && { basename "$_sd"; return 0; }
		done
		sleep 0.1
		_sd_i=$((_sd_i + 1))
	done
	return 1
}

# pi_device: sets $pi to a disk with T10 PI, or skips (and returns 1).
pi_device() {
	pi=
	what="a device with data integrity (T10 PI) is refused at snapshotadd"
	modprobe sd_mod 2>/dev/null # built in on some kernels
	if ! modprobe scsi_debug dif=1 dix=1 dev_size_mb=16 delay=0 2>/dev/null; then
		tap_skip "$what" "this kernel has no scsi_debug (SCSI_DEBUG), the only virtual device with T10 PI"
		return 1
	fi
	if ! sd=$(scsi_debug_disk); then
		tap_fail "scsi_debug made a SCSI disk"
		return 1
	fi
	# No udev in the guest: the node comes from devtmpfs, or from here.
	[ -b /dev/$sd ] || mknod /dev/$sd b $(tr : ' ' </sys/block/$sd/dev)
	format=$(cat /sys/block/$sd/integrity/format 2>/dev/null)
	if [ "$format" != T10-DIF-TYPE1-CRC ]; then
		tap_skip "$what" "/dev/$sd has integrity format '${format:-none}', not T10-DIF-TYPE1-CRC: this kernel has no BLK_DEV_INTEGRITY"
		rmmod scsi_debug
		return 1
	fi
	pi=/dev/$sd
	echo "# $pi: $(blockdev --getsize64 $pi) bytes, integrity $format"
}

if dax_device; then
	check "attach of the DAX device through the control device: EOPNOTSUPP" \
		cbt_tool expect EOPNOTSUPP attach $pmem
	check "BLKFILTER_ATTACH on its fd: EOPNOTSUPP" \
		sh -c "blkfilter_tool attach $pmem 2>&1 | grep -q EOPNOTSUPP"
	check "no tracker is left on it" cbt_tool expect ENOENT info $pmem
fi

if pi_device; then
	check "attach of the T10 PI device: allowed (tracking reads no data)" \
		cbt_tool attach $pi
	ID=$(snap_ctl create /dev/shm 262144)
	log_mark
	check "snapshotadd of the T10 PI device through the control device: EPERM" \
		snap_ctl expect EPERM add "$ID" $pi
	check "snapshotadd (BLKFILTER_CTL) on its fd: EPERM" \
		sh -c "blkfilter_tool add $pi $ID 2>&1 | grep -q EPERM"
fi

# The binding's refusals, both in one Deno process: its start costs seconds
# under TCG. Snapshot.create() with the T10 PI device must destroy the
# snapshot it made when the add fails.
if [ -n "$pmem$pi" ]; then
	deno eval --cached-only --no-check "
		import { BlksnapError, Snapshot, Tracker } from '/project/mod.ts';
		let failed = false;
		function refuses(what: string, code: string, request: () => void) {
			try {
				request();
				console.log('not ok - ' + what + ' (it succeeded)');
				failed = true;
			} catch (err) {
				const ok = err instanceof BlksnapError && err.code === code;
				console.log((ok ? 'ok - ' : 'not ok - ') + what + (ok ? '' : ' (' + err + ')'));
				failed ||= !ok;
			}
		}
		if ('$pmem') {
			using tracker = Tracker.open('$pmem');
			refuses(\"the Deno binding's Tracker.attach() of the DAX device throws BlksnapError EOPNOTSUPP\",
				'EOPNOTSUPP', () => tracker.attach());
		}
		if ('$pi') {
			refuses(\"the Deno binding's Snapshot.create() with the T10 PI device throws BlksnapError EPERM\",
				'EPERM', () => Snapshot.create({ diffStorage: '/dev/shm', limit: 128n << 20n, devices: ['$pi'] }));
		}
		Deno.exit(failed ? 1 : 0);" || TAP_FAILED=1
fi

if [ -n "$pmem" ]; then
	check "the DAX device still reads and writes" rw_check $pmem
fi

if [ -n "$pi" ]; then
	check "each snapshotadd refusal is logged with its reason" \
		test "$(log_count_since_mark 'has data integrity: not supported')" = 3
	check "the binding destroyed the snapshot it made: only ours is left" \
		test "$(snap_ctl collect)" = "$ID"
	check "the T10 PI device is in no snapshot (snapshotinfo: no image)" \
		sh -c "snap_ctl info $pi | grep -qx 'error_code=0 image='"
	check "the snapshot holds no device: take gives ENODEV" \
		snap_ctl expect ENODEV take "$ID"
	snap_ctl destroy "$ID"
	check "the T10 PI device still reads and writes, tracked" rw_check $pi
	check "detach of the T10 PI device" cbt_tool detach $pi
	check "no tracker is left on it" cbt_tool expect ENOENT info $pi
	check "scsi_debug unloads: nothing holds the disk" rmmod scsi_debug
fi
rm -f /tmp/15.dat
tap_done
