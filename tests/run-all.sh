#!/bin/bash
# SPDX-License-Identifier: MIT
# Run every test suite of mtlsgw and end with one line of counts:
#   N passed, N failed, N skipped
# Suites: format check, layer check (scripts/check-layers.sh), C unit
# tests (cmocka), integration and BPF tests
# (pytest against the real daemon), kTLS tests in a VM (scripts/vm-test.sh).
# MTLSGW_SUITES="unit integration" runs a subset.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SUITES=${MTLSGW_SUITES:-"format layers unit integration bpf vm"}
PYTHON=/usr/bin/python3	# Debian's, where python3-pytest lives
passed=0 failed=0 skipped=0
failed_suites=""

add() { # suite passed failed skipped
	passed=$((passed + $2)); failed=$((failed + $3)); skipped=$((skipped + $4))
	[ "$3" -gt 0 ] && failed_suites="$failed_suites $1"
	echo "== $1: $2 passed, $3 failed, $4 skipped"
}

# pytest's summary line -> "P F S" (errors count as failures)
pytest_counts() {
	local line=$1 p f s e
	p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
	f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || true)
	s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || true)
	e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || true)
	echo "${p:-0} $(( ${f:-0} + ${e:-0} )) ${s:-0}"
}

run_pytest() { # suite dir
	local log rc line
	[ -d "$2" ] && ls "$2"/test_*.py >/dev/null 2>&1 || { add "$1" 0 0 0; return; }
	log=$(mktemp)
	$PYTHON -m pytest -ra -p no:cacheprovider "$2" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^=+ .*(passed|failed|error|skipped).* in [0-9.]+s' "$log" | tail -1)
	read -r p f s <<<"$(pytest_counts "$line")"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # collection error, crash
	rm -f "$log"
	add "$1" "$p" "$f" "$s"
}

for suite in $SUITES; do
	echo "== suite: $suite"
	case $suite in
	format)
		if make -s format-check; then add format 1 0 0; else add format 0 1 0; fi ;;
	layers)
		if scripts/check-layers.sh daemon; then add layers 1 0 0; else add layers 0 1 0; fi ;;
	unit)
		# cmocka prints "[  PASSED  ] N test(s)." and
		# "[  FAILED  ] N test(s), listed below:"; a binary that crashes
		# before its summary counts as one failure.
		p=0 f=0
		for t in "$BUILD"/tests/unit/test_*; do
			[ -x "$t" ] || continue
			out=$("$t" 2>&1); rc=$?
			echo "$out"
			tp=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' <<<"$out" | tail -1)
			tf=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*listed below.*/\1/p' <<<"$out" | tail -1)
			tp=${tp:-0}; tf=${tf:-0}
			if [ "$rc" -ne 0 ] && [ "$tf" -eq 0 ]; then tf=1; fi
			p=$((p + tp)); f=$((f + tf))
			[ "$tf" -gt 0 ] && echo "FAILED: $t"
		done
		add unit "$p" "$f" 0 ;;
	integration) run_pytest integration tests/integration ;;
	bpf) run_pytest bpf tests/bpf ;;
	vm)
		if [ -x scripts/vm-test.sh ]; then
			log=$(mktemp)
			scripts/vm-test.sh 2>&1 | tee "$log"
			rc=${PIPESTATUS[0]}
			line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
			p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
			p=${p:-0}; f=${f:-0}
			if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
			rm -f "$log"
			add vm "$p" "$f" 0
		else
			add vm 0 0 0
		fi ;;
	*) echo "unknown suite $suite"; add "$suite" 0 1 0 ;;
	esac
done

[ -n "$failed_suites" ] && echo "failing suites:$failed_suites"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
