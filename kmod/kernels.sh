#!/usr/bin/env bash
# The kernels the module is built for, and the toolchain of each.
#
#   kmod/kernels.sh list                      the series and what they are
#   kmod/kernels.sh env SERIES [--image]      KEY=VALUE lines: release, headers,
#                                             toolchain, the compiler of a host
#                                             toolchain (--image: kernel image and
#                                             modules for the test VM too)
#   kmod/kernels.sh build SERIES [MAKEVAR=..] build kmod/module for SERIES
#   kmod/kernels.sh exec SERIES -- CMD...     run CMD in SERIES' toolchain (the
#                                             suite's chroot, or the host)
#
# A series is a Debian suite's cloud kernel (linux-headers-cloud-amd64):
#
#   5.10         bullseye            host toolchain, CC=gcc-12 (gcc-10 is not here)
#   6.1          bookworm            the host's installed headers and kernel
#                                    (cloud is another name for it)
#   6.12         trixie              a trixie chroot (gcc-14, trixie's pahole);
#                                    6.12-trixie and trixie are other names
#   6.12-bpo     bookworm-backports  host toolchain (gcc-12, bookworm's pahole);
#                                    the VM boots it with one vCPU only (with
#                                    two it crashes under TCG: kernel-abi.md)
#   7.2          sid                 a sid chroot (sid's gcc and pahole); 7.x and
#                                    sid are other names for it
#
# Nothing is pinned: the release of each series is what the suite's
# linux-headers-cloud-amd64 depends on today (package lists refreshed once a
# day, or with BLKSNAP_KERNELS_REFRESH=1). Packages of other suites are never
# installed on the host: they are downloaded with a private apt configuration
# and extracted. Kernels whose kbuild tools need a newer glibc than the host's
# (trixie, sid) build inside a debootstrap chroot of their suite, with the
# headers extracted at their real paths.
#
# Everything lives under the cache directory: $BLKSNAP_KERNELS_CACHE, or
# /var/cache/blksnap-kernels when writable (shared by every checkout of this
# machine, so a fresh clone does not download and debootstrap again), else
# .cache/kernels in the checkout. Concurrent runs are serialised per suite.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
mirror=${BLKSNAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { printf 'kernels: %s\n' "$*" >&2; }
die() { printf 'kernels: error: %s\n' "$*" >&2; exit 2; }

usage() { sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; }

if [ -n "${BLKSNAP_KERNELS_CACHE:-}" ]; then
	kcache=$BLKSNAP_KERNELS_CACHE
elif mkdir -p /var/cache/blksnap-kernels 2>/dev/null && [ -w /var/cache/blksnap-kernels ]; then
	kcache=/var/cache/blksnap-kernels
else
	kcache=$repo/.cache/kernels
fi
mkdir -p "$kcache"

# ---------------------------------------------------------------------------
# Series
# ---------------------------------------------------------------------------

series_names="5.10 6.1 6.12 6.12-bpo 7.2"

# Sets suite, toolchain (host|chroot), series (the canonical name).
series_set() {
	case "$1" in
	5.10 | bullseye) series=5.10 suite=bullseye toolchain=host ;;
	6.1 | bookworm | cloud) series=6.1 suite=bookworm toolchain=installed ;;
	6.12 | 6.12-trixie | trixie) series=6.12 suite=trixie toolchain=chroot ;;
	6.12-bpo | bookworm-backports) series=6.12-bpo suite=bookworm-backports toolchain=host ;;
	7.* | sid) series=7.2 suite=sid toolchain=chroot ;;
	*) die "unknown kernel series '$1' (one of: $series_names)" ;;
	esac
	asked=$1
}

# ---------------------------------------------------------------------------
# A private apt configuration per suite
# ---------------------------------------------------------------------------

apt_dir() { echo "$kcache/apt/$1"; }

# (Binary caches on: some machines' apt.conf turns them off, and without
# them each query parses the whole of sid's package list again.)
apt_opts() { # suite
	local d
	d=$(apt_dir "$1")
	printf '%s\n' -o "Dir::Etc::sourcelist=$d/sources.list" -o "Dir::Etc::sourceparts=-" \
		-o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" \
		-o "Dir::State::status=$d/status" -o "Debug::NoLocking=1" \
		-o "Dir::Cache::pkgcache=pkgcache.bin" -o "Dir::Cache::srcpkgcache=srcpkgcache.bin" \
		-o "Acquire::Check-Valid-Until=false" -o "APT::Get::List-Cleanup=0" \
		-o "APT::Sandbox::User=root" \
		-o "Dir::Etc::trusted=/usr/share/keyrings/debian-archive-keyring.gpg" \
		-o "Dir::Etc::trustedparts=/usr/share/keyrings"
}

