#!/bin/bash
# SPDX-License-Identifier: MIT
# mtlsgw against nginx, every workload of issue 10 in one run, printed as
# one markdown table: workload, nginx, mtlsgw, mtlsgw/nginx.
#
# Both servers run side by side for the whole run on the same PKI (ECDSA
# P-256, root -> intermediate, CRL), docroot, client verification
# (optional, depth 2), TLS 1.2 suites and TLS 1.3 suites, session tickets,
# no access log, $(nproc) workers each. Every workload measures nginx and
# mtlsgw back to back (which goes first alternates by round) and repeats
# BENCH_ROUNDS times; a cell is the median and, in brackets, the min-max of
# the rounds; the ratio is the median of the per-round ratios (a load spike
# from other work on the machine hits one round, not the ratio's median).
# Server CPU comes from /proc (utime + stime of all the server's
# processes) per handshake, request or GiB.
#
#   scripts/bench.sh                 (about 4-5 minutes)
#   QUICK=1 scripts/bench.sh         (smoke run, well under a minute)
#
# Environment: MTLSGW_BIN (build/mtlsgw), BENCH_SECS (2; 1 in QUICK) per
# measurement, BENCH_ROUNDS (3; 1 in QUICK), BENCH_HELD ("1000 5000 10000";
# "1000" in QUICK) idle connections for the memory curve, BENCH_BPF (auto:
# BPF on/off rows when root; 0 skips them). Needs nginx, wrk, curl, openssl
# and python3 (scripts/install-deps.sh). The kTLS figures come from
# scripts/bench-ktls.sh (in the VM; minutes of emulated CPU).
set -eu
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	SECS=${BENCH_SECS:-1} ROUNDS=${BENCH_ROUNDS:-1} HELD=${BENCH_HELD:-1000}
else
	SECS=${BENCH_SECS:-2} ROUNDS=${BENCH_ROUNDS:-3}
	HELD=${BENCH_HELD:-"1000 5000 10000"}
fi
BIN=${MTLSGW_BIN:-build/mtlsgw}
BPF=${BENCH_BPF:-auto}
WORKERS=$(nproc)
HZ=$(getconf CLK_TCK)
INSTANCE="bench-$$"
# The suites both servers offer: the gateway's own policy (daemon/tls.h).
TLS12=$(sed -n '/^#define TLS_CIPHERS_TLS12/,/"$/p' daemon/tls.h |
	tr -d '\\\n\t' | sed -nE 's/^[^"]*"([^"]*)".*/\1/p')
TLS13=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256

[ -x "$BIN" ] || { echo "bench: $BIN not built (make)" >&2; exit 1; }
for t in nginx wrk curl openssl python3; do
	command -v $t >/dev/null || { echo "bench: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -n "$TLS12" ] || { echo "bench: cannot read TLS_CIPHERS_TLS12 from daemon/tls.h" >&2; exit 1; }
if [ "$BPF" = auto ]; then
	BPF=0
	[ "$(id -u)" -eq 0 ] && command -v bpftool >/dev/null && BPF=1
fi
# A held connection costs the client one descriptor and the gateway three
# (TCP socket, socketpair): counts the descriptor limit cannot hold are
# left out (and said so under the table).
# Raising the hard limit needs CAP_SYS_RESOURCE (a container may not have
# it); a count that does not fit is replaced by the largest multiple of 500
# that does, and said so under the table.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
MAXHELD=$(((NOFILE - 256) / 3 / 500 * 500))
FITS= SKIPPED=
for n in $HELD; do
	if [ $((n * 3 + 256)) -le "$NOFILE" ]; then
		FITS="$FITS $n"
	else
		SKIPPED="$SKIPPED $n"
		case " $FITS " in *" $MAXHELD "*) ;; *) [ "$MAXHELD" -gt 0 ] && FITS="$FITS $MAXHELD" ;; esac
	fi
done
HELD=$FITS

