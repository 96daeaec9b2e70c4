#!/bin/bash
# SPDX-License-Identifier: MIT
# Memory per idle keep-alive TLS connection at counts this machine's
# descriptor limit cannot hold (a script, not a test). For each of
#   1. mtlsgw with ktls = on   (kernel TLS: 1 descriptor per connection)
#   2. mtlsgw with ktls = off  (userspace relay: 3 descriptors)
#   3. nginx (userspace TLS, as in scripts/bench.sh)
# in turn, one worker each, same certificates, access logs off, idle
# timeouts of an hour: scripts/bench-hold.py opens connections (TLS 1.3,
# client certificate on the first full handshake, the rest resume its
# ticket), does one 1 KiB GET on each and holds them idle; at every count
# the server's PSS (smaps_rollup, the process and its children: all
# workers; the client is a separate process and is not counted) is
# compared with the PSS before the first connection.
#
#   scripts/bench-hold-vm.sh [--counts "1000 5000 10000"] [--servers "..."]
#
# Where this kernel has no kTLS or the descriptor limit is below what the
# counts need (this project's machines: hard limit 20000, no
# CAP_SYS_RESOURCE), it runs itself in the VM of scripts/vm-test.sh as
# root, with MTLSGW_VM_MEM (default here 4096 MiB) and raised limits.
# --servers (or BENCH_HOLD_SERVERS): subset/order of "mtlsgw-ktls-on
# mtlsgw-ktls-off nginx nginx-ktls" (default the first three).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
COUNTS=${BENCH_HELD:-"1000 5000 10000"}
SERVERS=${BENCH_HOLD_SERVERS:-"mtlsgw-ktls-on mtlsgw-ktls-off nginx"}
while [ $# -gt 0 ]; do
	case $1 in
	--counts) COUNTS=$2; shift ;;
	--servers) SERVERS=$2; shift ;;
	--guest) GUEST=1 ;;
	*) echo "usage: $0 [--counts \"N1 N2 ..\"] [--servers \"S1 S2 ..\"]" >&2; exit 2 ;;
	esac
	shift
done
max=0
for n in $COUNTS; do [ "$n" -gt "$max" ] && max=$n; done
NEED=$((max * 4 + 1024)) # the client (1 each) and the gateway (up to 3 each)

can_here() { # kTLS and enough descriptors (root may raise the hard limit)
	grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null || return 1
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$NEED" ] ||
		(ulimit -Hn "$NEED") 2>/dev/null
}
if [ -z "${GUEST:-}" ] && ! can_here; then
	echo "bench-hold-vm: no kTLS or descriptor hard limit $(ulimit -Hn) < $NEED here; running in the VM"
	[ -x "$BUILD/mtlsgw" ] || make -s "$BUILD/mtlsgw" || exit 1
	MTLSGW_VM_MEM=${MTLSGW_VM_MEM:-4096} MTLSGW_VM_TIMEOUT=${MTLSGW_VM_TIMEOUT:-1800} \
		exec scripts/vm-test.sh scripts/bench-hold-vm.sh --guest \
		--counts "$COUNTS" --servers "$SERVERS"
fi

