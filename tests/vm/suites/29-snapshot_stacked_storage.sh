#!/bin/sh
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
# Difference storage that would make copy-on-write wait for itself is
# refused, at snapshotadd and again at take: storage through LVM on a PV
# partition of the snapshot, through dm-crypt, through a loop device whose
# backing file is on a device of the snapshot, on md raid1 over a device of
# the snapshot (EDEADLK); on the device itself (EBUSY); two snapshots
# storing on each other's devices (EDEADLK, whichever is completed second);
# a stack changed after snapshotadd (a dm table reloaded), caught at take.
# The CLI explains EDEADLK in a sentence. Nothing hangs.
. /project/tests/vm/lib.sh

t=/tmp/29-stacked
mkdir -p $t
export DM_DISABLE_UDEV=1
for m in dm-crypt raid1 xts ecb algif_skcipher; do modprobe $m 2>/dev/null; done
mkdir -p /etc/lvm
cat >/etc/lvm/lvm.conf <<'EOF'
devices { obtain_device_list_from_udev = 0 }
activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 1 monitoring = 0 }
global { use_lvmpolld = 0 }
backup { backup = 0 archive = 0 }
EOF

# lvm ARGS: LVM without its "metadata update is NOT backed up" warning (we
# turn the backups off), which the VM's console check would take for a
# kernel WARNING.
lvm() {
	command lvm "$@" 2>$t/lvm.err
	rc=$?
	grep -v 'NOT backed up' $t/lvm.err >&2
	return $rc
}

# mkstore DEV DIR: ext4 on DEV mounted at DIR (the storage goes in DIR).
mkstore() { mkfs.ext4 -q -F "$1" && mkdir -p "$2" && mount "$1" "$2"; }
# refused ERRNO DEV STORAGE: attach DEV, a snapshot storing in STORAGE,
# snapshotadd of DEV fails with ERRNO; nothing is left.
refused() {
	snap_ctl attach "$2" || return 1
	ID=$(snap_ctl create "$3" 1048576) || return 1
	snap_ctl expect "$1" add "$ID" "$2"
	rc=$?
	snap_ctl destroy "$ID"
	snap_ctl detach "$2"
	return $rc
}

# --- LVM: storage on an LV of a PV partition --------------------------------
truncate -s 128M $t/a.img
disk=$(loop_setup -P $t/a.img)
cbt_tool mkpart "$disk" 2048 260096 >/dev/null
wait_bdev "${disk}p1"
if lvm pvcreate -qq "${disk}p1" && lvm vgcreate -qq vg29 "${disk}p1" &&
	lvm lvcreate -qq -L 64M -n st vg29 && lvm vgmknodes vg29 && wait_bdev /dev/vg29/st; then
	mkstore /dev/vg29/st $t/lv
	check "storage on an LV: its PV partition is refused (EDEADLK)" refused EDEADLK "${disk}p1" $t/lv
	check "and the disk under it (EDEADLK)" refused EDEADLK "$disk" $t/lv
	check "and the LV itself (EBUSY, its own device)" refused EBUSY /dev/vg29/st $t/lv
	check "a device beside the stack is accepted" sh -c \
		"snap_ctl attach /dev/ram0 && ID=\$(snap_ctl create $t/lv 1048576) && snap_ctl add \$ID /dev/ram0 && snap_ctl take \$ID && snap_ctl destroy \$ID && snap_ctl detach /dev/ram0"
	cd /project || exit 1
	cli_sentence() {
		snap_ctl attach "${disk}p1" || return 1
		ID=$(snap_ctl create $t/lv 1048576) || return 1
		uuid=$(echo "$ID" | sed 's/\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/')
		deno run -A --cached-only cli/main.ts snapshot add -i "$uuid" -d "${disk}p1" >$t/cli.out 2>&1
		rc=$?
		snap_ctl destroy "$ID"
		snap_ctl detach "${disk}p1"
		cat $t/cli.out
		[ $rc = 1 ] && grep -q "rests on a device of this snapshot" $t/cli.out
	}
	step "the CLI explains EDEADLK" cli_sentence
	cd / || exit 1
	umount $t/lv
	lvm vgremove -qq -ff vg29
else
	tap_fail "LVM on ${disk}p1"
fi
losetup -d "$disk"

