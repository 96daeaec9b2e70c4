#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages mtlsgw needs to build, run and test.
# Idempotent: does nothing when every package is already installed.
set -eu

PACKAGES="
build-essential pkg-config clang llvm clang-format
libssl-dev openssl libmicrohttpd-dev libinih-dev
libbpf-dev bpftool libelf-dev zlib1g-dev
libcmocka-dev python3 python3-pytest curl
qemu-system-x86 cpio busybox-static kmod iproute2 systemd
nginx-light wrk haproxy
libclang-rt-14-dev
redis-server redis-tools libhiredis-dev
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# nginx-light and haproxy are test peers: keep their services from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
