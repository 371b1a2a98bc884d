#!/usr/bin/env bash
# The test VM: boots a real Linux kernel under QEMU (software emulation), loads
# our module, runs the in-VM suites or one command, and fails on a bad kernel log.
#
#   tests/vm/vm.sh setup                         install what is missing (root)
#   tests/vm/vm.sh [opts] suites [FILTER...]     run tests/vm/suites/* (TAP out)
#   tests/vm/vm.sh [opts] run -- CMD [ARG...]    run one command in the guest
#   tests/vm/vm.sh [opts] demo                   run examples/demo.ts in the guest
#
# Options:
#   --kernel NAME          the kernel to boot (default: debug when ../shared/vm
#                          has it, else cloud):
#                            debug, debug-6.1  ../shared/vm's 6.1 KASAN/lockdep build
#                            debug-6.12        ../shared/vm's 6.12 debug build
#                            cloud, 6.1        Debian 12's cloud kernel (installed)
#                            5.10              bullseye's cloud kernel
#                            6.12              trixie's cloud kernel
#                            7.2 (or 7.x, sid) sid's cloud kernel
#                            6.12-bpo          bookworm-backports' cloud kernel,
#                                              with one vCPU (with two it
#                                              crashes under TCG: kernel-abi.md)
#                                              (all but debug and 6.1 fetched by
#                                              kmod/kernels.sh)
#   --tags T1,T2           suites: only those whose `# vm-tags:` line names one
#                          of them (smoke: the quick ones; kernels: the ones
#                          the test command runs on every kernel; userland:
#                          user-space flows run once, on the cloud kernel);
#                          "!T" leaves out the suites tagged T
#   --smoke                the same as --tags smoke
#   --modparams "k=v ..."  insmod parameters for `run` and `demo`
#   --no-module            `run`: do not load the module
#   --timeout SECONDS      kill a hung guest after this long (default 1500)
#   --mem MIB              guest memory (default 3072)
#   --cpu MODEL            QEMU CPU model (default: the kernel's, see qemu_cpu)
#   --append "ARGS"        more kernel command-line arguments
#
# Exit status: the command's (run/demo), or 0 when every suite test passed.
# The TAP stream of the suites is written to stdout; everything the guest prints
# (kernel and console) is streamed to stderr for suites and to stdout for
# run/demo, and kept in tests/vm/.work/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# Each run gets its own work directory (runs may go on side by side);
# BLKSNAP_VM_WORK names one instead. tests/vm/.work/last points at the latest.
work_root="$repo/tests/vm/.work"
work="${BLKSNAP_VM_WORK:-}"
cache="$repo/.cache/vm"
shared_vm="${BLKSNAP_SHARED_VM:-$repo/../shared/vm}"

kernel=""
tags=""
modparams=""
load_module=1
timeout_s=1500
boot_timeout_s=240
mem=3072
cpu=""
vcpus=2
extra_append=""
action=""
declare -a rest=()

log() { printf 'vm: %s\n' "$*" >&2; }
die() { printf 'vm: error: %s\n' "$*" >&2; exit 2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--kernel) kernel=$2; shift 2 ;;
	--smoke) tags=smoke; shift ;;
	--tags) tags=$2; shift 2 ;;
	--modparams) modparams=$2; shift 2 ;;
	--no-module) load_module=0; shift ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--cpu) cpu=$2; shift 2 ;;
	--append) extra_append=$2; shift 2 ;;
	setup | suites | run | demo | build) action=$1; shift; break ;;
	-h | --help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done
[ -n "$action" ] || die "no action given: setup, suites, run -- CMD, or demo (see --help)"
if [ "$action" = run ]; then
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || die "run needs a command: vm.sh run -- CMD [ARG...]"
fi
rest=("$@")

if [ -z "$kernel" ]; then
	if [ -f "$shared_vm/vmlinuz-6.1-blksnap-debug" ]; then kernel=debug; else kernel=cloud; fi
