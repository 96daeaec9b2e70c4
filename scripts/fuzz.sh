#!/bin/bash
# SPDX-License-Identifier: MIT
# Fuzz the parsers that take hostile input, with libFuzzer + ASan + UBSan
# (clang): PROXY protocol headers, request paths and Range headers,
# configuration files, request heads (HTTP framing). Not part of make test
# (a fuzz run is open-ended); a crash leaves its input in build/fuzz/ and
# exits non-zero.
#
#   scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
#   targets: proxyproto path config http_framing (default: all)
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=${*:-proxyproto path config http_framing}
PKGS="libmicrohttpd inih openssl libbpf"
make -s build/mtlsgw >/dev/null # generates build/*.skel.h for limits_bpf.c
mkdir -p build/fuzz
CFLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -iquote . -iquote include -iquote build $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread"
SRCS=$(ls daemon/*.c | grep -v '/main\.c$')
for t in $TARGETS; do
	# shellcheck disable=SC2086
	clang $CFLAGS -o "build/fuzz/$t" "tests/fuzz/fuzz_$t.c" $SRCS $LIBS
	mkdir -p "build/fuzz/corpus-$t"
	case $t in
	proxyproto) printf 'PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n' >"build/fuzz/corpus-$t/v1" ;;
	path) printf '/a/%%2e%%2e/b' >"build/fuzz/corpus-$t/p"; printf 'bytes=0-9' >"build/fuzz/corpus-$t/r" ;;
	config) cp conf/mtlsgw.conf "build/fuzz/corpus-$t/" ;;
	http_framing) printf 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX: a\r\n b\r\n\r\n' >"build/fuzz/corpus-$t/h" ;;
	esac
	echo "fuzz: $t for ${SECS}s"
	(cd build/fuzz && "./$t" -max_total_time="$SECS" -rss_limit_mb=2048 \
		-max_len=4096 "corpus-$t" 2>&1 | grep -E '^(Done|==[0-9]+==ERROR|SUMMARY)')
done
