# SPDX-License-Identifier: MIT
"""WebSocket upgrades are tunnelled on a location with websocket = yes
(101 from the upstream, frames both ways, including bytes the upstream
sent right behind its 101 head) and refused with 400 elsewhere."""

import base64
import hashlib
import os

from helpers import connect_tls, read_response, request
from upstream_server import WS_GUID, gateway_opts, upstream, ws_frame, ws_read  # noqa


class SockReader:
    def __init__(self, s, buf=b""):
        self.s = s
        self.buf = buf

    def exact(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise ConnectionError("closed")
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def handshake(s, path="/svc/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        assert b, "closed during the handshake"
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    return key, head.decode("latin-1"), rest


def test_websocket_tunnel(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, loc={"websocket": "yes"}))
    s = connect_tls(gw.port, certs, cert="client1")
    try:
        key, head, rest = handshake(s)
        assert head.startswith("HTTP/1.1 101"), head
        lower = head.lower()
        assert "upgrade: websocket" in lower and "connection: upgrade" in lower
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert f"sec-websocket-accept: {accept}".lower() in lower
        r = SockReader(s, rest)
        assert ws_read(r) == (1, b"hello")  # sent with the 101 head
        for payload in (b"x", os.urandom(5000), os.urandom(200000)):
            s.sendall(ws_frame(payload, 2))
            assert ws_read(r) == (2, payload)
        s.sendall(ws_frame(b"\x03\xe8", 8))
        assert ws_read(r) == (8, b"\x03\xe8")
    finally:
        s.close()
    seen = upstream.last()
    h = {k.lower(): v for k, v in seen["headers"]}
    assert h["upgrade"] == "websocket" and h["x-client-verify"] == "SUCCESS"
    # The gateway still serves after the tunnel is gone.
    assert request(gw.port, certs, "/health").status == 200


def test_websocket_refused_without_opt_in(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    s = connect_tls(gw.port, certs)
    try:
        _, head, rest = handshake(s)
    finally:
        s.close()
    assert head.startswith("HTTP/1.1 400"), head
    assert upstream.last() is None