# --- dm-crypt over a device of the snapshot -------------------------------------
dd if=/dev/urandom of=$t/key bs=64 count=1 2>/dev/null
if cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
	--key-file $t/key /dev/ram1 && cryptsetup open --key-file $t/key /dev/ram1 c29 &&
	wait_bdev /dev/mapper/c29; then
	mkstore /dev/mapper/c29 $t/crypt
	check "storage on dm-crypt over /dev/ram1: /dev/ram1 is refused (EDEADLK)" refused EDEADLK /dev/ram1 $t/crypt
	umount $t/crypt
	cryptsetup close c29
else
	tap_fail "dm-crypt on /dev/ram1"
fi

# --- a loop device on a file of a device of the snapshot ----------------------
mkstore /dev/ram2 $t/r2
truncate -s 64M $t/r2/backing
lo=$(loop_setup $t/r2/backing)
mkstore "$lo" $t/lo
check "storage on a loop device backed by a file on /dev/ram2: /dev/ram2 is refused (EDEADLK)" \
	refused EDEADLK /dev/ram2 $t/lo
umount $t/lo
losetup -d "$lo"
umount $t/r2

# --- md raid1 over a device of the snapshot --------------------------------------
truncate -s 64M $t/m.img
m2=$(loop_setup $t/m.img)
if mdadm --create /dev/md29 --run --quiet --level=1 --raid-devices=2 --metadata=1.2 \
	--assume-clean /dev/ram3 "$m2" && wait_bdev /dev/md29; then
	mkstore /dev/md29 $t/md
	check "storage on md raid1 over /dev/ram3: /dev/ram3 is refused (EDEADLK)" refused EDEADLK /dev/ram3 $t/md
	umount $t/md
	mdadm --stop /dev/md29
else
	tap_fail "md raid1 over /dev/ram3"
fi
losetup -d "$m2"

# --- two snapshots storing on each other's devices -----------------------------
mkstore /dev/ram1 $t/s1
mkstore /dev/ram2 $t/s2
snap_ctl attach /dev/ram3 && snap_ctl attach /dev/ram0
truncate -s 64M $t/x.img
x=$(loop_setup $t/x.img)
dmsetup create st29 --table "0 131072 linear $x 0" && wait_bdev /dev/mapper/st29
mkstore /dev/mapper/st29 $t/dm
crossed() {
	snap_ctl attach /dev/ram1 && snap_ctl attach /dev/ram2 || return 1
	# A: /dev/ram1, stores on /dev/ram2; B: /dev/ram2, stores on /dev/ram1.
	A=$(snap_ctl create $t/s2 1048576) && snap_ctl add "$A" /dev/ram1 && snap_ctl take "$A" || return 1
	B=$(snap_ctl create $t/s1 1048576) || return 1
	snap_ctl expect EDEADLK add "$B" /dev/ram2 || return 1
	# Untaken snapshots too: the second one to close the ring is refused.
	snap_ctl destroy "$A"
	A=$(snap_ctl create $t/s2 1048576) && snap_ctl add "$A" /dev/ram1 || return 1
	snap_ctl expect EDEADLK add "$B" /dev/ram2 || return 1
	snap_ctl destroy "$A" && snap_ctl destroy "$B"
	snap_ctl detach /dev/ram1 && snap_ctl detach /dev/ram2
}
check "two snapshots storing on each other's devices: the second is refused (EDEADLK)" crossed
changed_stack() {
	# The storage's dm device rests on $x at snapshotadd, on /dev/ram3 at take.
	ID=$(snap_ctl create $t/dm 1048576) && snap_ctl add "$ID" /dev/ram3 || return 1
	sync && dd if="$x" of=/dev/ram3 bs=1M count=64 2>/dev/null &&
		dmsetup suspend st29 && dmsetup load st29 --table "0 131072 linear /dev/ram3 0" &&
		dmsetup resume st29 || return 1
	snap_ctl expect EDEADLK take "$ID" || return 1
	snap_ctl destroy "$ID"
}
check "a stack changed after snapshotadd is refused at take (EDEADLK)" changed_stack
umount $t/dm
dmsetup remove st29
losetup -d "$x"
umount $t/s1
umount $t/s2
snap_ctl detach /dev/ram3
snap_ctl detach /dev/ram0
check "no snapshot is left" test -z "$(snap_ctl collect)"

rm -rf $t
tap_done
