# SPDX-License-Identifier: MIT
"""Drain with drain_delay: SIGTERM turns /ready 503 at once (and
mtlsgw_ready 0) while the gateway keeps accepting and serving new
connections for drain_delay; then the listeners close, a download that
was running all along completes byte-exact, and the daemon exits 0.
Without a signal /ready is 200; ready = yes and its 503 also answer HEAD."""

import signal
import socket
import subprocess

import pytest

from helpers import HOST, request, sha256_file, wait_until

DELAY = 10  # seconds of drain_delay: the test's steps fit in it on a loaded machine


def _ready_status(gw):
    try:
        return request(gw.port, gw.certs, "/ready", timeout=5).status
    except OSError:
        return None


def _refused(gw):
    try:
        with socket.create_connection((HOST, gw.port), timeout=2):
            return False
    except OSError:
        return True


@pytest.mark.timeout(120)
def test_drain_delay(gateway_factory, certs, site, tmp_path):
    gw = gateway_factory(server={"drain_timeout": "60s", "drain_delay": f"{DELAY}s"},
                         locations=[("/ready", {"ready": "yes"}),
                                    ("/metrics", {"metrics": "yes"})])
    r = request(gw.port, certs, "/ready")
    assert (r.status, r.text()) == (200, "ready\n")
    assert "mtlsgw_ready 1\n" in request(gw.port, certs, "/metrics").text()

    out = tmp_path / "100mb.bin"
    # About 12 s at 8 MB/s: longer than the delay, so it spans the drain.
    cmd = ["curl", "-sS", "--max-time", "100", "--limit-rate", "8M", "--cacert",
           str(certs.ca), "--resolve", f"localhost:{gw.port}:{HOST}", "-o", str(out),
           "-w", "%{http_code}", f"https://localhost:{gw.port}/data/100mb.bin"]
    dl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: out.exists() and out.stat().st_size > 0, timeout=10)
        gw.send_signal(signal.SIGTERM)

        # /ready says 503 as soon as the signal is handled ...
        assert wait_until(lambda: _ready_status(gw) == 503, timeout=5), gw.stderr()[-2000:]
        r = request(gw.port, certs, "/ready")
        assert r.status == 503 and "draining" in r.text(), r
        r = request(gw.port, certs, "/ready", method="HEAD")
        assert r.status == 503
        # ... while new connections are still accepted and served.
        r = request(gw.port, certs, "/health")
        assert r.status == 200, r
        r = request(gw.port, certs, "/protected/", cert="client1")
        assert r.status == 200, r
        assert "mtlsgw_ready 0\n" in request(gw.port, certs, "/metrics").text()
        assert dl.poll() is None, "download finished inside the delay: test is void"
        assert "still accepting for 10000 ms (drain_delay)" in gw.stderr()

        # After the delay the listeners close; the download goes on.
        assert wait_until(lambda: _refused(gw), timeout=DELAY + 20), "listener still open"
        assert "draining: listeners closed" in gw.stderr()
        stdout, stderr = dl.communicate(timeout=90)
    finally:
        if dl.poll() is None:
            dl.kill()
            dl.wait()
    assert dl.returncode == 0, f"download broken by the drain: {stderr}"
    assert stdout.strip() == "200"
    assert sha256_file(out) == site.sha256["100mb.bin"], "download not byte-exact"
    rc = gw.wait(timeout=30)
    assert rc == 0, f"exit code {rc}; stderr:\n{gw.stderr()[-2000:]}"


@pytest.mark.timeout(30)
def test_no_drain_delay_closes_listeners_at_once(gateway_factory, certs):
    """drain_delay unset (0): today's behaviour, the port goes at once."""
    gw = gateway_factory(locations=[("/ready", {"ready": "yes"})])
    assert request(gw.port, certs, "/ready").status == 200
    gw.send_signal(signal.SIGTERM)
    assert gw.wait(timeout=15) == 0
    assert "still accepting" not in gw.stderr()
