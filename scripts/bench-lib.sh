# SPDX-License-Identifier: MIT
# Sourced by scripts/bench*.sh (sh or bash): a work folder that goes away
# on exit with every process whose PID the script added to PIDS, and a
# free loopback port.
#
#   . scripts/bench-lib.sh
#   bench_work NAME        # WORK=/tmp/mtlsgw-NAME.XXXXXX, PIDS=, trap set

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
