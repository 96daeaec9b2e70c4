# SPDX-License-Identifier: MIT
"""Graceful stop: SIGTERM while a 100 MB download runs stops new
connections, lets the download finish byte-exact (sha256) within the drain
deadline, and the daemon exits 0. SIGINT stops an idle daemon with exit 0
too."""

import signal
import subprocess
import time

import pytest

from helpers import HOST, request, sha256_file


@pytest.mark.timeout(90)
def test_sigterm_during_download(gateway_factory, certs, site, tmp_path):
    gw = gateway_factory(server={"drain_timeout": "20s"})
    out = tmp_path / "100mb.bin"
    # ~4 s at 25 MB/s: the signal arrives mid-transfer.
    cmd = ["curl", "-sS", "--max-time", "60", "--limit-rate", "25M", "--cacert",
           str(certs.ca), "--resolve", f"localhost:{gw.port}:{HOST}", "-o", str(out),
           "-w", "%{http_code}", f"https://localhost:{gw.port}/data/100mb.bin"]
    dl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert dl.poll() is None, "download finished before the signal: test is void"
        assert out.exists() and 0 < out.stat().st_size < site.size["100mb.bin"]
        t_sig = time.monotonic()
        gw.send_signal(signal.SIGTERM)

        # New clients are not served any more (refused or never answered).
        time.sleep(0.3)
        try:
            r = request(gw.port, certs, "/health", timeout=2)
            served = r.status
        except Exception:  # noqa: BLE001 - any failure is fine here
            served = None
        assert served is None, f"a new request was served ({served}) after SIGTERM"

        stdout, stderr = dl.communicate(timeout=60)
    finally:
        if dl.poll() is None:
            dl.kill()
            dl.wait()
    assert dl.returncode == 0, f"download broken by the stop: {stderr}"
    assert stdout.strip() == "200"
    assert sha256_file(out) == site.sha256["100mb.bin"], "download not byte-exact"
    rc = gw.wait(timeout=25)
    assert rc == 0, f"exit code {rc} after SIGTERM; stderr:\n{gw.stderr()[-2000:]}"
    assert time.monotonic() - t_sig < 25


@pytest.mark.timeout(30)
def test_sigint_idle(gateway_factory, certs):
    gw = gateway_factory()
    assert request(gw.port, certs, "/health").status == 200
    gw.send_signal(signal.SIGINT)
    rc = gw.wait(timeout=15)
    assert rc == 0, f"exit code {rc} after SIGINT; stderr:\n{gw.stderr()[-2000:]}"


@pytest.mark.timeout(30)
def test_sigterm_idle_is_quick(gateway_factory, certs):
    gw = gateway_factory()
    assert request(gw.port, certs, "/health").status == 200
    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    rc = gw.wait(timeout=15)
    assert rc == 0
    assert time.monotonic() - t0 < 3, "an idle daemon should stop at once"
