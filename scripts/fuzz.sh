#!/bin/bash
# SPDX-License-Identifier: MIT
# Fuzz the parsers that take hostile input, with libFuzzer + ASan + UBSan
# (clang): PROXY protocol headers, request paths and Range headers,
# configuration files, request heads (HTTP framing), and the reverse
# proxy's upstream response head parser and chunked body decoder. make test runs every target briefly
# (tests/run-all.sh, suite fuzz: MTLSGW_FUZZ_SECONDS each); a longer run
# is yours to start. Any crash, sanitizer report or fuzzer error exits
# non-zero; the crashing input is left in build/fuzz/ and the fuzzer's
# whole output in build/fuzz/TARGET.log.
#
#   scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
#   targets: proxyproto path config http_framing proxy_head proxy_chunked
#   (default: all)
#
# Ends with "fuzz: N targets, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=${*:-proxyproto path config http_framing proxy_head proxy_chunked}
PKGS="libmicrohttpd inih openssl libbpf hiredis"	# as the Makefile's PKGS
OUT=build/fuzz
make -s build/mtlsgw >/dev/null # generates build/*.skel.h for limits_bpf.c
mkdir -p "$OUT/obj"
CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -iquote . -iquote include -iquote build $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread"

# The daemon's sources once, instrumented for coverage (fuzzer-no-link),
# shared by every target; rebuilt when a source or header is newer.
objs=""
for src in daemon/*.c; do
	[ "$src" = daemon/main.c ] && continue
	o="$OUT/obj/$(basename "${src%.c}").o"
	if [ ! -e "$o" ] || [ -n "$(find "$src" daemon include -newer "$o" -name '*.[ch]' -print -quit)" ]; then
		# shellcheck disable=SC2086
		clang $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$o"
	fi
	objs="$objs $o"
done

seed() { # target
	local c="$OUT/corpus-$1"
	mkdir -p "$c"
	case $1 in
	proxyproto) printf 'PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n' >"$c/v1" ;;
	path) printf '/a/%%2e%%2e/b' >"$c/p"; printf 'bytes=0-9' >"$c/r" ;;
	config) cp conf/mtlsgw.conf "$c/" ;;
	http_framing) printf 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX: a\r\n b\r\n\r\n' >"$c/h" ;;
	proxy_head)
		printf 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Foo\r\nX-Foo: bar\r\n\r\nhello' >"$c/h1"
		printf 'HTTP/1.0 204 No Content\nTransfer-Encoding: gzip, chunked\n\n' >"$c/h2" ;;
	proxy_chunked)
		# 4 bytes of read/output sizes, then the upstream's body bytes
		printf '\x07\x40\x03\xff5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n' >"$c/c1"
		printf '\x01\x01\x01\x01A\r\n0123456789\r\n0\r\n\r\n' >"$c/c2" ;;
	esac
}

n=0 failed=0
for t in $TARGETS; do
	n=$((n + 1))
	src="tests/fuzz/fuzz_$t.c"
	if [ ! -f "$src" ]; then
		echo "fuzz: $t: no $src" >&2
		failed=$((failed + 1))
		continue
	fi
	# shellcheck disable=SC2086
	clang $CFLAGS -fsanitize=fuzzer -o "$OUT/$t" "$src" $objs $LIBS
	seed "$t"
	echo "fuzz: $t for ${SECS}s"
	if (cd "$OUT" && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"./$t" -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=4096 \
		-print_final_stats=1 "corpus-$t" >"$t.log" 2>&1); then
		grep -E '^(Done|stat::number_of_executed_units)' "$OUT/$t.log" || true
	else
		failed=$((failed + 1))
		echo "fuzz: $t FAILED (full output: $OUT/$t.log):" >&2
		grep -E -A40 '==[0-9]+==ERROR|runtime error|deadly signal|SUMMARY' \
			"$OUT/$t.log" | head -60 >&2 || tail -40 "$OUT/$t.log" >&2
	fi
done
echo "fuzz: $n targets, $failed failed"
[ "$failed" -eq 0 ]
