# SPDX-License-Identifier: MIT
"""A stalled upstream gives 504 after read_timeout, logged with the
upstream's address and the reason; meanwhile the single worker keeps
serving other requests (proxying never blocks it); a connect that never
completes gives 504 after connect_timeout."""

import threading
import time

import pytest

from helpers import request, wait_until
from upstream_server import gateway_opts, upstream  # noqa: F401 (fixture)


@pytest.mark.timeout(60)
def test_stalled_upstream_504_worker_not_blocked(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, up={"read_timeout": "2s"},
                                        server={"workers": 1}))
    result = {}

    def stalled():
        t0 = time.monotonic()
        result["resp"] = request(gw.port, certs, "/svc/slow?stall=20", timeout=30)
        result["secs"] = time.monotonic() - t0

    th = threading.Thread(target=stalled)
    th.start()
    wait_until(lambda: upstream.last() is not None, 5)
    # While that one waits on the upstream, the same worker answers others.
    for path in ("/health", "/svc/fast"):
        t0 = time.monotonic()
        r = request(gw.port, certs, path, timeout=5)
        assert r.status == 200, (path, r.status)
        assert time.monotonic() - t0 < 1.5, path
    th.join(30)
    assert result["resp"].status == 504
    assert 1.5 < result["secs"] < 8, result["secs"]
    lines = [l for l in gw.stderr().splitlines()
             if upstream.addr in l and "timed out" in l]
    assert lines, gw.stderr()
    assert "[info]" in lines[0]


@pytest.mark.timeout(60)
def test_connect_timeout_504(gateway_factory, certs):
    # TEST-NET-1 (RFC 5737) is never routed: the SYN goes nowhere. Where the
    # host has no route at all the connect fails at once: 502, still no hang.
    gw = gateway_factory(**gateway_opts("192.0.2.1:9", up={"connect_timeout": "1s"}))
    t0 = time.monotonic()
    r = request(gw.port, certs, "/svc/x", timeout=20)
    secs = time.monotonic() - t0
    assert r.status in (502, 504)
    assert secs < 6
    if r.status == 504:
        assert secs > 0.8
        assert any("192.0.2.1:9" in l and "timed out" in l for l in gw.stderr().splitlines())