fi
# The canonical name: debug-6.1, debug-6.12, 6.1, 5.10, 6.12, 6.12-bpo, 7.2.
case "$kernel" in
debug | debug-6.1) kernel=debug-6.1 ;;
debug-6.12) ;;
cloud | 6.1 | bookworm) kernel=6.1 ;;
5.10 | bullseye) kernel=5.10 ;;
6.12 | 6.12-trixie | trixie) kernel=6.12 ;;
# bookworm-backports' 6.12.95 crashes while booting with two vCPUs under
# QEMU 7.2's TCG (in cross-CPU code patching: a double fault, spurious debug
# traps; on every CPU model tried), and boots with one: docs/kernel-abi.md.
6.12-bpo | bookworm-backports) kernel=6.12-bpo vcpus=1 ;;
7.* | sid) kernel=7.2 ;;
*) die "--kernel must be debug, debug-6.1, debug-6.12, cloud, 6.1, 5.10, 6.12, 7.2 or 6.12-bpo" ;;
esac

if [ -z "$work" ]; then
	mkdir -p "$work_root"
	work=$(mktemp -d "$work_root/run.XXXXXX")
	# Logs of runs older than a day go.
	find "$work_root" -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
fi
mkdir -p "$work" "$work_root"
ln -sfn "$work" "$work_root/last"

# ---------------------------------------------------------------------------
# setup: packages and kernels
# ---------------------------------------------------------------------------

# Debian packages the VM needs on the host, with the command each provides.
host_packages=(qemu-system-x86 linux-image-cloud-amd64 linux-headers-cloud-amd64
	busybox-static cpio kmod e2fsprogs xfsprogs fio util-linux fdisk dmsetup zstd xz-utils gcc make nbd-client
	lvm2 cryptsetup-bin mdadm)

missing_packages() {
	local p
	for p in "${host_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
	done
}

do_setup() {
	local missing
	missing=$(missing_packages | tr '\n' ' ')
	if [ -n "${missing// /}" ]; then
		if [ "$(id -u)" -ne 0 ]; then
			die "missing Debian packages: $missing
  run as root, or install them first:  sudo apt-get install -y $missing"
		fi
		log "installing: $missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing >&2
	fi
}

# ---------------------------------------------------------------------------
# The kernel: sets kimg (image), kdir (headers on the host), krel (release),
# modroot (where its modules are, "" when they are built in), and the
# command that builds our module for it.
# ---------------------------------------------------------------------------

# A debug kernel of ../shared/vm: its image, and its headers package
# extracted into a folder named after the package, so a rebuilt package
# (a new release) is extracted anew and the old folder goes.
resolve_debug_kernel() { # series (6.1|6.12)
	local v=$1 deb dir
	kimg="$shared_vm/vmlinuz-$v-blksnap-debug"
	[ -f "$kimg" ] || die "no debug kernel at $kimg (--kernel cloud boots Debian's)"
	deb=$(ls "$shared_vm"/linux-headers-"$v".[0-9]*-blksnap-debug*.deb 2>/dev/null | sort -V | tail -n 1)
	[ -n "$deb" ] || die "no headers package for $kimg in $shared_vm"
	dir="$cache/debug-headers/$(basename "$deb" .deb)"
	if [ ! -f "$dir/.complete" ]; then
		log "extracting $(basename "$deb")"
		rm -rf "$dir"
		mkdir -p "$dir"
		dpkg-deb -x "$deb" "$dir"
		touch "$dir/.complete"
	fi
	# Folders of packages no longer in ../shared/vm (and the layout before
	# one folder per package) go.
	find "$cache/debug-headers" -mindepth 1 -maxdepth 1 ! -name 'linux-headers-*' -exec rm -rf {} + 2>/dev/null || true
	local other
	for other in "$cache"/debug-headers/linux-headers-*; do
		[ -e "$shared_vm/$(basename "$other").deb" ] || rm -rf "$other"
	done
	kdir=$(ls -d "$dir"/usr/src/linux-headers-* | head -n 1)
	modroot=""
	build_cmd=(make -s -C "$repo/kmod" module KDIR="$kdir")
}

