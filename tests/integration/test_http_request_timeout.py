# SPDX-License-Identifier: MIT
"""request_timeout: a client that completes the TLS handshake and then
sends half a request and stalls gets a 408 and the connection closed once
request_timeout passes, not later; a fresh request on the same daemon is
served meanwhile. An idle keep-alive connection (no request started) is
closed after request_timeout too."""

import time

import pytest

from helpers import connect_tls, read_all, request


@pytest.mark.timeout(60)
def test_idle_request_times_out(gateway_factory, certs):
    gw = gateway_factory(server={"request_timeout": "2s"})
    s = connect_tls(gw.port, certs)
    try:
        s.sendall(b"GET /main.html HTTP/1.1\r\nHost: local")
        t0 = time.monotonic()
        assert request(gw.port, certs, "/main.html").status == 200
        data = read_all(s, timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert elapsed < 6, f"connection kept {elapsed:.1f} s with request_timeout 2s"
    assert elapsed > 1, f"closed after {elapsed:.1f} s, before request_timeout 2s"
    assert data.startswith(b"HTTP/1.1 408"), data[:200]


@pytest.mark.timeout(60)
def test_idle_keepalive_closed(gateway_factory, certs):
    gw = gateway_factory(server={"request_timeout": "2s"})
    s = connect_tls(gw.port, certs)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        t0 = time.monotonic()
        data = read_all(s, timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert elapsed < 6, f"idle keep-alive connection kept {elapsed:.1f} s (request_timeout 2s)"