apt_run() { # tool suite args...
	local tool=$1 s=$2 opts
	shift 2
	mapfile -t opts < <(apt_opts "$s")
	"$tool" "${opts[@]}" "$@"
}

# Refreshes the suite's package lists when they are older than a day.
apt_refresh() { # suite
	local s=$1 d
	d=$(apt_dir "$s")
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	: >>"$d/status"
	echo "deb $mirror $s main" >"$d/sources.list"
	if [ "${BLKSNAP_KERNELS_REFRESH:-0}" = 1 ] || [ ! -f "$d/updated" ] ||
		[ -n "$(find "$d/updated" -mmin +1440)" ]; then
		log "refreshing the package lists of $s"
		apt_run apt-get "$s" update -qq >&2 || die "apt-get update of $s failed"
		touch "$d/updated"
	fi
}

# The packages' Depends, one name a line (alternatives and versions dropped).
apt_depends() { # suite package
	apt_run apt-cache "$1" show --no-all-versions "$2" 2>/dev/null |
		sed -n 's/^\(Pre-\)\{0,1\}Depends: //p' | tr ',|' '\n\n' |
		sed 's/(.*)//; s/:any//; s/^ *//; s/ *$//' | grep -v '^$' || true
}

apt_version() { # suite package
	apt_run apt-cache "$1" show --no-all-versions "$2" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1
}

# The kernel release the suite's cloud kernel is today: what
# linux-headers-cloud-amd64 depends on, minus the package prefix.
suite_release() { # suite
	apt_depends "$1" linux-headers-cloud-amd64 | sed -n 's/^linux-headers-\(.*-cloud-amd64\)$/\1/p' | head -n 1
}

