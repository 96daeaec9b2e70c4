#!/bin/sh
# SPDX-License-Identifier: MIT
# What the fleet costs and how well its limits hold, in one run, against a
# redis-server this script starts on loopback:
#  1. requests/s of one gateway with [fleet] on vs off (curl, keep-alive,
#     client1's certificate, parallel transfers), best of BENCH_ROUNDS;
#  2. sync thread CPU per second with 100k active identities (the fleet
#     module alone, tests/bench/fleet_load.c, linked with build/);
#  3. the fleet request limit with 1 and 3 gateways: admitted requests per
#     second vs fleet_req_rate, and the documented bound
#     (fleet_req_rate + sync_interval x offered rate);
#  4. (root only) reading bytes per identity for a sync from a 100k-entry
#     map with cert_stats' layout: bpf_map_lookup_batch of the whole map
#     vs one lookup per active identity (tests/bench/stats_read.c).
# Only loopback; everything started is stopped at the end.
#
#   scripts/bench-fleet.sh [SECONDS]       (default 5 per measurement)
#
# Environment: MTLSGW_BIN (build/mtlsgw), BENCH_ROUNDS (3), CURL_PARALLEL
# (16), FLEET_IDENTITIES (100000), FLEET_RATE (200: fleet_req_rate for 3.),
# SYNC (200ms).
set -eu
cd "$(dirname "$0")/.."

SECS=${1:-5}
BIN=${MTLSGW_BIN:-build/mtlsgw}
ROUNDS=${BENCH_ROUNDS:-3}
PAR=${CURL_PARALLEL:-16}
IDS=${FLEET_IDENTITIES:-100000}
RATE=${FLEET_RATE:-200}
SYNC=${SYNC:-200ms}

[ -x "$BIN" ] || { echo "bench-fleet: $BIN not built (make)" >&2; exit 1; }
for t in redis-server redis-cli curl python3 cc pkg-config; do
	command -v $t >/dev/null || { echo "bench-fleet: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
done

. scripts/bench-lib.sh
bench_work bench-fleet
REDIS_PID=
cleanup() {
	PIDS="$PIDS $REDIS_PID"
	bench_cleanup
}
trap cleanup EXIT INT TERM

scripts/gen-certs.sh "$WORK/certs" >/dev/null
C="$WORK/certs"

REDIS_PORT=$(free_port)
bench_redis "$WORK/redis" "$REDIS_PORT"

config() { # port host_id fleet(0/1) rate
	cat <<EOF
[server]
listen = 127.0.0.1:$1
workers = auto
access_log = off
[tls]
cert = $C/server.crt
key = $C/server.key
client_ca = $C/client-ca.pem
[location /]
root = $PWD/conf/www
[location /health]
return = 200 ok
[bpf]
mode = off
EOF
	[ "$3" = 1 ] || return 0
	cat <<EOF
[fleet]
redis = 127.0.0.1:$REDIS_PORT
sync_interval = $SYNC
host_id = $2
[limits]
fleet_req_rate = $4
EOF
}

start() { # name port host_id fleet rate -> appends to PIDS
	config "$2" "$3" "$4" "$5" >"$WORK/$1.conf"
	"$BIN" -c "$WORK/$1.conf" 2>"$WORK/$1.log" &
	pid=$!
	PIDS="$PIDS $pid"
	i=0
	until curl -s -o /dev/null --cacert "$C/ca.crt" \
		--resolve "localhost:$2:127.0.0.1" "https://localhost:$2/health"; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
			echo "bench-fleet: gateway $1 did not start:" >&2
			cat "$WORK/$1.log" >&2
			exit 1
		fi
		sleep 0.1
	done
}

stop_all() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	PIDS=
}

# curl with client1's certificate, N requests to PORT, PAR at a time over
# keep-alive connections; prints one status code per line.
load() { # port n
	curl -s --no-progress-meter -Z --parallel-max "$PAR" --cacert "$C/ca.crt" \
		--cert "$C/client1.crt" --key "$C/client1.key" \
		--resolve "localhost:$1:127.0.0.1" -w '%{http_code}\n' \
		"https://localhost:$1/health?[1-$2]" 2>/dev/null | grep -E '^[0-9]{3}$' || true
}

now() { date +%s.%N; }