WORK=$(mktemp -d /tmp/mtlsgw-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=
cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	if [ "$BPF" = 1 ]; then
		[ -n "${STATS_WAS:-}" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
		rm -rf "/sys/fs/bpf/mtlsgw/$INSTANCE"
		cg=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -1)
		[ -n "$cg" ] && rmdir "$cg/mtlsgw-$INSTANCE" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_ports() { # n -> n free loopback TCP ports
	python3 -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r G_PORT N_PORT B_PORT UP_PORT <<<"$(free_ports 4)"

C=$WORK/certs
scripts/gen-certs.sh "$C" >/dev/null
mkdir -p "$WORK/www/p" "$WORK/ngx"
echo ok >"$WORK/www/index.html"
head -c 1024 /dev/urandom >"$WORK/www/small"
cp "$WORK/www/small" "$WORK/www/p/small"
head -c $((10 << 20)) /dev/urandom >"$WORK/www/big"
USER_LINE=
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"

# nginx: the TLS front on N_PORT and, on UP_PORT, the plain HTTP upstream
# both servers proxy /p/ to (keep-alive pool of 32 per worker).
cat >"$WORK/ngx/nginx.conf" <<EOF
$USER_LINE
daemon off;
worker_processes $WORKERS;
pid $WORK/ngx/nginx.pid;
error_log $WORK/ngx/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path $WORK/ngx/body;
	proxy_temp_path $WORK/ngx/proxy;
	fastcgi_temp_path $WORK/ngx/fcgi;
	uwsgi_temp_path $WORK/ngx/uwsgi;
	scgi_temp_path $WORK/ngx/scgi;
	default_type application/octet-stream;
	keepalive_requests 1000000;
	keepalive_timeout 300s;
	upstream backend {
		server 127.0.0.1:$UP_PORT;
		keepalive 32;
	}
	server {
		listen 127.0.0.1:$UP_PORT;
		root $WORK/www;
	}
	server {
		listen 127.0.0.1:$N_PORT ssl;
		root $WORK/www;
		ssl_certificate $C/server.crt;
		ssl_certificate_key $C/server.key;
		ssl_client_certificate $C/client-ca.pem;
		ssl_crl $C/crl.pem;
		ssl_verify_client optional;
		ssl_verify_depth 2;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_ciphers $TLS12;
		ssl_prefer_server_ciphers on;
		ssl_conf_command Ciphersuites $TLS13;
		ssl_session_tickets on;
		location /p/ {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Client-Verify \$ssl_client_verify;
			proxy_set_header X-Client-Subject \$ssl_client_s_dn;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
		}
	}
}
EOF

gw_conf() { # port bpf-mode
	cat <<EOF
[server]
listen = 127.0.0.1:$1
workers = $WORKERS
access_log = off
max_connections = 20000
request_timeout = 300s
[tls]
cert = $C/server.crt
key = $C/server.key
client_ca = $C/client-ca.pem
crl = $C/crl.pem
verify_depth = 2
session_tickets = on
[upstream backend]
server = 127.0.0.1:$UP_PORT
keepalive = 32
[location /]
root = $WORK/www
[location /p/]
proxy_pass = http://backend
EOF
	if [ "$2" = off ]; then
		printf '[bpf]\nmode = off\n'
	else
		cat <<EOF
[limits]
max_conns = 1000000
conn_rate = 1000000
conn_burst = 1000000
req_rate = 100000000
req_burst = 100000000
bandwidth_out = 100G
bandwidth_in = 100G
[bpf]
mode = required
instance = $INSTANCE
EOF
	fi
}

wait_up() { # name port pid log
	local i=0
	until curl -s -o /dev/null --cacert "$C/ca.crt" \
		--resolve "localhost:$2:127.0.0.1" "https://localhost:$2/small"; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$3" 2>/dev/null; then
			echo "bench: $1 did not start:" >&2
			cat "$4" >&2
			exit 1
		fi
		sleep 0.1
	done
}

nginx -p "$WORK/ngx" -c "$WORK/ngx/nginx.conf" 2>"$WORK/ngx/stderr" &
NPID=$!
PIDS="$PIDS $NPID"
wait_up nginx "$N_PORT" "$NPID" "$WORK/ngx/stderr"
gw_conf "$G_PORT" off >"$WORK/gw.conf"
"$BIN" -c "$WORK/gw.conf" 2>"$WORK/gw.log" &
GPID=$!
PIDS="$PIDS $GPID"
wait_up mtlsgw "$G_PORT" "$GPID" "$WORK/gw.log"
if [ "$BPF" = 1 ]; then
	gw_conf "$B_PORT" required >"$WORK/gwb.conf"
	"$BIN" -c "$WORK/gwb.conf" 2>"$WORK/gwb.log" &
	BPID=$!
	PIDS="$PIDS $BPID"
	wait_up "mtlsgw (bpf)" "$B_PORT" "$BPID" "$WORK/gwb.log"
fi

# The BPF programs' own run time (kernel.bpf_stats_enabled: the kernel
# times every run), summed over the programs attached to the instance's
# cgroup: a count that load on the machine does not blur.
if [ "$BPF" = 1 ]; then
	STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
	sysctl -qw kernel.bpf_stats_enabled=1
	BPF_CG=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -1)/mtlsgw-$INSTANCE