resolve_kernel() {
	case "$kernel" in
	debug-6.1) resolve_debug_kernel 6.1 ;;
	debug-6.12) resolve_debug_kernel 6.12 ;;
	*)
		local KSERIES KSUITE KREL KDIR KTOOLCHAIN KIMAGE KMODROOT env
		env=$(bash "$repo/kmod/kernels.sh" env "$kernel" --image) ||
			die "the $kernel kernel is not available (kmod/kernels.sh env $kernel --image)"
		eval "$env"
		kimg=$KIMAGE kdir=$KDIR modroot=$KMODROOT
		build_cmd=(bash "$repo/kmod/kernels.sh" build "$kernel")
		;;
	esac
	krel=$(sed -n 's/.*UTS_RELEASE "\(.*\)"/\1/p' "$kdir/include/generated/utsrelease.h")
	[ -n "$krel" ] || die "no kernel release in the headers at $kdir"
}

find_deno() {
	if [ -n "${DENO_BIN:-}" ] && [ -x "$DENO_BIN" ]; then echo "$DENO_BIN"; return; fi
	if command -v deno >/dev/null 2>&1; then command -v deno; return; fi
	if [ -x "$repo/node_modules/.bin/deno" ]; then echo "$repo/node_modules/.bin/deno"; return; fi
	die "deno not found: run through 'npx -y deno@2.9.6 task ...' or set DENO_BIN"
}

# ---------------------------------------------------------------------------
# build: the module for the chosen kernel, the C library, the guest's C tools
# ---------------------------------------------------------------------------

do_build() {
	[ -d "$kdir" ] || die "no headers for the $kernel kernel at '$kdir' (run: tests/vm/vm.sh setup)"
	log "building module for $krel"
	"${build_cmd[@]}" >&2
	if [ -f "$repo/kmod/ctl/Makefile" ]; then
		make -s -C "$repo/kmod" lib >&2
	fi
	mkdir -p "$cache/tools-bin"
	local src out
	for src in "$repo"/tests/vm/tools/*.c; do
		[ -e "$src" ] || continue
		out="$cache/tools-bin/$(basename "$src" .c)"
		if [ ! -x "$out" ] || [ "$src" -nt "$out" ] || [ "$repo/tests/vm/tools/tool.h" -nt "$out" ] ||
			[ "$repo/kmod/uapi/blksnap.h" -nt "$out" ]; then
			gcc -O2 -g -Wall -Wextra -Werror -pthread -I"$repo/kmod/uapi" -o "$out" "$src" >&2 ||
				die "failed to build the guest tool $src"
		fi
	done
}

# ---------------------------------------------------------------------------
# initramfs: a cached base (busybox, deno, tools, kernel modules) plus a
# per-run archive holding the project tree; the kernel unpacks both.
# ---------------------------------------------------------------------------

# Host programs copied into the guest with the shared libraries they link.
guest_programs=(mke2fs e2fsck tune2fs dumpe2fs debugfs mkfs.xfs xfs_repair xfs_db fio
	losetup blockdev blkdiscard dmsetup sfdisk fallocate fsfreeze setpriv zstd sha256sum cmp nbd-client
	lvm cryptsetup mdadm)

copy_with_libs() { # root program-path
	local root=$1 bin=$2 lib
	mkdir -p "$root$(dirname "$bin")"
	cp -L "$bin" "$root$bin"
	for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

# The drivers the suites use; a kernel with modules gets these (and what
# they depend on) in the initramfs, the debug kernels have them built in
# (pmem and scsi_debug excepted: the suites needing those skip there).
guest_modules=(brd loop dm-mod dm-snapshot dm-flakey dm-delay dm-log-writes zram xfs
	null_blk virtio_blk virtio_pci nbd dm-crypt dm-thin-pool raid1 xts ecb algif_skcipher
	nd_e820 nd_pmem scsi_debug sd_mod)

# Copies the guest modules of the kernel (from modroot) into the initramfs
# root, decompressed (6.12 and later ship .ko.xz: the host unpacks them once
# instead of the emulated guest at every boot), and indexes them.
copy_guest_modules() { # root
	local root=$1 mod f rel_path dest base
	for mod in "${guest_modules[@]}"; do
		for f in $(modprobe -d "$modroot" -S "$krel" --show-depends "$mod" 2>/dev/null | awk '$1=="insmod"{print $2}'); do
			rel_path=${f#"${modroot%/}"}
			rel_path=/lib/modules/$krel/${rel_path#*/modules/"$krel"/}
			dest="$root$rel_path"
			mkdir -p "$(dirname "$dest")"
			case "$f" in
			*.ko.xz) base=${dest%.xz}; [ -e "$base" ] || xz -dc "$f" >"$base" ;;
			*.ko.zst) base=${dest%.zst}; [ -e "$base" ] || zstd -qdc "$f" >"$base" ;;
			*.ko.gz) base=${dest%.gz}; [ -e "$base" ] || gzip -dc "$f" >"$base" ;;
			*) [ -e "$dest" ] || cp "$f" "$dest" ;;
			esac
		done
	done
	for f in modules.order modules.builtin modules.builtin.modinfo; do
		[ -e "$modroot/lib/modules/$krel/$f" ] && cp "$modroot/lib/modules/$krel/$f" "$root/lib/modules/$krel/"
	done
	# modules.order names the compressed files; depmod only needs it to order.
	[ -f "$root/lib/modules/$krel/modules.order" ] &&
		sed -i 's/\.ko\.\(xz\|zst\|gz\)$/.ko/' "$root/lib/modules/$krel/modules.order"
	depmod -b "$root" "$krel"
}

