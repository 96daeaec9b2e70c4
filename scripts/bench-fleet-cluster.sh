#!/bin/sh
# SPDX-License-Identifier: MIT
# The fleet's sync against one redis-server vs a 3-primary Redis Cluster
# ([fleet] cluster = yes), both started here on loopback: N active
# identities pushed at every sync (tests/bench/fleet_load.c, the daemon's
# fleet module linked from build/); prints the average sync duration,
# syncs, errors and the sync thread's CPU for each. Everything started is
# stopped at the end.
#
#   scripts/bench-fleet-cluster.sh [SECONDS]   (default 5)
#
# Environment: FLEET_IDENTITIES (20000), SYNC (200ms).
set -eu
cd "$(dirname "$0")/.."

SECS=${1:-5}
IDS=${FLEET_IDENTITIES:-20000}
SYNC=${SYNC:-200ms}

[ -f build/libmtlsgw.a ] || { echo "bench-fleet-cluster: build/ not built (make)" >&2; exit 1; }
for t in redis-server redis-cli python3 cc pkg-config; do
	command -v $t >/dev/null || { echo "bench-fleet-cluster: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
done

. scripts/bench-lib.sh
bench_work bench-cluster

redis() { # dir port [args] -> appends to PIDS
	bench_redis "$@"
	PIDS="$PIDS $REDIS_PID"
}

SINGLE=$(free_port)
redis "$WORK/single" "$SINGLE"
N0=$(free_port) N1=$(free_port) N2=$(free_port)
k=0
for p in $N0 $N1 $N2; do # (bus port chosen: port + 10000 may be taken)
	redis "$WORK/n$p" "$p" --cluster-enabled yes --cluster-config-file "$WORK/n$p/nodes.conf" \
		--cluster-port "$(free_port)"
	k=$((k + 1))
	redis-cli -p "$p" CLUSTER SET-CONFIG-EPOCH $k >/dev/null
done
redis-cli -p "$N0" CLUSTER ADDSLOTSRANGE 0 5460 >/dev/null
redis-cli -p "$N1" CLUSTER ADDSLOTSRANGE 5461 10922 >/dev/null
redis-cli -p "$N2" CLUSTER ADDSLOTSRANGE 10923 16383 >/dev/null
for p in $N1 $N2; do
	bus=$(redis-cli -p "$p" CONFIG GET cluster-port | tail -1)
	redis-cli -p "$N0" CLUSTER MEET 127.0.0.1 "$p" "$bus" >/dev/null
done
formed() {
	for p in $N0 $N1 $N2; do
		redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok || return 1
		[ "$(redis-cli -p "$p" CLUSTER INFO | tr -d '\r' |
			awk -F: '/cluster_known_nodes/ { print $2 }')" = 3 ] || return 1
	done
}
i=0
until formed; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "bench-fleet-cluster: the cluster did not form" >&2; exit 1; }
	sleep 0.1
done

scripts/gen-certs.sh "$WORK/certs" >/dev/null
cc -O2 -D_GNU_SOURCE -iquote . -iquote include $(pkg-config --cflags libmicrohttpd inih openssl libbpf hiredis) \
	-o "$WORK/fleet_load" tests/bench/fleet_load.c build/libmtlsgw.a \
	$(pkg-config --libs libmicrohttpd inih openssl libbpf hiredis) -lpthread

config() { # fleet lines
	cat <<EOF
[tls]
cert = $WORK/certs/server.crt
key = $WORK/certs/server.key
client_ca = $WORK/certs/client-ca.pem
[location /]
return = 200 ok
[bpf]
mode = off
[fleet]
$1
sync_interval = $SYNC
host_id = bench
[limits]
fleet_req_rate = 1000000000
EOF
}

run() { # label conf
	"$WORK/fleet_load" "$2" "$IDS" "$SECS" >"$WORK/out"
	awk -v l="$1" '/^identities/ { cpu = $6 }
	     /^mtlsgw_fleet_sync_duration_seconds_sum/ { s = $2 }
	     /^mtlsgw_fleet_sync_duration_seconds_count/ { n = $2 }
	     /^mtlsgw_fleet_sync_errors_total/ { e = $2 }
	     END { printf "%s: %d syncs, %.1f ms each on average, %d errors, sync thread %.3f CPU s/s\n",
		   l, n, (n ? s * 1000 / n : 0), e, cpu }' "$WORK/out"
}

echo "bench-fleet-cluster: $IDS active identities, ${SECS}s each, sync_interval $SYNC, $(nproc) CPUs"
config "redis = 127.0.0.1:$SINGLE" >"$WORK/single.conf"
run "one redis-server" "$WORK/single.conf"
config "cluster = yes
redis = 127.0.0.1:$N0" >"$WORK/cluster.conf"
run "3-primary cluster" "$WORK/cluster.conf"
for p in $N0 $N1 $N2; do
	printf 'node %s: %s keys\n' "$p" "$(redis-cli -p "$p" DBSIZE)"
done