fi
bpf_ns() { # -> nanoseconds the instance's programs have run so far
	bpftool -j cgroup tree 2>/dev/null | python3 -c '
import json, subprocess, sys
t = 0
for cg in json.load(sys.stdin):
    if cg.get("cgroup") != sys.argv[1]:
        continue
    for p in cg.get("programs", []):
        out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(p["id"])],
                             capture_output=True, text=True).stdout
        t += json.loads(out or "{}").get("run_time_ns", 0)
print(t)' "$BPF_CG" 2>/dev/null || echo 0
}

# All processes of a server: nginx's master and workers; the gateway is one.
procs() { # pid
	echo "$1"
	pgrep -P "$1" || true
}
cpu_us() { # pid -> CPU microseconds of the server so far
	local p t=0
	for p in $(procs "$1"); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo $((t * 1000000 / HZ))
}
pss_kib() { # pid -> proportional set size of the server, KiB
	local p t=0
	for p in $(procs "$1"); do
		t=$((t + $(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")))
	done
	echo "$t"
}

CERT=(-cert "$C/client1.crt" -key "$C/client1.key")
# s_time clients in parallel -> "handshakes/s server-ms-per-handshake"
hs() { # pid port clients s_time-args...
	local pid=$1 port=$2 n=$3 i c0 c1 cl=
	shift 3
	c0=$(cpu_us "$pid")
	for ((i = 0; i < n; i++)); do
		openssl s_time -connect "127.0.0.1:$port" -time "$SECS" \
			-CAfile "$C/ca.crt" "$@" >"$WORK/st.$i" 2>&1 &
		cl="$cl $!"
	done
	for i in $cl; do
		wait "$i" || true
	done
	c1=$(cpu_us "$pid")
	cat $(for ((i = 0; i < n; i++)); do echo "$WORK/st.$i"; done) |
		awk -v c=$((c1 - c0)) -v s="$SECS" \
			'/connections in [0-9.]+ real/ { n += $1 }
			 END { if (n > 0) printf "%.1f %.3f\n", n / s, c / n / 1000; else print "0 0" }'
}
# wrk -> "req/s server-us-per-request MiB/s server-ms-per-GiB"
load() { # pid url threads conns
	local c0 c1
	c0=$(cpu_us "$1")
	wrk -t"$3" -c"$4" -d"${SECS}s" "$2" >"$WORK/wrk" 2>&1 || true
	c1=$(cpu_us "$1")
	awk -v c=$((c1 - c0)) '
		/requests in/ { n = $1; t = $4 + 0; b = $5 + 0; u = $5; sub(/^[0-9.]+/, "", u) }
		END {
			m = u ~ /^GB/ ? 1024 : u ~ /^MB/ ? 1 : u ~ /^KB/ ? 1 / 1024 : 1 / 1048576
			mib = b * m
			if (n > 0 && t > 0) printf "%.0f %.1f %.1f %.0f\n", n / t, c / n, mib / t, c / 1000 / (mib / 1024)
			else print "0 0 0 0"
		}' "$WORK/wrk"
}

declare -A V # "workload,server" -> space-separated values, one per round
put() { V[$1,$2]="${V[$1,$2]:-} $3"; }
field() { echo "$1" | awk -v f="$2" '{ print $f }'; }

measure() { # server: nginx | mtlsgw | bpf
	local pid port r
	case $1 in
	nginx) pid=$NPID port=$N_PORT ;;
	mtlsgw) pid=$GPID port=$G_PORT ;;
	bpf) pid=$BPID port=$B_PORT ;;
	esac
	if [ "$1" = bpf ]; then
		local b0 b1 b2 n
		b0=$(bpf_ns)
		r=$(hs "$pid" "$port" 1 -new "${CERT[@]}")
		b1=$(bpf_ns)
		put hs_cert "$1" "$(field "$r" 2)"
		n=$(awk -v r="$(field "$r" 1)" -v s="$SECS" 'BEGIN { print r * s }')
		put bpf_hs "$1" "$(awk -v d=$((b1 - b0)) -v n="$n" 'BEGIN { printf "%.4f", (n > 0 ? d / n / 1e6 : 0) }')"
		put hs_cert_bpf_ms "$1" "$(field "$r" 2)"
		r=$(load "$pid" "https://127.0.0.1:$port/small" 2 50)
		b2=$(bpf_ns)
		put rps "$1" "$(field "$r" 1)"
		put cpu_req "$1" "$(field "$r" 2)"
		n=$(awk -v r="$(field "$r" 1)" -v s="$SECS" 'BEGIN { print r * s }')
		put bpf_req "$1" "$(awk -v d=$((b2 - b1)) -v n="$n" 'BEGIN { printf "%.3f", (n > 0 ? d / n / 1e3 : 0) }')"
		return
	fi
	r=$(hs "$pid" "$port" 1 -new "${CERT[@]}")
	put hs_cert "$1" "$(field "$r" 2)"
	r=$(hs "$pid" "$port" 2 -new "${CERT[@]}")
	put hs_cert2 "$1" "$(field "$r" 2)"
	r=$(hs "$pid" "$port" 1 -new)
	put hs_nocert "$1" "$(field "$r" 2)"
	r=$(hs "$pid" "$port" 1 -reuse -tls1_3 -www /small "${CERT[@]}")
	put res13 "$1" "$(field "$r" 2)"
	r=$(hs "$pid" "$port" 1 -reuse -tls1_2 -www /small "${CERT[@]}")
	put res12 "$1" "$(field "$r" 2)"
	r=$(load "$pid" "https://127.0.0.1:$port/small" 2 50)
	put rps "$1" "$(field "$r" 1)"
	put cpu_req "$1" "$(field "$r" 2)"
	r=$(load "$pid" "https://127.0.0.1:$port/big" 1 4)
	put big "$1" "$(field "$r" 3)"
	put big_cpu "$1" "$(field "$r" 4)"
	r=$(load "$pid" "https://127.0.0.1:$port/p/small" 2 50)
	put proxy "$1" "$(field "$r" 1)"
}

