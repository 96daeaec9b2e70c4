# SPDX-License-Identifier: MIT
"""Every example configuration in conf/ passes `mtlsgw -t` (exit 0), so the
examples never go stale. The demo config uses ../certs, so the repository's
certs/ (ignored by git) is filled by gen-certs.sh first; gen-certs.sh is
idempotent and leaves existing files alone."""

import subprocess

import pytest

from helpers import REPO

CONFS = sorted((REPO / "conf").glob("*.conf"))


@pytest.fixture(scope="module")
def repo_certs():
    p = subprocess.run([str(REPO / "scripts" / "gen-certs.sh"), str(REPO / "certs")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_there_are_examples():
    assert any(c.name == "mtlsgw.conf" for c in CONFS)


@pytest.mark.parametrize("conf", CONFS, ids=lambda c: c.name)
def test_example_config_checks(repo_certs, mtlsgw_bin, conf):
    p = subprocess.run([str(mtlsgw_bin), "-t", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, f"{conf}:\n{p.stdout}{p.stderr}"


def test_example_config_checks_from_elsewhere(repo_certs, mtlsgw_bin, tmp_path):
    """Relative paths resolve against the config file's folder, not the
    current directory."""
    p = subprocess.run([str(mtlsgw_bin), "-t", "-c", str(REPO / "conf" / "mtlsgw.conf")],
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
