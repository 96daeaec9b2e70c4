# SPDX-License-Identifier: MIT
# Sourced by scripts/bench*.sh (sh or bash): a work folder that goes away
# on exit with every process whose PID the script added to PIDS, and a
# free loopback port, and a redis-server on loopback.
#
#   . scripts/bench-lib.sh
#   bench_work NAME        # WORK=/tmp/mtlsgw-NAME.XXXXXX, PIDS=, trap set
#   bench_redis DIR PORT [redis-server args]   # REDIS_PID set

bench_cleanup() {
	for p in $PIDS; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}

bench_work() {
	WORK=$(mktemp -d "/tmp/mtlsgw-$1.XXXXXX")
	PIDS=
	trap bench_cleanup EXIT INT TERM
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# redis-server on 127.0.0.1:PORT in the background, files in DIR, no
# persistence; REDIS_PID is its PID (the caller stops it). Returns once it
# answers PING; exits the script if it does not within 10 s.
bench_redis() {
	bench_redis_dir=$1 bench_redis_port=$2
	shift 2
	mkdir -p "$bench_redis_dir"
	redis-server --bind 127.0.0.1 --port "$bench_redis_port" --dir "$bench_redis_dir" \
		--save "" --appendonly no --daemonize no --logfile "$bench_redis_dir/log" "$@" &
	REDIS_PID=$!
	bench_redis_try=0
	until [ "$(redis-cli -p "$bench_redis_port" PING 2>/dev/null)" = PONG ]; do
		bench_redis_try=$((bench_redis_try + 1))
		[ $bench_redis_try -lt 100 ] || {
			echo "$(basename "$0"): redis-server on port $bench_redis_port did not start" >&2
			exit 1
		}
		sleep 0.1
	done
}