build_base() { # output
	local out=$1 root deno_bin p f
	root=$(mktemp -d "$work/base.XXXXXX")
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,tmp,mnt,run,root,var/tmp}
	cp /bin/busybox "$root/bin/busybox"
	for p in $(/bin/busybox --list); do
		[ -e "$root/bin/$p" ] || ln -s busybox "$root/bin/$p"
	done
	deno_bin=$(find_deno)
	deno_bin=$(readlink -f "$deno_bin")
	copy_with_libs "$root" "$deno_bin"
	mv "$root$deno_bin" "$root/usr/bin/deno"
	for p in "${guest_programs[@]}"; do
		f=$(command -v "$p" || true)
		[ -n "$f" ] || { log "warning: $p not found on the host; not in the guest"; continue; }
		rm -f "$root/bin/$p" "$root/sbin/$p" "$root/usr/bin/$p"
		copy_with_libs "$root" "$f"
	done
	ln -sf mke2fs "$root/sbin/mkfs.ext4" 2>/dev/null || true
	[ -e "$root/usr/sbin/mke2fs" ] && ln -sf mke2fs "$root/usr/sbin/mkfs.ext4"
	[ -e "$root/usr/sbin/e2fsck" ] && ln -sf e2fsck "$root/usr/sbin/fsck.ext4"
	# glibc pieces deno and the tools need beyond what ldd lists
	for f in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libresolv.so.2; do
		[ -e "$f" ] && copy_with_libs "$root" "$f"
	done
	cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
EOF
	cat >"$root/etc/group" <<'EOF'
root:x:0:
disk:x:6:nobody
nogroup:x:65534:
EOF
	echo "hosts: files" >"$root/etc/nsswitch.conf"
	echo "127.0.0.1 localhost" >"$root/etc/hosts"
	[ -n "$modroot" ] && copy_guest_modules "$root"
	cp "$here/guest/init.sh" "$root/init"
	chmod +x "$root/init"
	(cd "$root" && find . | cpio -o -H newc --quiet) >"$out.tmp.$$"
	mv "$out.tmp.$$" "$out.tmp"
	mv "$out.tmp" "$out"
	rm -rf "$root"
}

base_key() {
	local deno_bin
	deno_bin=$(readlink -f "$(find_deno)")
	{
		echo "$kernel $krel $kimg"
		stat -c '%s %Y' "$kimg"
		printf '%s\n' "${guest_modules[@]}"
		stat -c '%s %Y' "$deno_bin"
		sha256sum "$here/guest/init.sh" "$0" | cut -d' ' -f1
	} | sha256sum | cut -c1-16
}

