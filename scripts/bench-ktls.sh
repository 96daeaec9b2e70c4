#!/bin/bash
# SPDX-License-Identifier: MIT
# kTLS benchmark (a script, not a test): the same 10 MB download loop
# against
#   1. mtlsgw with ktls = on   (sendfile through kernel TLS)
#   2. mtlsgw with ktls = off  (userspace OpenSSL relay)
#   3. nginx with sendfile on and "ssl_conf_command Options KTLS"
# in turn, with the same certificates, one worker each, access logs off.
# For each: MB/s seen by the client and server CPU seconds per GB (utime +
# stime of the server process from /proc/PID/stat, all threads; kernel TLS
# encryption runs in the sender's context, so it is included), and both
# as ratios to mtlsgw ktls = off. Every server's download is checked
# byte-exact, and /proc/net/tls_stat must show kernel TX for 1 and 3 and
# none for 2, so a row cannot silently measure the wrong path.
# Then, against the same server, a 1 KiB keep-alive row: wrk -t1 -c10 for
# BENCH_RPS_SECS (default 10) seconds (wrk presents no client certificate,
# as in scripts/bench.sh's userspace row; the servers ask for one but do
# not require it), requests/s and server CPU microseconds per request,
# with the same kTLS check on wrk's connections.
#
#   scripts/bench-ktls.sh [--tls12] [--n N]
#
# Where the running kernel has no kTLS (this project's machines), it runs
# itself inside the VM of scripts/vm-test.sh. Under emulation the absolute
# figures mean nothing (the client's own decryption shares the two virtual
# CPUs), but the three servers pay the same emulation, so the ratios are
# indicative. On a host with kTLS the same script gives real figures.
# BENCH_N (or --n): downloads per server (default 20, i.e. 200 MB).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
N=${BENCH_N:-20}
RPS_SECS=${BENCH_RPS_SECS:-10}
TLSV=1.3
while [ $# -gt 0 ]; do
	case $1 in
	--tls12) TLSV=1.2 ;;
	--n) N=$2; shift ;;
	--guest) GUEST=1 ;;
	*) echo "usage: $0 [--tls12] [--n N]" >&2; exit 2 ;;
	esac
	shift
done

if [ -z "${GUEST:-}" ] && ! grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null &&
	! modprobe -q tls 2>/dev/null; then
	echo "bench-ktls: no kTLS in this kernel; running in the VM (scripts/vm-test.sh)"
	[ -x "$BUILD/mtlsgw" ] || make -s "$BUILD/mtlsgw" || exit 1
	args=(--guest --n "$N")
	[ "$TLSV" = 1.2 ] && args+=(--tls12)
	BENCH_N=$N BENCH_RPS_SECS=$RPS_SECS MTLSGW_VM_TIMEOUT=${MTLSGW_VM_TIMEOUT:-1800} \
		exec scripts/vm-test.sh scripts/bench-ktls.sh "${args[@]}"
fi

# ---- the benchmark itself (in the VM or on a kTLS host) -------------------
. scripts/bench-guest-lib.sh bench-ktls
mkdir -p "$W/root"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$W/root/f10m"
head -c 1024 /dev/urandom >"$W/root/f1k"
WANT=$(sha256sum "$W/root/f10m" | cut -d' ' -f1)

