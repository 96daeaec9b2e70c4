#!/bin/sh
# SPDX-License-Identifier: MIT
# What the eBPF accounting costs: request throughput (wrk, keep-alive, no
# client certificate: the client is limited by its address) and handshake
# rate (openssl s_time, full handshakes with client1's certificate) of the
# real gateway with [bpf] mode = off and with mode = required, each run
# against the same config, then the ratios bpf/off. Generous limits are
# set so that every limiter runs but none refuses. Needs root.
#
#   scripts/bench-bpf.sh [SECONDS]        (default 10 per measurement)
#
# Environment: MTLSGW_BIN (build/mtlsgw), WRK_THREADS (2),
# WRK_CONNECTIONS (50), S_TIME_CLIENTS (8), BENCH_ROUNDS (3: off and on
# alternate, the best of each is kept), BENCH_PORT (18443).
set -eu
cd "$(dirname "$0")/.."

SECS=${1:-10}
BIN=${MTLSGW_BIN:-build/mtlsgw}
THREADS=${WRK_THREADS:-2}
CONNS=${WRK_CONNECTIONS:-50}
HS_CLIENTS=${S_TIME_CLIENTS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
PORT=${BENCH_PORT:-18443}
INSTANCE="bench-$$"

[ "$(id -u)" -eq 0 ] || { echo "bench-bpf: needs root (BPF)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench-bpf: $BIN not built (make build/mtlsgw)" >&2; exit 1; }
for t in wrk openssl bpftool; do
	command -v $t >/dev/null || { echo "bench-bpf: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/mtlsgw-bench.XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
	rm -rf "/sys/fs/bpf/mtlsgw/$INSTANCE"
	cg=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -1)
	[ -n "$cg" ] && rmdir "$cg/mtlsgw-$INSTANCE" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

scripts/gen-certs.sh "$WORK/certs" >/dev/null

config() { # mode
	cat <<EOF
[server]
listen = 127.0.0.1:$PORT
workers = auto
access_log = off
[tls]
cert = $WORK/certs/server.crt
key = $WORK/certs/server.key
client_ca = $WORK/certs/client-ca.pem
[location /]
root = $PWD/conf/www
[limits]
max_conns = 1000000
conn_rate = 1000000
conn_burst = 1000000
req_rate = 100000000
req_burst = 100000000
bandwidth_out = 100G
bandwidth_in = 100G
[bpf]
mode = $1
instance = $INSTANCE
EOF
}

start() { # mode
	config "$1" >"$WORK/mtlsgw.conf"
	"$BIN" -c "$WORK/mtlsgw.conf" 2>"$WORK/$1.log" &
	PID=$!
	i=0
	until curl -s -o /dev/null --cacert "$WORK/certs/ca.crt" \
		--resolve "localhost:$PORT:127.0.0.1" "https://localhost:$PORT/main.html"; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$PID" 2>/dev/null; then
			echo "bench-bpf: gateway ($1) did not start:" >&2
			cat "$WORK/$1.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	if [ "$1" = required ] && ! grep -q "limits: bpf" "$WORK/$1.log"; then
		echo "bench-bpf: gateway did not enable BPF:" >&2
		cat "$WORK/$1.log" >&2
		exit 1
	fi
}

stop() {
	kill "$PID"
	wait "$PID" 2>/dev/null || true
	PID=
}

# CPU time the gateway used so far, in microseconds (utime + stime).
cpu_us() {
	awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000000 / hz }' "/proc/$PID/stat"
}

measure() { # mode -> RPS, HS, CPU_REQ, CPU_HS (gateway CPU us per unit)
	start "$1"
	c0=$(cpu_us)
	wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/main.html" >"$WORK/wrk"
	c1=$(cpu_us)
	RPS=$(awk '/^Requests\/sec/ { print $2 }' "$WORK/wrk")
	CPU_REQ=$(awk -v c="$c1" -v d="$c0" '/requests in/ { print (c - d) / $1; exit }' "$WORK/wrk")
	# One s_time waits for each handshake in turn: run several at once.
	i=0 pids=
	while [ $i -lt "$HS_CLIENTS" ]; do
		openssl s_time -connect "127.0.0.1:$PORT" -new -time "$SECS" \
			-CAfile "$WORK/certs/ca.crt" -cert "$WORK/certs/client1.crt" \
			-key "$WORK/certs/client1.key" >"$WORK/s_time.$i" 2>&1 &
		pids="$pids $!"
		i=$((i + 1))
	done
	for p in $pids; do
		wait "$p" || true
	done
	c2=$(cpu_us)
	HS=$(cat "$WORK"/s_time.* |
		awk '/connections in [0-9.]+ real seconds/ { n += $1; t = $4 > t ? $4 : t }
		     END { if (t > 0) print n / t }')
	CPU_HS=$(cat "$WORK"/s_time.* |
		awk -v c="$c2" -v d="$c1" '/connections in [0-9.]+ real seconds/ { n += $1 }
		     END { if (n > 0) print (c - d) / n }')
	stop
	RPS=${RPS:-0} HS=${HS:-0} CPU_REQ=${CPU_REQ:-0} CPU_HS=${CPU_HS:-0}
}

echo "bench-bpf: ${SECS}s per measurement, wrk -t$THREADS -c$CONNS, $HS_CLIENTS s_time clients, $(nproc) CPUs, kernel $(uname -r)"
# Interleaved rounds, best of each: a busy machine only ever slows a run
# (rates: highest; gateway CPU per request or handshake: lowest).
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 && (a == 0 || b < a) ? b : a) }'; }
off_rps=0 off_hs=0 bpf_rps=0 bpf_hs=0 off_cr=0 off_ch=0 bpf_cr=0 bpf_ch=0
r=0
while [ $r -lt "$ROUNDS" ]; do
	measure off
	off_rps=$(max "$off_rps" "$RPS") off_hs=$(max "$off_hs" "$HS")
	off_cr=$(min "$off_cr" "$CPU_REQ") off_ch=$(min "$off_ch" "$CPU_HS")
	line="round $((r + 1)): off $RPS req/s, $HS hs/s, $CPU_REQ us/req, $CPU_HS us/hs"
	measure required
	bpf_rps=$(max "$bpf_rps" "$RPS") bpf_hs=$(max "$bpf_hs" "$HS")
	bpf_cr=$(min "$bpf_cr" "$CPU_REQ") bpf_ch=$(min "$bpf_ch" "$CPU_HS")
	echo "$line; bpf $RPS req/s, $HS hs/s, $CPU_REQ us/req, $CPU_HS us/hs"
	r=$((r + 1))
done

awk -v a="$off_rps" -v b="$bpf_rps" -v c="$off_hs" -v d="$bpf_hs" \
    -v e="$off_cr" -v f="$bpf_cr" -v g="$off_ch" -v h="$bpf_ch" 'BEGIN {
	printf "%-30s %10s %10s %8s\n", "", "bpf off", "bpf on", "on/off"
	printf "%-30s %10.0f %10.0f %8.3f\n", "requests/s (wrk)", a, b, (a > 0 ? b / a : 0)
	printf "%-30s %10.0f %10.0f %8.3f\n", "handshakes/s (s_time)", c, d, (c > 0 ? d / c : 0)
	printf "%-30s %10.1f %10.1f %8.3f\n", "gateway CPU us per request", e, f, (e > 0 ? f / e : 0)
	printf "%-30s %10.1f %10.1f %8.3f\n", "gateway CPU us per handshake", g, h, (g > 0 ? h / g : 0)
}'