echo "bench: $ROUNDS round(s) of ${SECS}s per measurement, $WORKERS workers each, $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((round = 1; round <= ROUNDS; round++)); do
	if ((round % 2)); then order="nginx mtlsgw"; else order="mtlsgw nginx"; fi
	for s in $order; do
		measure "$s"
	done
	# BPF on vs off: the gateway with accounting and limits against itself.
	if [ "$BPF" = 1 ]; then
		measure bpf
		r=$(hs "$GPID" "$G_PORT" 1 -new "${CERT[@]}")
		put hs_cert_off mtlsgw "$(field "$r" 2)"
		r=$(load "$GPID" "https://127.0.0.1:$G_PORT/small" 2 50)
		put rps_off mtlsgw "$(field "$r" 1)"
	fi
	echo "bench: round $round done ($SECONDS s)" >&2
done

# Memory per idle keep-alive connection: open the counts in BENCH_HELD one
# server at a time, after one request each, and compare PSS to the start.
held() { # pid port name -> "kib-per-conn ..." per count (0: failed)
	local pid=$1 port=$2 base n out= line
	base=$(pss_kib "$pid")
	coproc HOLD { exec python3 scripts/bench-hold.py 127.0.0.1 "$port" \
		"$C/ca.crt" "$C/client1.crt" "$C/client1.key" /small $HELD; }
	for n in $HELD; do
		line=
		read -r line <&"${HOLD[0]}" || true
		if [ "$line" != "held $n" ]; then
			echo "bench: $3: could not hold $n connections" >&2
			out="$out 0"
			continue
		fi
		sleep 1
		out="$out $(awk -v a="$(pss_kib "$pid")" -v b="$base" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }')"
		echo >&"${HOLD[1]}"
	done
	eval "exec ${HOLD[1]}>&-"
	wait "$HOLD_PID" 2>/dev/null || true
	echo "$out"
}
out=
for s in nginx mtlsgw; do
	if [ $s = nginx ]; then r=$(held "$NPID" "$N_PORT" nginx); else r=$(held "$GPID" "$G_PORT" mtlsgw); fi
	i=1
	for n in $HELD; do
		put "rss$n" $s "$(field "$r" $i)"
		i=$((i + 1))
	done