# The project tree as the guest sees it at /project: tracked and untracked
# (not ignored) files, the native builds for this kernel, and the Deno cache.
build_project() { # output job-file
	local out=$1 job=$2 root deno_bin
	root=$(mktemp -d "$work/project.XXXXXX")
	mkdir -p "$root/project"
	(cd "$repo" && git ls-files -co --exclude-standard -z 2>/dev/null || find . -type f -not -path './.git/*' -not -path './.cache/*' -print0) |
		(cd "$repo" && xargs -0 -r cp --parents -t "$root/project" 2>/dev/null) || true
	mkdir -p "$root/project/kmod/module" "$root/project/tests/vm/tools/bin"
	cp "$repo/kmod/module/build-$krel/blksnap.ko" "$root/project/kmod/module/blksnap.ko"
	if [ -d "$repo/kmod/ctl/build" ]; then
		mkdir -p "$root/project/kmod/ctl"
		cp -a "$repo/kmod/ctl/build" "$root/project/kmod/ctl/"
	fi
	cp -a "$cache"/tools-bin/. "$root/project/tests/vm/tools/bin/" 2>/dev/null || true
	# The Deno cache: every module the guest may load, prepared on the host
	# because the guest has no network.
	deno_bin=$(find_deno)
	if [ -d "$repo/.cache/deno" ]; then
		mkdir -p "$root/project/.cache"
		cp -a "$repo/.cache/deno" "$root/project/.cache/deno"
	fi
	cp "$job" "$root/project/.vm-job"
	(cd "$root" && find . | cpio -o -H newc --quiet) >"$out"
	rm -rf "$root"
}

