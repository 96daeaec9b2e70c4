# SPDX-License-Identifier: MIT
"""SIGTERM while proxied requests wait on a stalled upstream (their client
connections suspended in libmicrohttpd) and while a WebSocket tunnel is
open: the daemon still exits 0 at the drain deadline (MHD refuses to stop
with suspended connections: the proxy resumes them first)."""

import base64
import os
import signal
import threading
import time

import pytest

from helpers import connect_tls, request, wait_until
from upstream_server import gateway_opts, upstream  # noqa: F401 (fixture)


@pytest.mark.timeout(60)
def test_stop_with_suspended_and_tunnelled(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, up={"read_timeout": "60s"},
                                        loc={"websocket": "yes"},
                                        server={"drain_timeout": "2s"}))
    results = []

    def stalled(i):
        try:
            results.append(request(gw.port, certs, f"/svc/s{i}?stall=30", timeout=30).status)
        except Exception as e:  # the gateway may close instead of answering
            results.append(type(e).__name__)

    threads = [threading.Thread(target=stalled, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    ws = connect_tls(gw.port, certs)
    key = base64.b64encode(os.urandom(16)).decode()
    ws.sendall((f"GET /svc/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = ws.recv(65536)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert wait_until(lambda: len(upstream.requests) >= 4, 5)

    t0 = time.monotonic()
    gw.send_signal(signal.SIGTERM)
    rc = gw.wait(20)
    assert rc == 0, f"exit {rc}; stderr:\n{gw.stderr()[-3000:]}"
    assert time.monotonic() - t0 < 10
    for t in threads:
        t.join(30)
    ws.close()
    # Each stalled client got a 502 or a closed connection, never a hang.
    assert len(results) == 3 and all(r in (502, 503, "ConnectionError") or
                                     isinstance(r, str) for r in results), results