cpu_ticks() { # utime + stime of PID (all threads)
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
tls_tx() { awk '$1 == "TlsTxSw" { print $2 }' /proc/net/tls_stat 2>/dev/null || echo 0; }

# ktls_as_expected TAG WANT_KTLS TX_DELTA MIN: with WANT_KTLS 1 the run
# opened at least MIN kernel TLS TX contexts, with 0 none at all.
ktls_as_expected() {
	local tag=$1 want=$2 delta=$3 min=$4
	if [ "$want" = 1 ] && [ "$delta" -ge "$min" ]; then
		ok "$tag-uses-ktls"
	elif [ "$want" = 0 ] && [ "$delta" -eq 0 ]; then
		ok "$tag-no-ktls"
	else
		bad "$tag-ktls-as-expected" "TlsTxSw +$delta, want kTLS=$want"
	fi
}

CLK=$(getconf CLK_TCK)

mtlsgw_conf() { # PORT KTLS
	cat <<EOF
[server]
listen = 127.0.0.1:$1
workers = 1
access_log = off
[tls]
cert = $CERTS/server.crt
key = $CERTS/server.key
client_ca = $CERTS/client-ca.pem
ktls = $2
[location /]
root = $W/root
[bpf]
mode = off
EOF
}

nginx_conf() { # PORT
	cat <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $W/nginx-error.log;
pid $W/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	keepalive_requests 100000;
	client_body_temp_path $W/nginx-tmp;
	proxy_temp_path $W/nginx-tmp;
	fastcgi_temp_path $W/nginx-tmp;
	uwsgi_temp_path $W/nginx-tmp;
	scgi_temp_path $W/nginx-tmp;
	server {
		listen 127.0.0.1:$1 ssl;
		ssl_certificate $CERTS/server.crt;
		ssl_certificate_key $CERTS/server.key;
		ssl_client_certificate $CERTS/client-ca.pem;
		ssl_verify_client optional;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_conf_command Options KTLS;
		root $W/root;
	}
}
EOF
}

if [ "$TLSV" = 1.3 ]; then
	CURL_TLS=(--tlsv1.3 --tls-max 1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256)
else
	CURL_TLS=(--tlsv1.2 --tls-max 1.2 --ciphers ECDHE-ECDSA-AES128-GCM-SHA256)
fi

# run NAME PORT EXPECT_KTLS CMD...: start the server, one warm-up download
# (checked byte-exact), then N downloads on one keep-alive connection.
results=()
run() {
	local name=$1 port=$2 want_ktls=$3 pid got tx0 tx1 c0 c1 t0 t1 urls=()
	shift 3
	"$@" >"$W/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	if ! wait_listen "$port"; then
		bad "bench-$name-starts" "$(tail -3 "$W/$name.log")"
		return
	fi
	local curl=(curl -sS --cacert "$CERTS/ca.crt" --cert "$CERTS/client1.crt"
		--key "$CERTS/client1.key" "${CURL_TLS[@]}")
	tx0=$(tls_tx)
	got=$("${curl[@]}" "https://localhost:$port/f10m" | sha256sum | cut -d' ' -f1)
	tx1=$(tls_tx)
	if [ "$got" = "$WANT" ]; then ok "bench-$name-byte-exact"; else
		bad "bench-$name-byte-exact" "sha256 $got"; fi
	ktls_as_expected "bench-$name" "$want_ktls" $((tx1 - tx0)) 1
	for _ in $(seq "$N"); do urls+=(-o /dev/null "https://localhost:$port/f10m"); done
	c0=$(cpu_ticks "$pid")
	t0=$(date +%s.%N)
	"${curl[@]}" "${urls[@]}" || bad "bench-$name-loop" "curl failed"
	t1=$(date +%s.%N)
	c1=$(cpu_ticks "$pid")
	rps "$name" "$port" "$want_ktls" "$pid"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	results+=("$(awk -v n="$name" -v mb=$((N * 10)) -v t0="$t0" -v t1="$t1" \
		-v c="$((c1 - c0))" -v hz="$CLK" 'BEGIN {
		s = t1 - t0; gb = mb * 1048576 / 1e9
		printf "%s %.2f %.3f %.1f\n", n, mb / s, c / hz / gb, s }')")
}