done

# ---- the table ---- (a missing figure leaves a row out, never the table)
set +e
stat() { # values... -> "median min max"
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		print m, v[1], v[NR] }'
}
cell() { # values...
	read -r m lo hi <<<"$(stat "$@")"
	if [ $# -gt 1 ]; then
		awk -v m="$m" -v l="$lo" -v h="$hi" 'BEGIN { printf "%.4g [%.4g-%.4g]", m, l, h }'
	else
		awk -v m="$m" 'BEGIN { printf "%.4g", m }'
	fi
}
row() { # label key [base-server other-server base-key]
	local a=${3:-nginx} b=${4:-mtlsgw} ka=${5:-$2} i ra=() rb=() q=()
	read -r -a ra <<<"${V[$ka,$a]:-}"
	read -r -a rb <<<"${V[$2,$b]:-}"
	[ ${#ra[@]} -gt 0 ] && [ ${#rb[@]} -gt 0 ] || return 0
	for ((i = 0; i < ${#ra[@]} && i < ${#rb[@]}; i++)); do
		q+=("$(awk -v x="${rb[$i]}" -v y="${ra[$i]}" 'BEGIN { printf "%.3f", (y > 0 ? x / y : 0) }')")
	done
	printf '| %s | %s | %s | **%s** |\n' "$1" "$(cell "${ra[@]}")" "$(cell "${rb[@]}")" "$(cell "${q[@]}")"
}

echo
echo "| workload | nginx | mtlsgw | mtlsgw / nginx |"
echo "|---|---|---|---|"
row "full TLS 1.3 handshake, client cert: server CPU ms" hs_cert
row "same, two clients in parallel: ms" hs_cert2
row "full TLS 1.3, no client cert: ms" hs_nocert
row "TLS 1.3 resumed (ticket), client cert: ms" res13
row "TLS 1.2 resumed (ticket), client cert: ms" res12
row "1 KiB keep-alive req/s (wrk -t2 -c50)" rps
row "1 KiB: server CPU us per request" cpu_req
row "10 MiB file MiB/s (wrk -t1 -c4)" big
row "10 MiB: server CPU ms per GiB" big_cpu
row "proxied 1 KiB req/s (nginx upstream, keep-alive 32)" proxy
for n in $HELD; do
	row "PSS per idle keep-alive TLS conn, $n held: KiB" "rss$n"
done
if [ "$BPF" = 1 ]; then
	row "BPF on / off (nginx column: mtlsgw, BPF off): req/s" rps mtlsgw bpf rps_off
	row "BPF on / off: full handshake CPU ms" hs_cert mtlsgw bpf hs_cert_off
	row "BPF programs' run time per request, us (nginx column: gateway CPU us per request, BPF on)" bpf_req bpf bpf cpu_req
	row "BPF programs' run time per handshake, ms (nginx column: gateway CPU ms per handshake, BPF on)" bpf_hs bpf bpf hs_cert_bpf_ms
fi
echo
[ -z "$SKIPPED" ] || echo "Not measured:$SKIPPED held connections (the descriptor limit here, $NOFILE, holds $(((NOFILE - 256) / 3)) for the gateway: 3 descriptors each); $MAXHELD instead; scripts/bench-hold-vm.sh holds them in the VM."
echo "Cells: median [min-max] of $ROUNDS round(s), ${SECS}s each; ratio: median [min-max] of per-round ratios. $WORKERS workers each, userspace TLS, $(nproc) CPUs, $(uname -r)."
