#!/bin/bash
# SPDX-License-Identifier: MIT
# What OCSP costs a full handshake when the answer is cached: two mtlsgw
# daemons, one worker each, same certificates and CRL, one with ocsp = off
# and one with ocsp = leaf against `openssl ocsp` (answers valid 5 min, so
# after the first handshake every one is a cache hit, run as an ASYNC job).
# `openssl s_time -new` with client1 for SECONDS per round; reports
# handshakes/s and server CPU microseconds per handshake (utime + stime
# from /proc), best of BENCH_ROUNDS (default 2), and the ratio leaf/off.
#
#   scripts/bench-ocsp.sh [SECONDS]   (default 5)
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${BENCH_ROUNDS:-2}
BIN=${MTLSGW_BIN:-build/mtlsgw}
PORT=${BENCH_PORT:-29453}
W=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
[ -x "$BIN" ] || { echo "bench-ocsp: build $BIN first (make)"; exit 1; }
scripts/gen-certs.sh "$W/certs" >/dev/null
C=$W/certs
mkdir -p "$W/www" && echo ok >"$W/www/index.html"

openssl ocsp -index "$C/.ca/intermediate/index.txt" -port $((PORT + 2)) \
	-rsigner "$C/ocsp.crt" -rkey "$C/ocsp.key" -CA "$C/intermediate.crt" \
	-nmin 5 -ignore_err >"$W/ocsp.log" 2>&1 &
PIDS+=($!)
for mode in off leaf; do
	port=$PORT
	[ "$mode" = leaf ] && port=$((PORT + 1))
	cat >"$W/$mode.conf" <<CONF
[server]
listen = 127.0.0.1:$port
workers = 1
access_log = off
[tls]
cert = $C/server.crt
key = $C/server.key
client_ca = $C/client-ca.pem
crl = $C/crl.pem
ocsp = $mode
ocsp_responder = http://127.0.0.1:$((PORT + 2))/
[location /]
root = $W/www
[bpf]
mode = off
CONF
	[ "$mode" = off ] && sed -i '/^ocsp_responder/d' "$W/$mode.conf"
	"$BIN" -c "$W/$mode.conf" 2>"$W/$mode.log" &
	PIDS+=($!)
	eval "PID_$mode=$!"
done
sleep 1

measure() { # pid port -> "handshakes/s us-per-handshake"
	local pid=$1 port=$2 t0 t1 n
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	n=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$SECS" \
		-CAfile "$C/ca.crt" -cert "$C/client1.crt" -key "$C/client1.key" 2>&1 |
		sed -nE 's/^([0-9]+) connections in [0-9.]+ real.*/\1/p')
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	awk -v n="$n" -v s="$SECS" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.1f %.1f\n", n / s, t * 1e6 / hz / n }'
}
best() {
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
		if (a == "" || y[2] < x[2]) print b; else print a }'
}

off="" leaf=""
for ((r = 1; r <= ROUNDS; r++)); do
	off=$(best "$off" "$(measure "$PID_off" $PORT)")
	leaf=$(best "$leaf" "$(measure "$PID_leaf" $((PORT + 1)))")
	echo "round $r: ocsp off $off; ocsp leaf (cached) $leaf (hs/s us/hs)"
done
read -r orate ous <<<"$off"
read -r lrate lus <<<"$leaf"
echo "OCSP requests sent by the leaf daemon: $(grep -c 'Received request' "$W/ocsp.log")"
printf '%-30s %10s %10s %10s\n' "" off leaf leaf/off
printf '%-30s %10s %10s %10s\n' "handshakes/s, client1" "$orate" "$lrate" \
	"$(awk -v a="$lrate" -v b="$orate" 'BEGIN { printf "%.3f", a / b }')"
printf '%-30s %10s %10s %10s\n' "server CPU us/handshake" "$ous" "$lus" \
	"$(awk -v a="$lus" -v b="$ous" 'BEGIN { printf "%.3f", a / b }')"