# rps NAME PORT EXPECT_KTLS PID: the 1 KiB keep-alive row (wrk, if installed).
rps_results=()
rps() {
	local name=$1 port=$2 want_ktls=$3 pid=$4 tx0 tx1 c0 c1
	command -v wrk >/dev/null || { bad "bench-$name-1k" "no wrk"; return; }
	tx0=$(tls_tx)
	c0=$(cpu_ticks "$pid")
	wrk -t1 -c10 -d"${RPS_SECS}s" "https://localhost:$port/f1k" >"$W/wrk-$name" 2>&1
	c1=$(cpu_ticks "$pid")
	tx1=$(tls_tx)
	ktls_as_expected "bench-$name-1k" "$want_ktls" $((tx1 - tx0)) 10
	if grep -q "Non-2xx\|Socket errors" "$W/wrk-$name"; then
		bad "bench-$name-1k-clean" "$(grep "Non-2xx\|Socket errors" "$W/wrk-$name")"
	fi
	rps_results+=("$(awk -v n="$name" -v c="$((c1 - c0))" -v hz="$CLK" '
		/requests in/ { r = $1; t = $4 + 0 }
		END { if (r > 0 && t > 0) printf "%s %.0f %.1f\n", n, r / t, c / hz * 1e6 / r
		      else printf "%s 0 0\n", n }' "$W/wrk-$name")")
}

mtlsgw_conf 9801 on >"$W/ktls-on.conf"
mtlsgw_conf 9802 off >"$W/ktls-off.conf"
run mtlsgw-ktls-on 9801 1 "$BUILD/mtlsgw" -c "$W/ktls-on.conf"
run mtlsgw-ktls-off 9802 0 "$BUILD/mtlsgw" -c "$W/ktls-off.conf"
mkdir -p "$W/nginx-tmp"
nginx_conf 9803 >"$W/nginx.conf"
run nginx-ktls 9803 1 nginx -c "$W/nginx.conf"

echo
echo "bench-ktls: $N x 10 MB, TLS $TLSV AES-128-GCM, one keep-alive connection, kernel $(uname -r)"
printf '%-16s %10s %12s %9s %12s %14s\n' server "MB/s" "CPU s/GB" "time s" "MB/s ratio" "CPU/GB ratio"
base=$(printf '%s\n' "${results[@]}" | awk '$1 == "mtlsgw-ktls-off" { print $2, $3 }')
for r in "${results[@]}"; do
	# shellcheck disable=SC2086
	set -- $r $base
	awk -v n="$1" -v mbs="$2" -v cpu="$3" -v s="$4" -v bm="${5:-0}" -v bc="${6:-0}" 'BEGIN {
		rm = "-"; rc = "-"
		if (bm + 0 > 0) rm = sprintf("%.2f", mbs / bm)
		if (bc + 0 > 0) rc = sprintf("%.2f", cpu / bc)
		printf "%-16s %10.2f %12.3f %9.1f %12s %14s\n", n, mbs, cpu, s, rm, rc }'
done
echo "(ratios relative to mtlsgw ktls = off; under emulation only the ratios mean anything)"
echo
echo "bench-ktls: 1 KiB keep-alive, wrk -t1 -c10 -d${RPS_SECS}s (no client certificate), same servers"
printf '%-16s %10s %12s %12s %14s\n' server "req/s" "CPU us/req" "req/s ratio" "CPU/req ratio"
base=$(printf '%s\n' "${rps_results[@]}" | awk '$1 == "mtlsgw-ktls-off" { print $2, $3 }')
for r in "${rps_results[@]}"; do
	# shellcheck disable=SC2086
	set -- $r $base
	awk -v n="$1" -v q="$2" -v c="$3" -v bq="${4:-0}" -v bc="${5:-0}" 'BEGIN {
		rq = "-"; rc = "-"
		if (bq + 0 > 0) rq = sprintf("%.2f", q / bq)
		if (bc + 0 > 0) rc = sprintf("%.2f", c / bc)
		printf "%-16s %10.0f %12.1f %12s %14s\n", n, q, c, rq, rc }'
done
printf '%s\n' "${results[@]}" "${rps_results[@]}" | awk '
	NF == 4 { mbs[$1] = $2; gb[$1] = $3 } NF == 3 { q[$1] = $2; c[$1] = $3 }
	END {
		a = "mtlsgw-ktls-on"; b = "nginx-ktls"
		if (mbs[b] > 0 && gb[b] > 0 && q[b] > 0 && c[b] > 0)
			printf "mtlsgw ktls = on / nginx kTLS: 10 MiB MB/s %.2f, CPU/GB %.2f; 1 KiB req/s %.2f, CPU/req %.2f\n",
				mbs[a] / mbs[b], gb[a] / gb[b], q[a] / q[b], c[a] / c[b] }'
echo "VMTEST-RESULT: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
