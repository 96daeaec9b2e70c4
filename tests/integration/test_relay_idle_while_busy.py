# SPDX-License-Identifier: MIT
"""On the userspace relay, request_timeout bounds an idle connection, not
one with a request in progress: a proxied request whose upstream takes
longer than request_timeout to answer still gets its answer (here the 502
for an upstream that closes without one), and a WebSocket tunnel quiet for
longer than request_timeout still carries the next frame. (The location's
own timeouts bound those: read_timeout for the upstream.)"""

import os
import time

from helpers import build_request, connect_tls, read_response
from upstream_server import gateway_opts, upstream, ws_frame, ws_read  # noqa
from test_proxy_websocket import SockReader, handshake

QUIET_S = 3.0  # longer than request_timeout (1 s)


def test_slow_upstream_answer_is_delivered(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, server={"request_timeout": "1s"}))
    s = connect_tls(gw.port, certs, cert="client1")
    try:
        s.sendall(build_request("GET", f"/svc/x?stall={QUIET_S}"))
        r = read_response(s, timeout=QUIET_S + 10)
        assert r.status == 502, r
    finally:
        s.close()


def test_quiet_websocket_stays_open(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, loc={"websocket": "yes"},
                                        server={"request_timeout": "1s"}))
    s = connect_tls(gw.port, certs, cert="client1")
    try:
        _, head, rest = handshake(s)
        assert head.startswith("HTTP/1.1 101"), head
        r = SockReader(s, rest)
        assert ws_read(r) == (1, b"hello")
        time.sleep(QUIET_S)
        payload = os.urandom(100)
        s.sendall(ws_frame(payload, 2))
        assert ws_read(r) == (2, payload)
    finally:
        s.close()