# Downloads packages into the shared pool; prints their paths.
apt_fetch() { # suite package...
	local s=$1 p v f pool="$kcache/debs"
	shift
	mkdir -p "$pool"
	# Packages not used for a month (older releases) go.
	find "$pool" -name '*.deb' -mtime +30 -delete 2>/dev/null || true
	for p in "$@"; do
		v=$(apt_version "$s" "$p")
		[ -n "$v" ] || die "$s has no package $p"
		f=$(ls "$pool/${p}_${v//:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
		if [ -z "$f" ]; then
			log "downloading $p $v ($s)"
			(cd "$pool" && apt_run apt-get "$s" download -qq "$p=$v" >&2) ||
				die "downloading $p from $s failed"
			f=$(ls "$pool/${p}_${v//:/%3a}_"*.deb | head -n 1)
		fi
		touch "$f"
		echo "$f"
	done
}

# The header packages of a release: linux-headers-REL and what it depends on
# that carries the same kernel (common headers, kbuild tools, linux-base-REL).
header_packages() { # suite release
	local s=$1 rel=$2
	echo "linux-headers-$rel"
	apt_depends "$s" "linux-headers-$rel" | grep -E "^linux-(headers|kbuild|base)-" | sort -u
}

# The packages holding the kernel image and its modules: linux-image-REL, or
# its -unsigned twin, or (sid's newer layout) the binary/modules/base parts
# that linux-image-REL only depends on.
image_packages() { # suite release
	local s=$1 rel=$2 deps
	if [ -n "$(apt_version "$s" "linux-image-$rel-unsigned")" ]; then
		echo "linux-image-$rel-unsigned"
		return
	fi
	deps=$(apt_depends "$s" "linux-image-$rel" | grep -E "^linux-(binary|modules|base)-" | grep -F -- "$rel" | sort -u)
	if [ -n "$deps" ]; then
		# linux-binary-REL and linux-binary-unsigned-REL: either will do.
		echo "$deps" | grep -v '^linux-binary-'
		if [ -n "$(apt_version "$s" "linux-binary-unsigned-$rel")" ]; then
			echo "linux-binary-unsigned-$rel"
		else
			echo "$deps" | grep '^linux-binary-'
		fi
	else
		echo "linux-image-$rel"
	fi
}

# ---------------------------------------------------------------------------
# Extraction (host toolchain) and chroots (suite toolchain)
# ---------------------------------------------------------------------------

# Marks root as the suite's current tree and removes the suite's older
# trees (an earlier release) beside it. (Keyed by suite, not series name:
# checkouts of other commits share the cache and may name series otherwise.)
claim_tree() { # root
	local root=$1 other
	echo "$suite" >"$root/.suite"
	for other in "$(dirname "$root")"/*; do
		[ "$other" = "$root" ] && continue
		[ "$(cat "$other/.suite" 2>/dev/null)" = "$suite" ] || continue
		log "removing $other (an older $suite kernel)"
		rm -rf "$other"
	done
}

# Extracts debs into root once; the stamp lists what is there, so a new
# package version re-extracts from scratch.
extract_into() { # root stampname deb...
	local root=$1 stamp=$2 want f
	shift 2
	want=$(for f in "$@"; do basename "$f"; done | sort)
	if [ -f "$root/.$stamp" ] && [ "$(cat "$root/.$stamp")" = "$want" ]; then
		return 0
	fi
	log "extracting $(echo "$want" | tr '\n' ' ')"
	for f in "$@"; do dpkg-deb -x "$f" "$root"; done
	echo "$want" >"$root/.$stamp"
}

# The arch Makefile of Debian's headers includes the common headers by their
# absolute /usr/src path, and 7.2's sets KBUILD_OUTPUT to its own: point them
# into the extracted tree.
relocate_headers() { # root release
	local root=$1 rel=$2 mk
	mk="$root/usr/src/linux-headers-$rel/Makefile"
	[ -f "$mk.debian" ] || cp "$mk" "$mk.debian"
	sed "s#/usr/src/#$root/usr/src/#g" "$mk.debian" >"$mk"
}

chroot_dir() { echo "$kcache/chroot/$1"; }

chroot_mounted() { mountpoint -q "$1/proc"; }

# Runs a command inside the suite's chroot with /proc mounted (objtool reads
# it), unmounted again afterwards even when the command fails.
chroot_run() { # suite cmd...
	local c rc=0
	c=$(chroot_dir "$1")
	shift
	[ "$(id -u)" -eq 0 ] || die "building in a chroot needs root"
	mount -t proc proc "$c/proc"
	chroot "$c" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@" || rc=$?
	umount "$c/proc" || umount -l "$c/proc"
	return "$rc"
}

# Debian's debootstrap, from the host's archive when missing (a bookworm
# package, installed on the host like any other tool we need).
ensure_debootstrap() {
	command -v debootstrap >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || die "debootstrap is missing: sudo apt-get install -y debootstrap"
	log "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2 ||
		{ apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2; }
}

# The suite's chroot with the compiler the kernel was built with, pahole,
# make and dkms; made once, then the missing packages added (a newer gcc
# when the suite's kernel moves to one).
ensure_chroot() { # suite gcc-package
	local s=$1 gccpkg=$2 c need=() p
	c=$(chroot_dir "$s")
	local pkgs=("$gccpkg" make libc6-dev libelf-dev libssl-dev pahole kmod dkms xz-utils)
	if [ ! -f "$c/.complete" ]; then
		ensure_debootstrap
		rm -rf "$c"
		mkdir -p "$(dirname "$c")"
		log "creating the $s chroot (debootstrap, a minute or two)"
		local started=$SECONDS
		debootstrap --variant=minbase --include="$(
			IFS=,
			echo "${pkgs[*]}"
		)" "$s" "$c" "$mirror" >"$kcache/chroot/$s.debootstrap.log" 2>&1 ||
			{
				tail -n 20 "$kcache/chroot/$s.debootstrap.log" >&2
				die "debootstrap of $s failed (log: $kcache/chroot/$s.debootstrap.log)"
			}
		chroot_mounted "$c" && umount "$c/proc"
		log "the $s chroot took $((SECONDS - started)) s"
		touch "$c/.complete"
	fi
	for p in "${pkgs[@]}"; do
		[ -n "$(chroot "$c" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed')" ] ||
			need+=("$p")
	done
	if [ ${#need[@]} -gt 0 ]; then
		log "adding ${need[*]} to the $s chroot"
		cp /etc/resolv.conf "$c/etc/resolv.conf" 2>/dev/null || true
		chroot_run "$s" sh -c "apt-get update -qq -o Acquire::Check-Valid-Until=false && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${need[*]}" >&2 ||
			die "installing ${need[*]} in the $s chroot failed"
	fi
}

# ---------------------------------------------------------------------------
# Resolving a series: sets rel, kdir (as the toolchain sees it), host_kdir,
# and, with images, kimage and modroot.
# ---------------------------------------------------------------------------

resolve() { # series want-image(0|1)
	local want_image=$2 debs root lockfd
	series_set "$1"
	kimage="" modroot="" cc="" make_env=""
	if [ "$toolchain" = installed ]; then
		rel=$(ls /lib/modules 2>/dev/null | grep -E -- '^6\.1\.[0-9]+-[0-9]+-cloud-amd64$' | sort -V | tail -n 1 || true)
		[ -n "$rel" ] || die "no 6.1 cloud kernel installed (tests/vm/vm.sh setup installs linux-image-cloud-amd64 and its headers)"
		kdir=/lib/modules/$rel/build host_kdir=$kdir
		kimage=/boot/vmlinuz-$rel modroot=/
		return 0
	fi
	mkdir -p "$kcache/locks"
	exec {lockfd}>"$kcache/locks/$suite"
	flock "$lockfd"
	apt_refresh "$suite"
	rel=$(suite_release "$suite")
	[ -n "$rel" ] || die "$suite has no linux-headers-cloud-amd64"
	# A series asked for by number (7.2) whose suite moved on (7.3) still
	# builds, with a note.
	if [[ "$asked" =~ ^[0-9]+\.[0-9]+$ ]] && [[ "$rel" != "$asked".* ]]; then
		log "note: $suite's cloud kernel is now $rel (asked for $asked)"
	fi
	mapfile -t debs < <(apt_fetch "$suite" $(header_packages "$suite" "$rel"))
	if [ "$toolchain" = host ]; then
		root="$kcache/extract/$rel"
		mkdir -p "$root"
		extract_into "$root" headers "${debs[@]}"
		claim_tree "$root"
		relocate_headers "$root" "$rel"
		kdir=$root/usr/src/linux-headers-$rel host_kdir=$kdir
		cc=$(sed -n 's/^ *CC *:\{0,1\}= *\(.*\)$/\1/p' "$kdir/.kernelvariables" | head -n 1 |
			sed 's/\$([A-Z_]*)//' | grep -o '[^ ]*gcc[^ ]*$' || echo gcc)
		# The kernel's compiler, or the host's gcc-12 where it is missing
		# (5.10's gcc-10 is not in bookworm; gcc-12 builds it).
		command -v "$cc" >/dev/null 2>&1 || cc=gcc-12
		ensure_host_pahole "$kdir"
	else
		local c gccpkg
		c=$(chroot_dir "$suite")
		gccpkg=$(dpkg-deb -f "${debs[0]}" Depends | tr ',' '\n' | grep -o 'gcc-[0-9]*' | head -n 1 || true)
		ensure_chroot "$suite" "${gccpkg:-gcc}"
		extract_into "$c" "headers-$rel" "${debs[@]}"
		prune_chroot_headers "$c" "$rel"
		kdir=/usr/src/linux-headers-$rel host_kdir=$c$kdir
	fi
	if [ "$want_image" = 1 ]; then
		mapfile -t debs < <(apt_fetch "$suite" $(image_packages "$suite" "$rel"))
		root="$kcache/image/$rel"
		mkdir -p "$root"
		extract_into "$root" image "${debs[@]}"
		claim_tree "$root"
		if [ -d "$root/usr/lib/modules/$rel" ] && [ ! -e "$root/lib" ]; then
			ln -s usr/lib "$root/lib" # merged /usr: modprobe -d looks in lib/
		fi
		if [ ! -f "$root/lib/modules/$rel/modules.dep" ] ||
			[ "$root/.image" -nt "$root/lib/modules/$rel/modules.dep" ]; then
			depmod -b "$root" "$rel"
		fi
		kimage=$(ls "$root/boot/vmlinuz-$rel" "$root/usr/lib/modules/$rel/vmlinuz"* 2>/dev/null | head -n 1 || true)
		[ -n "$kimage" ] || die "no kernel image in $(echo "${debs[@]##*/}")"
		modroot=$root
	fi
	exec {lockfd}>&-
}

