#!/usr/bin/env bash
# Builds the module the way distributions ship out-of-tree modules, for each
# kernel series: `dkms add` + `dkms build` of kmod/ (its dkms.conf) against
# that series' headers, in the series' toolchain (the host, or the suite's
# chroot), with a MOK key configured as on a Secure Boot machine. Then checks
# what DKMS built: the module's vermagic names the kernel, and it carries the
# signature (modinfo signer and hash). TAP on stdout.
#
#   bash tests/kbuild/run.sh [SERIES...]     default: every series of
#                                            kmod/kernels.sh list
#
# This is also the compile-only check for the newest kernel (7.2, Debian
# sid): a change that breaks the build there fails here, with no VM needed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
kernels=$repo/kmod/kernels.sh

if [ $# -gt 0 ]; then
	series=("$@")
else
	mapfile -t series < <(bash "$kernels" list | awk '{print $1}')
fi

pkg=$(sed -n 's/^PACKAGE_NAME="\(.*\)"/\1/p' "$repo/kmod/dkms.conf")
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$repo/kmod/dkms.conf")
modver=$(sed -n 's/^MODULE_VERSION("\(.*\)");/\1/p' "$repo/kmod/module/main.c")
failed=0
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; failed=1; }
show() { sed 's/^/# /' | tail -n "${1:-20}"; }

if [ "$ver" = "$modver" ]; then
	ok "dkms.conf's PACKAGE_VERSION is the module's MODULE_VERSION ($ver)"
else
	not_ok "dkms.conf's PACKAGE_VERSION ($ver) is the module's MODULE_VERSION ($modver)"
fi

command -v dkms >/dev/null 2>&1 || {
	[ "$(id -u)" -eq 0 ] || { not_ok "dkms is installed (sudo apt-get install -y dkms)"; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dkms >/dev/null 2>&1 ||
		{ not_ok "dkms can be installed"; exit 1; }
}

work=$(mktemp -d /tmp/blksnap-kbuild.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The signing key, as docs/operations.md has an operator make it for MOK.
cn="blksnap kbuild test MOK"
openssl req -new -x509 -nodes -days 2 -subj "/CN=$cn/" -newkey rsa:2048 \
	-keyout "$work/MOK.priv" -outform DER -out "$work/MOK.der" >/dev/null 2>&1 ||
	{ not_ok "a MOK signing key can be made (openssl)"; exit 1; }

# A clean DKMS source tree: kmod/ as git knows it (no build output).
src_tree() { # destination
	mkdir -p "$1"
	(cd "$repo/kmod" && git ls-files -co --exclude-standard -z . 2>/dev/null ||
		find . -type f \( -path './module/build-*' -o -path './ctl/build/*' \) -prune -o -type f -print0) |
		(cd "$repo/kmod" && xargs -0 cp --parents -t "$1")
}

# dkms add + build with private trees (nothing of the machine's DKMS state
# is touched). Runs in the series' toolchain: "$@" prefixes the commands.
dkms_build() { # root-of-toolchain rel kdir extra-make-args -- runner...
	local root=$1 rel=$2 kdir=$3 margs=$4 d=/tmp/blksnap-dkms
	shift 5
	rm -rf "$root$d"
	mkdir -p "$root$d/tree" "$root$d/install"
	src_tree "$root$d/src/$pkg-$ver"
	cp "$work/MOK.priv" "$work/MOK.der" "$root$d/"
	"$@" env BLKSNAP_KBUILD_ARGS="$margs" \
		mok_signing_key="$d/MOK.priv" mok_certificate="$d/MOK.der" sign_file="$sign_file" \
		sh -c "dkms add -m $pkg -v $ver --sourcetree $d/src --dkmstree $d/tree --installtree $d/install >/dev/null &&
			dkms build -m $pkg -v $ver -k $rel --kernelsourcedir $kdir --sourcetree $d/src --dkmstree $d/tree --installtree $d/install" \
		>"$work/dkms.log" 2>&1
}

for s in "${series[@]}"; do
	started=$SECONDS
	unset KSERIES KSUITE KREL KDIR KTOOLCHAIN KCC KIMAGE KMODROOT
	if ! env=$(bash "$kernels" env "$s" 2>"$work/env.log"); then
		not_ok "kbuild($s): the headers and toolchain are ready (kmod/kernels.sh env $s)"
		show <"$work/env.log"
		continue
	fi
	eval "$env"
	margs="" sign_file="" runner=() root="" kdir=$KDIR
	case "$KTOOLCHAIN" in
	chroot)
		root=${KDIR%/usr/src/*}
		kdir=${KDIR#"$root"}
		sign_file=$kdir/scripts/sign-file
		runner=(bash "$kernels" exec "$s" --)
		;;
	*)
		sign_file=$kdir/scripts/sign-file
		# 5.10's sign-file links libcrypto 1.1, which Debian 12 lacks;
		# the host's own (same format) signs it.
		if ! "$sign_file" 2>&1 | grep -q -i usage; then
			sign_file=$(ls /usr/lib/linux-kbuild-*/scripts/sign-file 2>/dev/null | sort -V | tail -n 1)
		fi
		# The compiler kernels.sh chose (the kernel's, or gcc-12 for 5.10).
		[ -n "$KCC" ] && margs="CC=$KCC"
		;;
	esac
	if dkms_build "$root" "$KREL" "$kdir" "$margs" -- "${runner[@]}"; then
		ok "kbuild($s): dkms build for $KREL ($KTOOLCHAIN toolchain${margs:+, $margs}, $((SECONDS - started)) s)"
	else
		not_ok "kbuild($s): dkms build for $KREL ($KTOOLCHAIN toolchain${margs:+, $margs})"
		show 40 <"$work/dkms.log"
		find "$root/tmp/blksnap-dkms/tree" -name make.log -exec cat {} \; 2>/dev/null | show 40
		continue
	fi
	ko=$(ls "$root"/tmp/blksnap-dkms/tree/$pkg/$ver/"$KREL"/*/module/blksnap.ko* 2>/dev/null | head -n 1)
	if [ -z "$ko" ]; then
		not_ok "kbuild($s): DKMS kept the built module"
		continue
	fi
	info=$("${runner[@]}" modinfo "${ko#"$root"}" 2>&1)
	if echo "$info" | grep -q "^vermagic: *$KREL "; then
		ok "kbuild($s): the module's vermagic is $KREL"
	else
		not_ok "kbuild($s): the module's vermagic is $KREL"
		echo "$info" | grep vermagic | show
	fi
	if echo "$info" | grep -q "^signer: *$cn$" && echo "$info" | grep -q "^sig_hashalgo:"; then
		ok "kbuild($s): DKMS signed it with the MOK key ($(echo "$info" | sed -n 's/^sig_hashalgo: *//p'), signer '$cn')"
	else
		not_ok "kbuild($s): DKMS signed it with the MOK key (signer '$cn')"
		echo "$info" | grep -E '^(signer|sig_)' | show
		grep -i sign "$work/dkms.log" | show
	fi
	rm -rf "$root/tmp/blksnap-dkms"
done
exit "$failed"
