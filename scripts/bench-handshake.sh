#!/bin/bash
# SPDX-License-Identifier: MIT
# Full TLS handshakes (no resumption), mtlsgw against nginx in the same run,
# same certificates, same client verification (client certificate optional,
# verify depth 2, CRLs), one worker each: `openssl s_time -new` for
# SECONDS, without and with client1's certificate. Reports handshakes/s and
# server CPU microseconds per handshake (utime + stime of the server
# process from /proc), and the ratios mtlsgw/nginx. Rounds alternate; the
# best of each is kept (a busy machine only ever slows a run).
#
#   scripts/bench-handshake.sh [SECONDS]   (default 5; BENCH_ROUNDS, default 2)
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${BENCH_ROUNDS:-2}
BIN=${MTLSGW_BIN:-build/mtlsgw}
PORT=${BENCH_PORT:-29443}
W=$(mktemp -d)
trap 'kill $GPID $NPID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
[ -x "$BIN" ] || { echo "bench-handshake: build $BIN first (make)"; exit 1; }
scripts/gen-certs.sh "$W/certs" >/dev/null
C=$W/certs
mkdir -p "$W/www" && echo ok >"$W/www/index.html"

cat >"$W/gw.conf" <<CONF
[server]
listen = 127.0.0.1:$PORT
workers = 1
access_log = off
[tls]
cert = $C/server.crt
key = $C/server.key
client_ca = $C/client-ca.pem
crl = $C/crl.pem
verify_depth = 2
[location /]
root = $W/www
[bpf]
mode = off
CONF
cat >"$W/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx-error.log warn;
user root;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$((PORT + 1)) ssl;
    ssl_certificate $C/server.crt;
    ssl_certificate_key $C/server.key;
    ssl_client_certificate $C/client-ca.pem;
    ssl_crl $C/crl.pem;
    ssl_verify_client optional;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { root $W/www; }
  }
}
CONF
"$BIN" -c "$W/gw.conf" 2>"$W/gw.log" &
GPID=$!
nginx -c "$W/nginx.conf" &
NPID=$!
sleep 1
NWORKER=$(pgrep -P $NPID | head -1)
NWORKER=${NWORKER:-$NPID}

# pid port [client cert args] -> "handshakes/s us-per-handshake"
measure() {
	local pid=$1 port=$2 t0 t1 n
	shift 2
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	n=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$SECS" \
		-CAfile "$C/ca.crt" "$@" 2>&1 |
		sed -nE 's/^([0-9]+) connections in [0-9.]+ real.*/\1/p')
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	awk -v n="$n" -v s="$SECS" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.1f %.1f\n", n / s, t * 1e6 / hz / n }'
}

best() { # current candidate -> the better "rate us" pair
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
		if (a == "" || y[2] < x[2]) print b; else print a }'
}

declare -A R
for ((r = 1; r <= ROUNDS; r++)); do
	for cert in none client1; do
		args=()
		[ "$cert" = client1 ] && args=(-cert "$C/client1.crt" -key "$C/client1.key")
		R[g$cert]=$(best "${R[g$cert]:-}" "$(measure $GPID $PORT "${args[@]}")")
		R[n$cert]=$(best "${R[n$cert]:-}" "$(measure $NWORKER $((PORT + 1)) "${args[@]}")")
	done
	echo "round $r: mtlsgw ${R[gnone]} / ${R[gclient1]}; nginx ${R[nnone]} / ${R[nclient1]} (hs/s us/hs, no cert / client1)"
done
printf '%-34s %10s %10s %12s\n' "" mtlsgw nginx mtlsgw/nginx
for cert in none client1; do
	read -r gr gu <<<"${R[g$cert]}"
	read -r nr nu <<<"${R[n$cert]}"
	printf '%-34s %10s %10s %12s\n' "handshakes/s, client cert $cert" "$gr" "$nr" \
		"$(awk -v a="$gr" -v b="$nr" 'BEGIN { printf "%.3f", a / b }')"
	printf '%-34s %10s %10s %12s\n' "server CPU us/handshake, $cert" "$gu" "$nu" \
		"$(awk -v a="$gu" -v b="$nu" 'BEGIN { printf "%.3f", a / b }')"
done
