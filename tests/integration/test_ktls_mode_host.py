# SPDX-License-Identifier: MIT
"""kTLS modes on the machine the tests run on. Where the kernel has no
`tls` ULP (this project's CI): `ktls = on` refuses to start and says why,
`auto` starts on the userspace relay and logs one line saying kTLS is not
in use and why, and each request's access-log line names the fallback
reason (`kernel has no ktls`; `ktls off` with `ktls = off`). Where the
kernel has it, `on` starts and says kTLS is available. kTLS itself is
tested for real in the VM (scripts/vm-test.sh)."""

import subprocess

import pytest

from helpers import free_port, ktls_available, request, wait_until


def test_ktls_on(gateway_factory, certs, tmp_path):
    if ktls_available():
        gw = gateway_factory(tls={"ktls": "on"})
        assert "kTLS available" in gw.stderr()
        return
    conf = tmp_path / "on.conf"
    conf.write_text(gateway_factory.config(free_port(), tmp_path, tls={"ktls": "on"}))
    p = subprocess.run([str(gateway_factory.binary), "-c", str(conf)],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p.stderr
    assert "ktls = on, but kTLS is not available" in p.stderr
    assert "tls ULP" in p.stderr  # the reason, not just the refusal


@pytest.mark.parametrize("mode,reason", [("auto", "kernel has no ktls"), ("off", "ktls off")])
def test_fallback_reason_logged(gateway_factory, certs, mode, reason):
    if ktls_available() and mode == "auto":
        pytest.skip("this kernel has kTLS: auto takes it (tested in the VM)")
    gw = gateway_factory(tls={"ktls": mode})
    if mode == "auto":
        assert "kTLS not in use" in gw.stderr()
    assert request(gw.port, certs, "/main.html").status == 200
    assert wait_until(lambda: any(l["path"] == "/main.html" for l in gw.access()))
    line = [l for l in gw.access() if l["path"] == "/main.html"][-1]
    assert line["data_path"] == "userspace"
    assert line["data_path_reason"] == reason
