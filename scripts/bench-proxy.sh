#!/bin/sh
# SPDX-License-Identifier: MIT
# Reverse-proxy throughput, mtlsgw against nginx proxy_pass, in the same
# run: both terminate TLS with the same certificates (client certificate
# optional, client1's presented for downloads) and proxy to the same plain
# HTTP upstream (a second nginx serving files from memory-backed /tmp), with
# the same number of workers and a pool of 32 idle upstream connections
# per worker. Measured with the same clients:
#   - small proxied requests per second: wrk, keep-alive, a 1 KiB body
#   - a 100 MB proxied download: curl with client1's certificate, MB/s
# Rounds alternate mtlsgw and nginx; the best of each is kept (a busy
# machine only ever slows a run). Prints the ratios mtlsgw/nginx.
#
#   scripts/bench-proxy.sh [SECONDS]        (default 10 per wrk run)
#
# Environment: MTLSGW_BIN (build/mtlsgw), WRK_THREADS (2), WRK_CONNECTIONS
# (50), BENCH_ROUNDS (3), BENCH_PORT (28443; +1 nginx, +2 the upstream),
# BENCH_BPF (off: [bpf] mode of mtlsgw; nginx has no such accounting).
set -eu
cd "$(dirname "$0")/.."

SECS=${1:-10}
BIN=${MTLSGW_BIN:-build/mtlsgw}
THREADS=${WRK_THREADS:-2}
CONNS=${WRK_CONNECTIONS:-50}
ROUNDS=${BENCH_ROUNDS:-3}
PORT=${BENCH_PORT:-28443}
NGX_PORT=$((PORT + 1))
UP_PORT=$((PORT + 2))
BPF=${BENCH_BPF:-off}
WORKERS=$(nproc)
BIG_MB=100

[ -x "$BIN" ] || { echo "bench-proxy: $BIN not built (make build/mtlsgw)" >&2; exit 1; }
for t in wrk curl nginx openssl; do
	command -v $t >/dev/null || { echo "bench-proxy: $t missing (scripts/install-deps.sh)" >&2; exit 1; }
done

. scripts/bench-lib.sh
bench_work bench-proxy
chmod 755 "$WORK"

scripts/gen-certs.sh "$WORK/certs" >/dev/null
mkdir -p "$WORK/up" "$WORK/ngx-up" "$WORK/ngx-front"
head -c 1024 /dev/urandom >"$WORK/up/small"
head -c $((BIG_MB << 20)) /dev/urandom >"$WORK/up/big"
BIG_SIZE=$((BIG_MB << 20))

# nginx started as root drops its workers to "nobody" unless told.
USER_LINE=
[ "$(id -u)" -eq 0 ] && USER_LINE="user root;"

nginx_common() { # prefix
	cat <<EOF
$USER_LINE
daemon off;
master_process on;
worker_processes $WORKERS;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
EOF
}

# The upstream: plain HTTP on loopback, files, keep-alive.
{
	nginx_common "$WORK/ngx-up"
	cat <<EOF
http {
	access_log off;
	client_body_temp_path $WORK/ngx-up/body;
	proxy_temp_path $WORK/ngx-up/proxy;
	fastcgi_temp_path $WORK/ngx-up/fcgi;
	uwsgi_temp_path $WORK/ngx-up/uwsgi;
	scgi_temp_path $WORK/ngx-up/scgi;
	sendfile on;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$UP_PORT;
		root $WORK/up;
		default_type application/octet-stream;
	}
}
EOF
} >"$WORK/ngx-up/nginx.conf"

# nginx as the TLS reverse proxy: certificate optional (as mtlsgw's
# default), identity headers as mtlsgw sends them, streamed (no temp file).
{
	nginx_common "$WORK/ngx-front"
	cat <<EOF
http {
	access_log off;
	client_body_temp_path $WORK/ngx-front/body;
	proxy_temp_path $WORK/ngx-front/proxy;
	fastcgi_temp_path $WORK/ngx-front/fcgi;
	uwsgi_temp_path $WORK/ngx-front/uwsgi;
	scgi_temp_path $WORK/ngx-front/scgi;
	keepalive_requests 1000000;
	upstream backend {
		server 127.0.0.1:$UP_PORT;
		keepalive 32;
	}
	server {
		listen 127.0.0.1:$NGX_PORT ssl;
		ssl_certificate $WORK/certs/server.crt;
		ssl_certificate_key $WORK/certs/server.key;
		ssl_client_certificate $WORK/certs/client-ca.pem;
		ssl_verify_client optional;
		ssl_verify_depth 2;
		ssl_protocols TLSv1.2 TLSv1.3;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Client-Verify \$ssl_client_verify;
			proxy_set_header X-Client-Subject \$ssl_client_s_dn;
			proxy_set_header X-Client-Issuer \$ssl_client_i_dn;
			proxy_set_header X-Client-Serial \$ssl_client_serial;
			proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto https;
			proxy_max_temp_file_size 0;
		}
	}
}
EOF
} >"$WORK/ngx-front/nginx.conf"

