# SPDX-License-Identifier: MIT
"""Fixtures of the BPF tests. They need root and a kernel with BTF; on a
laptop without them they skip, in CI (CI=true) that is a failure.

Two kinds of tests: test_probe_* drive daemon/limits.c through
limits_probe on plain TCP; test_gateway_* run the real daemon with real
client certificates, through the integration suite's fixtures (certs,
site, gateway_factory), which are loaded from tests/integration/conftest.py
and used as they are.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "integration"))

from bpfhelp import (PROBE, REPO, Probe, bpf_unavailable_reason,  # noqa: E402
                     cleanup_instance, in_ci, unique_instance)


def _integration_conftest():
    spec = importlib.util.spec_from_file_location(
        "mtlsgw_integration_conftest", HERE.parent / "integration" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# Every fixture and hook of the integration conftest, as it is there.
_integ = _integration_conftest()
for _name, _obj in vars(_integ).items():
    if _name.startswith("pytest_") or hasattr(_obj, "_pytestfixturefunction"):
        globals()[_name] = _obj


@pytest.fixture(scope="session")
def bpf_ok():
    why = bpf_unavailable_reason()
    if why:
        if in_ci():
            pytest.fail(f"BPF tests cannot run in CI: {why}")
        pytest.skip(why)
    return True


@pytest.fixture(scope="session")
def probe_bin(bpf_ok):
    rel = str(PROBE.relative_to(REPO))
    r = subprocess.run(["make", "-s", rel], cwd=REPO, capture_output=True,
                       text=True)
    assert r.returncode == 0, f"make {rel} failed:\n{r.stdout}{r.stderr}"
    return PROBE


@pytest.fixture
def instance():
    name = unique_instance()
    cleanup_instance(name)
    yield name
    cleanup_instance(name)


@pytest.fixture
def start_probe(probe_bin, tmp_path):
    """start_probe(instance, limits_text, mode="auto", user=None) -> Probe
    (started; killed and removed at the end of the test)."""
    started = []

    def start(inst, limits="", mode="auto", user=None, expect_ready=True,
              addr="127.0.0.1"):
        p = Probe(inst, tmp_path, limits, mode, user, addr)
        started.append(p)
        ok = p.start()
        if expect_ready:
            assert ok, f"probe did not start:\n{p.log()}"
        return p

    yield start
    for p in started:
        p.close()
    for p in started:
        cleanup_instance(p.instance)
