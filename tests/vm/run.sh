#!/bin/bash
# SPDX-License-Identifier: MIT
# Guest side of scripts/vm-test.sh: runs each tests/vm/test_*.sh (or those
# named in MTLSGW_VM_TESTS) in the VM, bounded in time, and prints
# "VMTEST-RESULT: N passed, N failed" from their VMTEST lines. A script that
# exits non-zero or times out without reporting a failure counts as one.
set -u
cd "$(dirname "$0")/../.." || exit 1
PER_TEST_TIMEOUT=${VMTEST_PER_TEST_TIMEOUT:-600}
out=$(mktemp)
passed=0 failed=0

echo "vm: $(uname -r), tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
for t in tests/vm/test_*.sh; do
	name=$(basename "$t" .sh)
	name=${name#test_}
	if [ -n "${MTLSGW_VM_TESTS:-}" ] &&
		! grep -qw -- "$name" <<<"$MTLSGW_VM_TESTS"; then
		continue
	fi
	echo "== $name"
	t0=$(date +%s)
	timeout -k 5 "$PER_TEST_TIMEOUT" bash "$t" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^VMTEST: PASS ' "$out")
	f=$(grep -c '^VMTEST: FAIL ' "$out")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "VMTEST: FAIL $name: script exited $rc"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	echo "== $name: $p passed, $f failed ($(($(date +%s) - t0))s)"
done
rm -f "$out"
echo "VMTEST-RESULT: $passed passed, $failed failed"
