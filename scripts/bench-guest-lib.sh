# SPDX-License-Identifier: MIT
# Sourced (bash) by the benchmarks that run themselves in the VM of
# scripts/vm-test.sh (bench-ktls.sh, bench-hold-vm.sh), at the start of
# their guest part: the work folder W, removed on exit with every PID in
# the array pids; the VMTEST PASS/FAIL lines (ok, bad) and their counts;
# the certificates in CERTS; waiting for a listener.
#
#   . scripts/bench-guest-lib.sh NAME

W=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
passed=0 failed=0
pids=()
guest_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$W"
}
trap guest_cleanup EXIT
ok() { echo "VMTEST: PASS $1"; passed=$((passed + 1)); }
bad() { echo "VMTEST: FAIL $1: $2"; failed=$((failed + 1)); }

CERTS=${VMTEST_CERTS:-$W/certs}
[ -f "$CERTS/client1.crt" ] || scripts/gen-certs.sh "$CERTS" >/dev/null || exit 1

port_free() { [ -z "$(ss -Hltn "sport = :$1")" ]; }
wait_listen() { # PORT [TRIES, 0.1 s apart; default 200]
	for _ in $(seq "${2:-200}"); do
		port_free "$1" || return 0
		sleep 0.1
	done
	return 1
}