# Old extracted headers in a chroot go when the suite's kernel moves on.
prune_chroot_headers() { # chroot release
	local c=$1 rel=$2 f
	for f in "$c"/.headers-*; do
		[ -e "$f" ] || continue
		[ "$f" = "$c/.headers-$rel" ] && continue
		log "removing the old headers of ${f#"$c"/.headers-}"
		rm -rf "$c/usr/src/linux-headers-${f#"$c"/.headers-}" "$f"
	done
}

# Kernels with a BTF vmlinux in their headers run pahole on the module; the
# host's is bookworm's (1.24: what the backports kernel was built with).
ensure_host_pahole() { # kdir
	[ -f "$1/vmlinux" ] || return 0
	command -v pahole >/dev/null 2>&1 && return 0
	[ "$(id -u)" -eq 0 ] || die "pahole is missing: sudo apt-get install -y dwarves"
	log "installing dwarves (pahole)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dwarves >&2
}

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------

# Builds kmod/module for the series into kmod/module/build-REL/ (on the host
# or in the chroot, from a copy of kmod/ there); extra MAKEVAR=VALUE args go
# to make.
do_build() { # series make-args...
	local s=$1 out started
	shift
	resolve "$s" 0
	out=$repo/kmod/module/build-$rel
	started=$SECONDS
	# Called from make -C kmod module KVER=...: that make's variables must
	# not reach ours (KVER would call us again).
	unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES KVER
	case "$toolchain" in
	installed) make -s -C "$repo/kmod" module KDIR="$kdir" "$@" >&2 ;;
	host) make -s -C "$repo/kmod" module KDIR="$kdir" CC="$cc" HOSTCC=gcc "$@" >&2 ;;
	chroot)
		local c work
		c=$(chroot_dir "$suite")
		# One build directory per checkout, so worktrees do not collide.
		work=/build/$(echo "$repo" | sha256sum | cut -c1-12)
		mkdir -p "$c$work/kmod/module"
		rm -rf "$c$work/kmod/uapi" "$c$work"/kmod/module/*.[ch] "$c$work/kmod/module/Kbuild"
		# Times kept (-p): the build directory stays, kbuild redoes what changed.
		cp -p "$repo/kmod/Makefile" "$c$work/kmod/"
		cp -rp "$repo/kmod/uapi" "$c$work/kmod/"
		cp -p "$repo"/kmod/module/*.[ch] "$repo/kmod/module/Kbuild" "$c$work/kmod/module/"
		chroot_run "$suite" make -s -C "$work/kmod" module KDIR="$kdir" "$@" >&2
		mkdir -p "$out"
		cp "$c$work/kmod/module/build-$rel/blksnap.ko" "$out/"
		;;
	esac
	log "built $out/blksnap.ko for $rel ($toolchain toolchain, $((SECONDS - started)) s)"
}

# ---------------------------------------------------------------------------

[ $# -gt 0 ] || { usage >&2; exit 2; }
cmd=$1
shift
case "$cmd" in
-h | --help) usage ;;
list)
	for s in $series_names; do
		series_set "$s"
		printf '%-12s %-19s %s\n' "$series" "$suite" "$toolchain"
	done
	;;
env)
	[ $# -ge 1 ] || die "env needs a series"
	img=0
	[ "${2:-}" = --image ] && img=1
	resolve "$1" "$img"
	printf 'KSERIES=%q\nKSUITE=%q\nKREL=%q\nKDIR=%q\nKTOOLCHAIN=%q\nKCC=%q\nKIMAGE=%q\nKMODROOT=%q\n' \
		"$series" "$suite" "$rel" "$host_kdir" "$toolchain" "$cc" "$kimage" "$modroot"
	;;
build)
	[ $# -ge 1 ] || die "build needs a series"
	do_build "$@"
	;;
exec)
	[ $# -ge 1 ] || die "exec needs a series"
	resolve "$1" 0
	shift
	[ "${1:-}" = -- ] && shift
	[ $# -gt 0 ] || die "exec needs a command"
	if [ "$toolchain" = chroot ]; then chroot_run "$suite" "$@"; else "$@"; fi
	;;
*) die "unknown command '$cmd' (see --help)" ;;
esac