prepare_deno_cache() {
	local deno_bin files
	deno_bin=$(find_deno)
	mkdir -p "$repo/.cache/deno"
	mapfile -t files < <(cd "$repo" && git ls-files -co --exclude-standard -- '*.ts' 2>/dev/null | grep -v '^node_modules/' || true)
	[ ${#files[@]} -gt 0 ] || return 0
	(cd "$repo" && DENO_DIR="$repo/.cache/deno" "$deno_bin" cache --quiet "${files[@]}" >&2) ||
		log "warning: deno cache failed; guest Deno programs may miss modules"
	# A cache made through the lockfile lacks some npm packages' registry
	# metadata, which `deno install --global` (it ignores the lockfile) needs
	# offline: suite 49 installs the blksnap command in the guest.
	(cd "$repo" && DENO_DIR="$repo/.cache/deno" "$deno_bin" cache --quiet --no-lock cli/main.ts >&2) ||
		log "warning: deno cache --no-lock failed; deno install in the guest may fail"
}

# ---------------------------------------------------------------------------
# boot
# ---------------------------------------------------------------------------

# Kernel log lines that fail a run (one extended regular expression).
bad_log=$(cat "$here/guest/kernel_log_problems.ere")

# One boot: streams the console, enforces the run's timeout and a boot
# deadline (the guest must report that it is up within boot_timeout_s).
run_qemu() {
	local pidfile="$work/qemu.pid" rcfile="$work/qemu.rc" waited=0 pipe
	: >"$work/results.log"
	rm -f "$pidfile" "$rcfile"
	{
		timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu "$cpu" -m "$mem" -smp "$vcpus" \
			-display none -monitor none -no-reboot -pidfile "$pidfile" \
			-serial stdio -serial "file:$work/results.log" \
			-kernel "$kimg" -initrd "$initrd" -append "$append" \
			-drive "file=$scratch,if=virtio,format=raw,cache=unsafe" </dev/null 2>&1
		echo $? >"$rcfile"
	} | if [ "$action" = suites ]; then tee "$work/console.log" >&2; else tee "$work/console.log"; fi &
	pipe=$!
	while kill -0 "$pipe" 2>/dev/null; do
		grep -q 'BLKSNAP-GUEST-UP' "$work/results.log" 2>/dev/null && break
		if [ "$waited" -ge "$boot_timeout_s" ]; then
			log "the guest did not come up within ${boot_timeout_s}s; stopping it"
			[ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
			break
		fi
		sleep 1
		waited=$((waited + 1))
	done
	wait "$pipe" || true
	return "$(cat "$rcfile" 2>/dev/null || echo 255)"
}

boot() { # job-file -> sets guest_rc, writes $work/results.log, $work/console.log
	local job=$1 base key initrd scratch append started
	mkdir -p "$work" "$cache"
	key=$(base_key)
	base="$cache/base-$kernel-$key.cpio"
	if [ ! -f "$base" ]; then
		log "assembling the guest base image ($kernel kernel)"
		build_base "$base"
		# Older bases of this kernel are no longer used.
		find "$cache" -maxdepth 1 -name "base-$kernel-*.cpio" ! -newer "$base" ! -name "$(basename "$base")" -mmin +60 -delete 2>/dev/null || true
		find "$cache" -maxdepth 1 -name 'base-????????????????.cpio' -delete 2>/dev/null || true
	fi
	build_project "$work/project.cpio" "$job"
	initrd="$work/initrd.cpio"
	cat "$base" "$work/project.cpio" >"$initrd"
	scratch="$work/scratch.img"
	rm -f "$scratch"
	truncate -s 512M "$scratch"
	[ -f "$kimg" ] || die "no kernel image at $kimg (run: tests/vm/vm.sh setup)"
	append="console=ttyS0 panic=-1 loglevel=5 rdinit=/init brd.rd_nr=4 brd.rd_size=131072"
	append+=" hung_task_timeout_secs=60 oops=panic panic_on_warn=0 blksnap.vmkernel=$kernel"
	# Freed trackers are poisoned: a use after free faults or is reported.
	append+=" slub_debug=FZP,blksnap_tracker"
	# The clocksource watchdog, late under a loaded host, finds the emulated
	# TSC skewed, marks it unstable and patches sched_clock's static key in
	# running code, which QEMU 7.2's TCG mishandles (an int3 Oops on 7.2,
	# docs/kernel-abi.md). QEMU's TSC is steady: no watchdog.
	append+=" tsc=reliable"
	# A legacy pmem region (16 MiB at 1 GiB, out of the guest's RAM) for
	# 15-tracker_refused_devices: nd_e820 + nd_pmem make it /dev/pmem0, a
	# DAX device.
	# Only kernels with modules (the cloud kernels) have those drivers.
	[ -n "$modroot" ] && [ "$mem" -ge 2048 ] && append+=" memmap=16M!1G"
	[ -n "$extra_append" ] && append+=" $extra_append"
	[ -n "$cpu" ] || cpu=max
	started=$(date +%s)
	local attempt qrc why
	for attempt in 1 2 3; do
		log "booting the $kernel kernel ($(basename "$kimg")), ${mem} MiB, $vcpus vCPU(s), TCG$([ "$attempt" -gt 1 ] && echo ", boot $attempt")"
		rm -f "$scratch"
		truncate -s 512M "$scratch"
		qrc=0
		run_qemu || qrc=$?
		# A boot that failed before our job began (the kernel did not reach
		# init, or reported a problem while booting, before our module was
		# loaded) is retried: the debug kernel under TCG does this now and
		# then. The report stays in the earlier attempt's log.
		why=""
		if grep -q 'BLKSNAP-BOOT-TAINTED' "$work/results.log"; then
			why="the kernel reported a problem while booting, before our module was loaded"
		elif ! grep -q 'BLKSNAP-GUEST-UP' "$work/results.log"; then
			why="the guest did not reach its init"
		fi
		[ -n "$why" ] && [ "$attempt" -lt 3 ] || break
		log "boot $attempt failed: $why; its log: $work/console.boot$attempt.log"
		grep -E "$bad_log" "$work/console.log" | head -n 5 | sed 's/^/vm:   /' >&2 || true
		cp "$work/console.log" "$work/console.boot$attempt.log"
	done
	boot_problem=$why
	vm_seconds=$(($(date +%s) - started))
	rm -f "$scratch" "$initrd"
	if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
		log "FAIL: the guest did not finish within ${timeout_s}s and was killed"
		guest_timed_out=1
	else
		guest_timed_out=0
	fi
	guest_rc=$(tr -d '\r' <"$work/results.log" | sed -n 's/^BLKSNAP-VM-EXIT \([0-9]*\).*/\1/p' | tail -n 1)
	[ -n "$guest_rc" ] || guest_rc=255
}

# Scans the console and the guest's dmesg dump; prints offending lines.
kernel_log_clean() {
	local lines
	lines=$( (cat "$work/console.log"; tr -d '\r' <"$work/results.log") |
		grep -E "$bad_log" | grep -v -E 'blksnap-selftest-ok|BLKSNAP-' | sort -u || true)
	if [ -n "$lines" ]; then
		log "FAIL: the kernel log shows problems:"
		printf '%s\n' "$lines" | head -n 60 | sed 's/^/vm:   /' >&2
		return 1
	fi
	return 0
}

write_job() { # kind args...
	local job="$work/job.sh" kind=$1
	shift
	mkdir -p "$work"
	{
		echo "JOB_KIND=$kind"
		echo "JOB_KERNEL=$kernel"
		printf 'JOB_MODPARAMS=%q\n' "$modparams"
		echo "JOB_LOAD_MODULE=$load_module"
		printf 'JOB_TAGS=%q\n' "$tags"
		# One shell-quoted command line; the guest's ash evals it. No
		# arguments is an empty line: printf '%q ' with none prints '',
		# which handed demo.ts an empty argument (its usage error).
		if [ $# -gt 0 ]; then
			printf 'JOB_ARGS=%q\n' "$(printf '%q ' "$@")"
		else
			echo "JOB_ARGS="
		fi
	} >"$job"
	echo "$job"
}

# ---------------------------------------------------------------------------

case "$action" in
setup)
	do_setup
	resolve_kernel
	log "ready: $(missing_packages | wc -l) packages missing; kernel $kernel: $krel ($kimg)"
	;;
build)
	do_setup
	resolve_kernel
	do_build
	;;
run | demo | suites)
	do_setup
	resolve_kernel
	do_build
	prepare_deno_cache
	if [ "$action" = suites ]; then
		job=$(write_job suites "${rest[@]+"${rest[@]}"}")
	elif [ "$action" = demo ]; then
		job=$(write_job demo "${rest[@]+"${rest[@]}"}")
	else
		job=$(write_job run "${rest[@]}")
	fi
	boot "$job"
	clean=0
	kernel_log_clean || clean=1
	log "guest finished in ${vm_seconds}s with status $guest_rc"
	if [ "$action" = suites ]; then
		# The TAP stream for the caller, plus one test for the kernel log.
		# (the serial port ends lines with CR LF)
		tr -d '\r' <"$work/results.log" | sed -n '/^BLKSNAP-TAP-BEGIN/,/^BLKSNAP-TAP-END/p' | grep -v '^BLKSNAP-' || true
		if [ -n "$boot_problem" ]; then
			echo "not ok - vm($kernel): the kernel boots cleanly to init ($boot_problem, 3 boots)"
		else
			echo "ok - vm($kernel): the kernel boots cleanly to init"
		fi
		if [ "$guest_timed_out" -eq 1 ]; then
			echo "not ok - vm($kernel): the guest finished within ${timeout_s}s"
		else
			echo "ok - vm($kernel): the guest finished within ${timeout_s}s (${vm_seconds}s)"
		fi
		if [ "$clean" -eq 0 ]; then
			echo "ok - vm($kernel): kernel log clean (no BUG/WARNING/Oops/KASAN/lockdep/hung task)"
		else
			echo "not ok - vm($kernel): kernel log clean (no BUG/WARNING/Oops/KASAN/lockdep/hung task)"
		fi
		[ "$guest_timed_out" -eq 0 ] && [ "$clean" -eq 0 ] && [ "$guest_rc" = 0 ] && exit 0
		exit 1
	fi
	[ "$guest_timed_out" -eq 0 ] || exit 124
	[ "$clean" -eq 0 ] || exit 3
	exit "$guest_rc"
	;;
esac
