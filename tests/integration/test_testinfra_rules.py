# SPDX-License-Identifier: MIT
"""The test machinery's own rules, each checked by running it on a case
that must fail:
- tests/run-all.sh fails a unit test that is not built, a suite that ran
  zero tests (nothing built) and a suite that does not exist;
- under CI=true a skipped test is a failure (this conftest's hook), and
  without CI it stays a skip;
- a daemon that prints a sanitizer report on its stderr fails the test
  that started it, even when the test itself passed."""

import os
import subprocess
import sys

from helpers import REPO

INTEG = REPO / "tests" / "integration"


def _runner(tmp_path, suites, **env):
    e = dict(os.environ, MTLSGW_SUITES=suites, **env)
    return subprocess.run([str(REPO / "tests" / "run-all.sh")], cwd=REPO, env=e,
                          capture_output=True, text=True, timeout=120)


def test_runner_unbuilt_unit_tests_fail(tmp_path):
    p = _runner(tmp_path, "unit", BUILD=str(tmp_path / "nothing-built"))
    assert p.returncode != 0, p.stdout
    n = len(list((REPO / "tests" / "unit").glob("test_*.c")))
    assert p.stdout.count("not built") == n, p.stdout
    assert p.stdout.strip().splitlines()[-1] == f"0 passed, {n} failed, 0 skipped", p.stdout


def test_runner_zero_tests_fails(tmp_path):
    p = _runner(tmp_path, "asan", ASAN_BUILD=str(tmp_path / "nothing-built"))
    assert p.returncode != 0, p.stdout
    assert "ran zero tests" in p.stdout, p.stdout
    assert p.stdout.strip().splitlines()[-1] == "0 passed, 1 failed, 0 skipped", p.stdout


def test_runner_unknown_suite_fails(tmp_path):
    p = _runner(tmp_path, "nosuchsuite")
    assert p.returncode != 0, p.stdout
    assert p.stdout.strip().splitlines()[-1] == "0 passed, 1 failed, 0 skipped", p.stdout


def _pytest_with_conftest(tmp_path, body, **env):
    """Run pytest on a one-test file under this suite's conftest (loaded as
    a plugin), in a folder of its own."""
    d = tmp_path / "inner"
    d.mkdir()
    (d / "test_inner.py").write_text(body)
    e = dict(os.environ, PYTHONPATH=str(INTEG), **env)
    e.pop("CI", None)
    # A --basetemp of the outer run (PYTEST_ADDOPTS) is a parent of D:
    # the inner pytest refuses it.
    e.pop("PYTEST_ADDOPTS", None)
    e.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest",
                           "-p", "no:cacheprovider", "--rootdir", str(d), str(d)],
                          cwd=d, env=e, capture_output=True, text=True, timeout=300)


SKIPPING = "import pytest\n\ndef test_skips():\n    pytest.skip('no such thing here')\n"


def test_skip_in_ci_is_failure(tmp_path):
    p = _pytest_with_conftest(tmp_path, SKIPPING, CI="true")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 failed" in p.stdout and "skipped under CI=true" in p.stdout, p.stdout


def test_skip_outside_ci_is_skip(tmp_path):
    p = _pytest_with_conftest(tmp_path, SKIPPING)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 skipped" in p.stdout, p.stdout


def test_sanitizer_report_fails_test(tmp_path, mtlsgw_bin):
    # A "daemon" that prints what ASan would, then runs the real one.
    wrapper = tmp_path / "mtlsgw-reporting"
    wrapper.write_text(
        "#!/bin/sh\n"
        "echo '==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x1' >&2\n"
        f"exec {mtlsgw_bin} \"$@\"\n")
    wrapper.chmod(0o755)
    body = ("from helpers import request\n\n"
            "def test_serves(gateway_factory, certs):\n"
            "    gw = gateway_factory()\n"
            "    assert request(gw.port, certs, '/health').status == 200\n")
    p = _pytest_with_conftest(tmp_path, body, MTLSGW_BIN=str(wrapper))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "sanitizer report on its stderr" in p.stdout, p.stdout
    assert "heap-use-after-free" in p.stdout, p.stdout
    assert "1 passed, 1 error" in p.stdout, p.stdout
