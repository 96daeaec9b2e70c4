#!/bin/bash
# SPDX-License-Identifier: MIT
# Run every test suite of mtlsgw and end with one line of counts:
#   N passed, N failed, N skipped
# Suites: format check, layer check (scripts/check-layers.sh), C unit
# tests (cmocka), integration and BPF tests
# (pytest against the real daemon), the unit and integration tests again on
# the ASan+UBSan build (build-asan, `make asan`), a short run of every fuzz
# target (scripts/fuzz.sh), kTLS tests in a VM (scripts/vm-test.sh).
# MTLSGW_SUITES="unit integration" runs a subset. A suite that is missing
# or runs zero tests is a failure; so is a skipped test under CI=true
# (tests/integration/conftest.py).
#   MTLSGW_FUZZ_SECONDS   seconds per fuzz target (default 15)
#   MTLSGW_ASAN_TESTS     pytest arguments of the asan suite (default: the
#                         whole integration suite but its memory bounds,
#                         see ASAN_DEFAULT)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
SUITES=${MTLSGW_SUITES:-"format layers unit integration bpf asan fuzz vm"}
PYTHON=/usr/bin/python3	# Debian's, where python3-pytest lives
# Sanitizer settings for the asan suite: stop at the first report, with a
# stack; leaks are checked when a daemon exits (after SIGTERM).
SAN_ENV=(UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=0:print_summary=1)
# The asan suite runs every integration test except the ones that bound
# the daemon's RSS (ASan's shadow memory and quarantine make RSS say
# nothing about the daemon's buffers) and the 200-client load test (a
# capacity test: the ~3x slower build on a loaded 2-core machine hits the
# 10 s handshake_timeout). The plain run keeps all of them.
ASAN_DEFAULT="tests/integration --ignore=tests/integration/test_proxy_rss_bounded.py
--ignore=tests/integration/test_load_concurrent.py
--deselect=tests/integration/test_relay_slow_and_aborted_clients.py::test_slow_readers_bounded_memory"
passed=0 failed=0 skipped=0
failed_suites=""

add() { # suite passed failed skipped
	local f=$3
	if [ "$2" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "== $1: ran zero tests (missing, not built, or all skipped)"
		f=1
	fi
	passed=$((passed + $2)); failed=$((failed + f)); skipped=$((skipped + $4))
	[ "$f" -gt 0 ] && failed_suites="$failed_suites $1"
	echo "== $1: $2 passed, $f failed, $4 skipped"
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

run_pytest() { # suite dir [pytest args...]
	local log rc line suite=$1 dir=$2
	shift 2
	[ -d "$dir" ] && ls "$dir"/test_*.py >/dev/null 2>&1 || {
		echo "== $suite: no tests in $dir"; add "$suite" 0 0 0; return; }
	log=$(mktemp)
	$PYTHON -m pytest -ra -p no:cacheprovider "${@:-$dir}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^=+ .*(passed|failed|error|skipped).* in [0-9.]+s' "$log" | tail -1)
	read -r p f s <<<"$(pytest_counts "$line")"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # collection error, crash
	rm -f "$log"
	add "$suite" "$p" "$f" "$s"
}

# cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s),
# listed below:"; a binary that crashes before its summary (or a sanitizer
# report) counts as one failure.
run_unit() { # suite dir
	local p=0 f=0 t src out rc tp tf
	for src in tests/unit/test_*.c; do
		t="$2/$(basename "${src%.c}")"
		if [ ! -x "$t" ]; then
			echo "FAILED: $t not built (make $t)"
			f=$((f + 1))
			continue
		fi
		out=$("$t" 2>&1); rc=$?
		echo "$out"
		tp=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' <<<"$out" | tail -1)
		tf=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*listed below.*/\1/p' <<<"$out" | tail -1)
		tp=${tp:-0}; tf=${tf:-0}
		if [ "$rc" -ne 0 ] && [ "$tf" -eq 0 ]; then tf=1; fi
		p=$((p + tp)); f=$((f + tf))
		[ "$tf" -gt 0 ] && echo "FAILED: $t"
	done
	add "$1" "$p" "$f" 0
}

for suite in $SUITES; do
	echo "== suite: $suite"
	case $suite in
	format)
		if make -s format-check; then add format 1 0 0; else add format 0 1 0; fi ;;
	layers)
		if scripts/check-layers.sh daemon; then add layers 1 0 0; else add layers 0 1 0; fi ;;
	unit) run_unit unit "$BUILD"/tests/unit ;;
	integration) run_pytest integration tests/integration ;;
	bpf) run_pytest bpf tests/bpf ;;
	asan)
		# The same tests on the sanitizer build: any ASan/UBSan/LSan
		# report fails a unit binary (exit code) or the integration
		# test whose daemon printed it (conftest.py).
		if [ ! -x "$ASAN_BUILD/mtlsgw" ]; then
			echo "== asan: $ASAN_BUILD/mtlsgw not built (make asan)"
			add asan-unit 0 0 0
		else
			export "${SAN_ENV[@]}"
			run_unit asan-unit "$ASAN_BUILD"/tests/unit
			# shellcheck disable=SC2086
			MTLSGW_BIN=$PWD/$ASAN_BUILD/mtlsgw run_pytest asan-integration \
				tests/integration ${MTLSGW_ASAN_TESTS:-$ASAN_DEFAULT}
			unset UBSAN_OPTIONS ASAN_OPTIONS
		fi ;;
	fuzz)
		log=$(mktemp)
		scripts/fuzz.sh "${MTLSGW_FUZZ_SECONDS:-15}" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		line=$(grep -E '^fuzz: [0-9]+ targets, [0-9]+ failed' "$log" | tail -1)
		n=$(awk '{print $2}' <<<"$line"); f=$(awk '{print $4}' <<<"$line")
		n=${n:-0}; f=${f:-0}
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
		rm -f "$log"
		add fuzz $((n > f ? n - f : 0)) "$f" 0 ;;
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
			echo "== vm: scripts/vm-test.sh missing"
			add vm 0 0 0
		fi ;;
	*) echo "unknown suite $suite"; add "$suite" 0 1 0 ;;
	esac
done

[ -n "$failed_suites" ] && echo "failing suites:$failed_suites"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