cat >"$WORK/mtlsgw.conf" <<EOF
[server]
listen = 127.0.0.1:$PORT
workers = $WORKERS
access_log = off
[tls]
cert = $WORK/certs/server.crt
key = $WORK/certs/server.key
client_ca = $WORK/certs/client-ca.pem
[upstream backend]
server = 127.0.0.1:$UP_PORT
keepalive = 32
[location /]
proxy_pass = http://backend
[bpf]
mode = $BPF
EOF

wait_up() { # name url pid log
	i=0
	until curl -s -o /dev/null --cacert "$WORK/certs/ca.crt" \
		--resolve "localhost:$PORT:127.0.0.1" \
		--resolve "localhost:$NGX_PORT:127.0.0.1" "$2"; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$3" 2>/dev/null; then
			echo "bench-proxy: $1 did not start:" >&2
			cat "$4" >&2
			exit 1
		fi
		sleep 0.1
	done
}

nginx -p "$WORK/ngx-up" -c "$WORK/ngx-up/nginx.conf" 2>"$WORK/ngx-up/stderr" &
PIDS="$PIDS $!"
wait_up "upstream nginx" "http://127.0.0.1:$UP_PORT/small" "$!" "$WORK/ngx-up/stderr"

start() { # mtlsgw | nginx -> PID, URL
	if [ "$1" = mtlsgw ]; then
		"$BIN" -c "$WORK/mtlsgw.conf" 2>"$WORK/mtlsgw.log" &
		PID=$! P=$PORT LOG="$WORK/mtlsgw.log"
	else
		nginx -p "$WORK/ngx-front" -c "$WORK/ngx-front/nginx.conf" \
			2>"$WORK/ngx-front/stderr" &
		PID=$! P=$NGX_PORT LOG="$WORK/ngx-front/stderr"
	fi
	PIDS="$PIDS $PID"
	wait_up "$1" "https://localhost:$P/small" "$PID" "$LOG"
}

stop() {
	kill "$PID"
	wait "$PID" 2>/dev/null || true
}

measure() { # mtlsgw | nginx -> RPS, MBS
	start "$1"
	RPS=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$P/small" |
		awk '/^Requests\/sec/ { print $2 }')
	MBS=0
	for i in 1 2 3; do
		out=$(curl -s -o /dev/null -w '%{size_download} %{speed_download}' \
			--cacert "$WORK/certs/ca.crt" --cert "$WORK/certs/client1.crt" \
			--key "$WORK/certs/client1.key" \
			--resolve "localhost:$P:127.0.0.1" "https://localhost:$P/big")
		size=${out% *} speed=${out#* }
		if [ "$size" != "$BIG_SIZE" ]; then
			echo "bench-proxy: $1: download got $size of $BIG_SIZE bytes" >&2
			exit 1
		fi
		MBS=$(awk -v a="$MBS" -v b="$speed" 'BEGIN { b /= 1048576; print (a > b ? a : b) }')
	done
	stop
	RPS=${RPS:-0}
}

echo "bench-proxy: wrk -t$THREADS -c$CONNS ${SECS}s (1 KiB), curl ${BIG_MB} MB x3, $WORKERS workers each, $(nproc) CPUs, mtlsgw bpf=$BPF"
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
m_rps=0 m_mbs=0 n_rps=0 n_mbs=0
r=0
while [ $r -lt "$ROUNDS" ]; do
	measure mtlsgw
	m_rps=$(max "$m_rps" "$RPS") m_mbs=$(max "$m_mbs" "$MBS")
	measure nginx
	n_rps=$(max "$n_rps" "$RPS") n_mbs=$(max "$n_mbs" "$MBS")
	echo "round $((r + 1)): mtlsgw $m_rps req/s $m_mbs MB/s; nginx $n_rps req/s $n_mbs MB/s (best so far)"
	r=$((r + 1))
done

awk -v a="$m_rps" -v b="$n_rps" -v c="$m_mbs" -v d="$n_mbs" -v mb="$BIG_MB" 'BEGIN {
	printf "%-28s %12s %12s %14s\n", "", "mtlsgw", "nginx", "mtlsgw/nginx"
	printf "%-28s %12.0f %12.0f %14.3f\n", "proxied 1 KiB requests/s", a, b, (b > 0 ? a / b : 0)
	printf "%-28s %12.1f %12.1f %14.3f\n", "proxied " mb " MB download MB/s", c, d, (d > 0 ? c / d : 0)
}'
