#!/bin/bash
# SPDX-License-Identifier: MIT
# kTLS tests in a VM: boots Debian's own kernel (which has tls.ko; the
# development/CI kernel has no kTLS) under qemu and runs tests/vm/run.sh in
# it. Ends with the line "N passed, N failed" (the guest's test counts) and
# exits 0 only when every guest test passed and there was at least one.
# A guest that does not boot, does not finish in time or does not report is
# a failure, never a skip.
#
#   scripts/vm-test.sh              run every tests/vm/test_*.sh in the guest
#   scripts/vm-test.sh CMD [ARG..]  run CMD (from the repo folder) instead;
#                                   it must print the VMTEST lines itself
#                                   (scripts/bench-ktls.sh does this)
#
# How the guest gets the software under test: the guest mounts this
# machine's root read-only over 9p (virtio) and puts a tmpfs overlay on it,
# then chroots into that. Packing binaries into the initramfs instead would
# mean collecting the shared-library closure of the daemon, openssl, curl,
# python3, nginx (and their config and data files) and keeping that list in
# step with the tests; over 9p the guest runs exactly the binaries and
# libraries the host tests use, build/ included, and the initramfs stays
# busybox + ~40 modules (a few MB, built once per kernel version). Reads
# over 9p are slower than from RAM, which is why test data is created inside
# the guest on tmpfs, not read from the host.
#
# The kernel: linux-image-amd64's dependency (the versioned package) is
# fetched with `apt-get download` and unpacked with `dpkg-deb -x` (never
# installed) into a cache outside the git tree; the kernel image and the
# module tree for the initramfs are kept there, so later runs only boot.
#
# Environment:
#   MTLSGW_VM_CACHE    cache folder (default /var/cache/mtlsgw-vm)
#   MTLSGW_VM_REFRESH  1: ask apt for the current kernel package even when
#                      one is cached
#   MTLSGW_VM_TIMEOUT  seconds for the whole guest run (default 1200)
#   MTLSGW_VM_MEM      guest memory in MiB (default 1024)
#   MTLSGW_VM_SMP      guest CPUs (default 2)
#   MTLSGW_VM_ACCEL    qemu accelerator (default tcg; CI has no KVM)
#   MTLSGW_VM_LOG      console log (default build/vm/console.log)
#   MTLSGW_VM_TESTS    space-separated test names to run (default: all)
set -u
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
BUILD=${BUILD:-build}
CACHE=${MTLSGW_VM_CACHE:-/var/cache/mtlsgw-vm}
TIMEOUT=${MTLSGW_VM_TIMEOUT:-1200}
MEM=${MTLSGW_VM_MEM:-1024}
SMP=${MTLSGW_VM_SMP:-2}
ACCEL=${MTLSGW_VM_ACCEL:-tcg}
LOG=${MTLSGW_VM_LOG:-$BUILD/vm/console.log}

# Modules the initramfs carries (each with its dependencies, resolved from
# the kernel's own modules.dep): 9p root and overlay, an entropy source, the
# tls ULP and every AEAD implementation it can use.
VM_MODULES="virtio_pci 9pnet_virtio 9p overlay virtio_rng tls
	cryptd aesni_intel ghash_clmulni_intel ghash_generic gcm ctr ccm
	chacha20poly1305 chacha_generic chacha_x86_64 poly1305_generic
	poly1305_x86_64"

start=$(date +%s)
msg() { echo "vm-test: $*" >&2; }
# Setup failures count as one failed test.
fail_setup() {
	msg "$*"
	echo "0 passed, 1 failed"
	exit 1
}

