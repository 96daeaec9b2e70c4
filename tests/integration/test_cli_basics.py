# SPDX-License-Identifier: MIT
"""Command line: --version prints a version and exits 0; -h prints usage
naming -c and -t and exits 0; an unknown option exits non-zero."""

import subprocess


def _run(binary, *args):
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=10)


def test_version(mtlsgw_bin):
    p = _run(mtlsgw_bin, "--version")
    assert p.returncode == 0, p.stderr
    assert "mtlsgw" in (p.stdout + p.stderr).lower()


def test_help(mtlsgw_bin):
    p = _run(mtlsgw_bin, "-h")
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert "-c" in out and "-t" in out


def test_unknown_option(mtlsgw_bin):
    p = _run(mtlsgw_bin, "--no-such-option")
    assert p.returncode != 0
