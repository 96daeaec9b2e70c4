# SPDX-License-Identifier: MIT
"""The userspace relay applies backpressure and survives clients going
away: four slow readers of the 100 MB file do not make the daemon buffer
the file (RSS grows by far less than the bytes outstanding), and clients
that vanish mid-download (killed curl, reset socket) leave the daemon
serving others, with no crash."""

import signal
import socket
import struct
import subprocess
import time

import pytest

from helpers import HOST, build_request, connect_tls, request


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _curl_slow(gw, certs, rate):
    cmd = ["curl", "-sS", "--max-time", "60", "--limit-rate", rate, "--cacert",
           str(certs.ca), "--resolve", f"localhost:{gw.port}:{HOST}", "-o", "/dev/null",
           f"https://localhost:{gw.port}/data/100mb.bin"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.timeout(60)
def test_slow_readers_bounded_memory(gateway_factory, certs):
    gw = gateway_factory()
    base = _rss_kb(gw.proc.pid)
    readers = [_curl_slow(gw, certs, "2M") for _ in range(4)]
    try:
        peak = base
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3:
            peak = max(peak, _rss_kb(gw.proc.pid))
            time.sleep(0.1)
        assert all(r.poll() is None for r in readers), "slow downloads ended early"
        # The other clients are still served promptly.
        t1 = time.monotonic()
        assert request(gw.port, certs, "/health", timeout=5).status == 200
        assert time.monotonic() - t1 < 1.0
    finally:
        for r in readers:
            r.kill()
            r.wait()
    grew_mb = (peak - base) / 1024
    assert grew_mb < 48, f"RSS grew by {grew_mb:.0f} MB with 4 slow readers"


@pytest.mark.timeout(60)
def test_clients_vanishing_mid_download(gateway_factory, certs):
    gw = gateway_factory()
    # curl killed mid-transfer
    p = _curl_slow(gw, certs, "5M")
    time.sleep(1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    # a TLS client that reads a little, then resets the connection
    for version in ("1.2", "1.3"):
        s = connect_tls(gw.port, certs, version)
        s.sendall(build_request("GET", "/data/100mb.bin", close=False))
        s.recv(65536)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    # a TLS client that sends close_notify in the middle of the response
    s = connect_tls(gw.port, certs, "1.3")
    s.sendall(build_request("GET", "/data/100mb.bin", close=False))
    s.recv(65536)
    s.close()
    time.sleep(0.5)
    assert gw.alive()
    for _ in range(5):
        assert request(gw.port, certs, "/main.html", timeout=5).status == 200