# --- kernel: find, fetch, unpack, cache --------------------------------------
latest_cached() {
	local d best=""
	for d in "$CACHE"/*/.complete; do
		[ -e "$d" ] || continue
		best=$(dirname "$d")
	done
	[ -n "$best" ] && basename "$best"
}

kernel_package() {
	local pkg
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	if [ -z "$pkg" ]; then
		apt-get update -qq >&2 || true
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	fi
	echo "$pkg"
}

fetch_kernel() { # KVER PKG -> $CACHE/KVER/{vmlinuz,modules.cpio}
	local kver=$1 pkg=$2 tmp m f rel
	tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX") || return 1
	msg "fetching $pkg into $CACHE"
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) || {
		rm -rf "$tmp"
		return 1
	}
	if ! dpkg-deb -x "$tmp"/*.deb "$tmp/root" ||
		! depmod -b "$tmp/root" "$kver"; then
		rm -rf "$tmp"
		return 1
	fi
	mkdir -p "$tmp/stage/lib/modules/$kver"
	local closure=""
	for m in $VM_MODULES; do
		f=$(modprobe -d "$tmp/root" -S "$kver" --show-depends "$m") ||
			{ msg "module $m not in $pkg"; rm -rf "$tmp"; return 1; }
		closure="$closure $(echo "$f" | awk '$1 == "insmod" { print $2 }')"
	done
	for f in $(echo "$closure" | tr ' ' '\n' | sort -u); do
		rel=${f#"$tmp/root/"}
		mkdir -p "$tmp/stage/$(dirname "$rel")"
		cp "$f" "$tmp/stage/$rel"
	done
	cp "$tmp/root/lib/modules/$kver"/modules.builtin* "$tmp/root/lib/modules/$kver/modules.order" "$tmp/stage/lib/modules/$kver/"
	depmod -b "$tmp/stage" "$kver" || { rm -rf "$tmp"; return 1; }
	(cd "$tmp/stage" && find . | cpio -o -H newc --quiet) >"$tmp/modules.cpio" &&
		mkdir -p "$CACHE/$kver" &&
		cp "$tmp/root/boot/vmlinuz-$kver" "$CACHE/$kver/vmlinuz" &&
		mv "$tmp/modules.cpio" "$CACHE/$kver/modules.cpio" &&
		echo "$pkg" >"$CACHE/$kver/.complete"
	local rc=$?
	rm -rf "$tmp"
	return $rc
}

if [ -z "${MTLSGW_VM_CACHE:-}" ] && ! mkdir -p "$CACHE" 2>/dev/null; then
	CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/mtlsgw-vm # not root
fi
mkdir -p "$CACHE" || fail_setup "cannot create cache $CACHE"
exec 9>"$CACHE/.lock"
flock 9 || fail_setup "cannot lock $CACHE/.lock"
kver=""
[ "${MTLSGW_VM_REFRESH:-0}" = 1 ] || kver=$(latest_cached)
if [ -z "$kver" ]; then
	pkg=$(kernel_package)
	[ -n "$pkg" ] || fail_setup "apt knows no linux-image-amd64 dependency (apt-get update?)"
	kver=${pkg#linux-image-}
	if [ ! -e "$CACHE/$kver/.complete" ]; then
		fetch_kernel "$kver" "$pkg" || fail_setup "could not fetch/unpack $pkg"
	fi
fi
flock -u 9
KDIR=$CACHE/$kver
msg "kernel $kver ($(cat "$KDIR/.complete")), cache $KDIR"

# --- guest-side helpers built from this tree ---------------------------------
# Built here (not in the guest: gcc under emulation is slow). A build
# failure is reported, and the guest tests that need the binary then fail.
mkdir -p "$BUILD/vm" "$(dirname "$LOG")"
VMCFLAGS="-O2 -g -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes
	-Wmissing-prototypes -Wpointer-arith -Wformat=2 -iquote . -iquote include"
if [ -f tests/vm/ktls_server.c ] && [ -f daemon/ktls.c ]; then
	# shellcheck disable=SC2086
	gcc $VMCFLAGS -o "$BUILD/vm/ktls_server" tests/vm/ktls_server.c \
		daemon/ktls.c -lssl -lcrypto ||
		msg "building $BUILD/vm/ktls_server failed"
fi

# Certificates for the gateway tests: gen-certs.sh takes ~40 s under
# emulation and 1 s here; it is idempotent, so this is cached in build/.
if [ -x scripts/gen-certs.sh ]; then
	if scripts/gen-certs.sh "$BUILD/vm/certs" >/dev/null; then
		VMTEST_CERTS=$(cd "$BUILD/vm/certs" && pwd)
		export VMTEST_CERTS
	else
		msg "scripts/gen-certs.sh failed; the guest makes its own"
	fi
fi

# --- per-run initramfs: cached modules + busybox, init, run config -----------
RUN=$(mktemp -d "${TMPDIR:-/tmp}/mtlsgw-vm.XXXXXX") || fail_setup "mktemp"
trap 'rm -rf "$RUN"' EXIT
trap 'exit 130' INT TERM

if [ $# -gt 0 ]; then
	cmd=$(printf '%q ' "$@")
else
	cmd="tests/vm/run.sh"
fi
mkdir -p "$RUN/ramfs/bin" "$RUN/ramfs/sbin"
cp /bin/busybox "$RUN/ramfs/bin/busybox" || fail_setup "no /bin/busybox (busybox-static)"
cp tests/vm/init "$RUN/ramfs/init" && chmod 755 "$RUN/ramfs/init"
{
	printf 'export VMTEST_DIR=%q\n' "$REPO"
	printf 'export VMTEST_CMD=%q\n' "$cmd"
	printf 'export VMTEST_BUILD=%q\n' "$BUILD"
	printf 'export CI=%q\n' "${CI:-}"
	# MTLSGW_* and VMTEST_* settings reach the guest tests unchanged.
	for v in $(compgen -e | grep -E '^(MTLSGW|VMTEST)_'); do
		printf 'export %s=%q\n' "$v" "${!v}"
	done
} >"$RUN/ramfs/vmtest.conf"
(cd "$RUN/ramfs" && find . | cpio -o -H newc --quiet) >"$RUN/run.cpio" ||
	fail_setup "cpio"
# The kernel unpacks concatenated newc archives in order.
cat "$KDIR/modules.cpio" "$RUN/run.cpio" >"$RUN/initrd" || fail_setup "initrd"

# --- boot ---------------------------------------------------------------------
msg "booting (accel $ACCEL, ${MEM} MiB, $SMP CPUs, timeout ${TIMEOUT}s), console in $LOG"
boot=$(date +%s)
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 \
	-machine q35 -accel "$ACCEL" -cpu max -m "$MEM" -smp "$SMP" \
	-nographic -no-reboot -nic none \
	-kernel "$KDIR/vmlinuz" -initrd "$RUN/initrd" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic" \
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$REPO,mount_tag=repo,security_model=none,readonly=on,multidevs=remap" \
	-device virtio-rng-pci \
	</dev/null 2>&1 | sed -u 's/\r$//' | tee "$LOG"
qrc=${PIPESTATUS[0]}
end=$(date +%s)

# --- verdict ------------------------------------------------------------------
passed=$(grep -c '^VMTEST: PASS ' "$LOG")
failed=$(grep -c '^VMTEST: FAIL ' "$LOG")
result=$(grep '^VMTEST-RESULT: ' "$LOG" | tail -1)
if [ -n "$result" ]; then
	# A console line garbled by a kernel message must not hide a failure:
	# take the worse of the guest's own count and the lines seen here.
	read -r _ gp _ gf _ <<<"$result"
	if [ "$gp" != "$passed" ] || [ "$gf" != "$failed" ]; then
		msg "guest counted $gp passed, $gf failed; console shows $passed, $failed"
		[ "$gf" -gt "$failed" ] && failed=$gf
		[ "$gp" -lt "$passed" ] && passed=$gp
	fi
else
	if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
		msg "FAIL: guest did not finish within ${TIMEOUT}s"
	else
		msg "FAIL: guest ended without a result (qemu exit $qrc): boot or setup failure, see $LOG"
	fi
	failed=$((failed + 1))
fi
msg "guest ran $((end - boot))s, harness total $((end - start))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