# ---- the benchmark itself (in the VM or on a host that can hold them) ------
ulimit -Hn $((NEED * 2)) 2>/dev/null
ulimit -n $((NEED * 2)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
. scripts/bench-guest-lib.sh bench-hold
mkdir -p "$W/root" "$W/nginx-tmp"
head -c 1024 /dev/urandom >"$W/root/small"

pss_kib() { # pid -> PSS of the process and its children, KiB
	local p t=0
	for p in "$1" $(pgrep -P "$1"); do
		t=$((t + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")))
	done
	echo "$t"
}
tls_curr_tx() { awk '$1 == "TlsCurrTxSw" { print $2 }' /proc/net/tls_stat 2>/dev/null || echo 0; }

mtlsgw_conf() { # PORT KTLS
	cat <<EOF
[server]
listen = 127.0.0.1:$1
workers = 1
access_log = off
max_connections = $((max + 1000))
request_timeout = 3600s
[tls]
cert = $CERTS/server.crt
key = $CERTS/server.key
client_ca = $CERTS/client-ca.pem
session_tickets = on
ktls = $2
[location /]
root = $W/root
[bpf]
mode = off
EOF
}

nginx_conf() { # PORT KTLS(0/1)
	local k=
	[ "$2" = 1 ] && k="ssl_conf_command Options KTLS;"
	cat <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((max * 2 + 1000));
error_log $W/nginx-error.log;
pid $W/nginx.pid;
events { worker_connections $((max + 1000)); }
http {
	access_log off;
	sendfile on;
	keepalive_timeout 3600s;
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
		ssl_verify_client on;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_session_tickets on;
		$k
		root $W/root;
	}
}
EOF
}

# hold NAME PORT WANT_KTLS CMD...: start the server, note its PSS, hold the
# counts one after another, print one result line per count.
results=()
hold() {
	local name=$1 port=$2 want_ktls=$3 pid base n line pss kt t0
	shift 3
	"$@" >"$W/$name.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	if ! wait_listen "$port" 300; then
		bad "hold-$name-starts" "$(tail -3 "$W/$name.log")"
		return
	fi
	sleep 1
	base=$(pss_kib "$pid")
	t0=$SECONDS
	# shellcheck disable=SC2086
	coproc HOLD { exec python3 scripts/bench-hold.py 127.0.0.1 "$port" \
		"$CERTS/ca.crt" "$CERTS/client1.crt" "$CERTS/client1.key" /small $COUNTS 2>"$W/hold.err"; }
	for n in $COUNTS; do
		line=
		read -r line <&"${HOLD[0]}" || true
		if [ "$line" != "held $n" ]; then
			bad "hold-$name-$n" "$(tail -4 "$W/hold.err"; tail -2 "$W/$name.log")"
			break
		fi
		sleep 2
		pss=$(pss_kib "$pid")
		kt=$(tls_curr_tx)
		if [ "$want_ktls" = 1 ] && [ "$kt" -ge "$n" ]; then
			ok "hold-$name-$n-ktls"
		elif [ "$want_ktls" = 0 ] && [ "$kt" -eq 0 ]; then
			ok "hold-$name-$n-no-ktls"
		else
			bad "hold-$name-$n-ktls-as-expected" "TlsCurrTxSw $kt, want kTLS=$want_ktls"
		fi
		results+=("$(awk -v s="$name" -v n="$n" -v a="$pss" -v b="$base" -v t=$((SECONDS - t0)) \
			'BEGIN { printf "%s %d %.1f %d %d\n", s, n, (a - b) / n, a - b, t }')")
		tail -1 "$W/hold.err" >&2
		echo "bench-hold-vm: $name $n held, PSS +$((pss - base)) KiB, ${SECONDS}s" >&2
		[ -n "${HOLD[1]:-}" ] && echo >&"${HOLD[1]}"
	done
	[ -n "${HOLD[1]:-}" ] && eval "exec ${HOLD[1]}>&-"
	[ -n "${HOLD_PID:-}" ] && wait "$HOLD_PID" 2>/dev/null
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

port=9811
for s in $SERVERS; do
	port=$((port + 1))
	case $s in
	mtlsgw-ktls-on | mtlsgw-ktls-off)
		k=${s#mtlsgw-ktls-}
		mtlsgw_conf "$port" "$k" >"$W/$s.conf"
		hold "$s" "$port" "$([ "$k" = on ] && echo 1 || echo 0)" "$BUILD/mtlsgw" -c "$W/$s.conf" ;;
	nginx | nginx-ktls)
		nginx_conf "$port" "$([ "$s" = nginx-ktls ] && echo 1 || echo 0)" >"$W/$s.conf"
		hold "$s" "$port" "$([ "$s" = nginx-ktls ] && echo 1 || echo 0)" nginx -c "$W/$s.conf" ;;
	*) bad "hold-$s" "unknown server" ;;
	esac
done

echo
echo "bench-hold-vm: PSS per idle keep-alive TLS connection (1 KiB GET done on each), kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB"
printf '%-16s %7s %12s %12s %12s %9s\n' server held "KiB/conn" "PSS +KiB" "vs nginx" "client s"
for r in "${results[@]}"; do
	# shellcheck disable=SC2086
	set -- $r
	ng=$(printf '%s\n' "${results[@]}" | awk -v n="$2" '$1 == "nginx" && $2 == n { print $3 }')
	awk -v s="$1" -v n="$2" -v k="$3" -v d="$4" -v t="$5" -v g="${ng:-0}" 'BEGIN {
		q = g + 0 > 0 ? sprintf("%.2f", k / g) : "-"
		printf "%-16s %7d %12.1f %12d %12s %9d\n", s, n, k, d, q, t }'
done
echo "VMTEST-RESULT: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