# ---- 1. requests/s, fleet on vs off
echo "bench-fleet: ${SECS}s per measurement, curl -Z --parallel-max $PAR, $(nproc) CPUs, sync_interval $SYNC"
rps() { # fleet(0/1) -> RPS
	port=$(free_port)
	start g "$port" gw-bench "$1" 1000000000
	load "$port" 2000 >/dev/null # warm up
	n=0 t0=$(now)
	while awk -v a="$(now)" -v b="$t0" -v s="$SECS" 'BEGIN { exit !(a - b < s) }'; do
		load "$port" 5000 >"$WORK/codes"
		n=$((n + $(grep -c '^200$' "$WORK/codes")))
	done
	RPS=$(awk -v n="$n" -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.0f", n / (a - b) }')
	stop_all
}
best_off=0 best_on=0
r=0
while [ $r -lt "$ROUNDS" ]; do
	rps 0
	off=$RPS
	rps 1
	on=$RPS
	echo "round $((r + 1)): fleet off $off req/s, fleet on $on req/s"
	best_off=$(awk -v a="$best_off" -v b="$off" 'BEGIN { print (b > a ? b : a) }')
	best_on=$(awk -v a="$best_on" -v b="$on" 'BEGIN { print (b > a ? b : a) }')
	r=$((r + 1))
done
awk -v a="$best_off" -v b="$best_on" 'BEGIN {
	printf "requests/s (best): fleet off %.0f, on %.0f, on/off %.3f\n", a, b, (a > 0 ? b / a : 0) }'

redis_cpu_s() {
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$REDIS_PID/stat"
}

# ---- 2. sync CPU with many active identities
cc -O2 -D_GNU_SOURCE -iquote . -iquote include $(pkg-config --cflags libmicrohttpd inih openssl libbpf hiredis) \
	-o "$WORK/fleet_load" tests/bench/fleet_load.c build/libmtlsgw.a \
	$(pkg-config --libs libmicrohttpd inih openssl libbpf hiredis) -lpthread
config 1 gw-load 1 1000000000 >"$WORK/load.conf"
redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
rc0=$(redis_cpu_s)
"$WORK/fleet_load" "$WORK/load.conf" "$IDS" "$SECS" >"$WORK/load.out"
awk -v a="$(redis_cpu_s)" -v b="$rc0" -v s="$SECS" 'BEGIN {
	printf "redis-server: %.3f CPU s per s during that run\n", (a - b) / s }'
awk '/^identities/ { printf "sync thread: %s identities, %.3f CPU s per s (counting in the workers: %.3f)\n", $2, $6, $8 }
     /^mtlsgw_fleet_sync_duration_seconds_sum/ { s = $2 }
     /^mtlsgw_fleet_sync_duration_seconds_count/ { n = $2 }
     /^mtlsgw_fleet_sync_errors_total/ { e = $2 }
     END { if (n > 0) printf "  %d syncs, %.1f ms each on average, %d errors\n", n, s * 1000 / n, e }' "$WORK/load.out"
redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null

# ---- 3. overshoot at 1 and 3 gateways
overshoot() { # gateways
	ports=
	g=0
	while [ $g -lt "$1" ]; do
		p=$(free_port)
		start "o$g" "$p" "gw$g" 1 "$RATE"
		ports="$ports $p"
		g=$((g + 1))
	done
	sleep 1
	t0=$(now)
	lpids=
	for p in $ports; do
		( end=$(awk -v a="$t0" -v s="$SECS" 'BEGIN { printf "%.3f", a + s }')
		  while awk -v a="$(now)" -v e="$end" 'BEGIN { exit !(a < e) }'; do
			load "$p" 2000
		  done >"$WORK/codes.$p" ) &
		lpids="$lpids $!"
	done
	for lp in $lpids; do
		wait "$lp" || true
	done
	el=$(awk -v a="$(now)" -v b="$t0" 'BEGIN { print a - b }')
	ok=0 all=0
	for p in $ports; do
		ok=$((ok + $(grep -c '^200$' "$WORK/codes.$p" || true)))
		all=$((all + $(wc -l <"$WORK/codes.$p")))
	done
	stop_all
	awk -v g="$1" -v ok="$ok" -v all="$all" -v el="$el" -v r="$RATE" -v sy="$SYNC" 'BEGIN {
		s = sy; if (s ~ /ms$/) { sub(/ms$/, "", s); s /= 1000 } else sub(/s$/, "", s)
		w = int(el) + 1
		printf "%d gateway(s): %d of %d admitted in %.1f s = %.0f/s for fleet_req_rate %d/s (%.2fx); offered %.0f/s, bound %.0f/s\n",
			g, ok, all, el, ok / el, r, ok / el / r, all / el, r + s * all / el }'
}
overshoot 1
overshoot 3

# ---- 4. bytes per identity: batch read of the map vs per active identity
if [ "$(id -u)" = 0 ]; then
	cc -O2 -D_GNU_SOURCE -iquote include -include linux/types.h $(pkg-config --cflags libbpf) \
		-o "$WORK/stats_read" tests/bench/stats_read.c $(pkg-config --libs libbpf)
	"$WORK/stats_read" "$IDS" "$ROUNDS" 2>/dev/null | sed 's/^/cert_stats read: /'
else
	echo "cert_stats read: skipped (needs root for a BPF map)"
fi
