# SPDX-License-Identifier: MIT
"""An upstream response that breaks mid-body (Content-Length or chunked)
closes the client connection: the client never sees a complete response
(no silently truncated 200), and the log says which upstream and why."""

import socket
import ssl

import pytest

from helpers import connect_tls, parse_response, _dechunk, wait_until
from upstream_server import gateway_opts, pattern, upstream  # noqa: F401

N = 2 << 20
CUT = 300000


def read_until_close(s, timeout=20):
    s.settimeout(timeout)
    data = b""
    while True:
        try:
            b = s.recv(1 << 20)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError):
            return data, True
        except socket.timeout:
            return data, False
        if not b:
            return data, True
        data += b


@pytest.mark.parametrize("te", ["length", "chunked"])
def test_truncated_upstream_closes_client(gateway_factory, certs, upstream, te):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    s = connect_tls(gw.port, certs)
    try:
        # Keep-alive request: a close can only come from the gateway giving up.
        s.sendall(f"GET /svc/t?stream={N}&te={te}&truncate={CUT} HTTP/1.1\r\n"
                  f"Host: localhost\r\n\r\n".encode())
        data, closed = read_until_close(s)
    finally:
        s.close()
    assert closed, "gateway kept the client connection after a broken upstream body"
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    if te == "length":
        assert f"Content-Length: {N}".encode() in head
        assert len(body) < N
        assert body == pattern(0, len(body))
    else:
        got, complete = _dechunk(body)
        assert not complete, "chunked response was terminated as if complete"
        assert len(got) <= CUT and got == pattern(0, len(got))
    lines = wait_until(lambda: [l for l in gw.stderr().splitlines()
                                if upstream.addr in l and "mid-body" in l], 5)
    assert lines, gw.stderr()
