# SPDX-License-Identifier: MIT
"""A client that stalls mid-handshake (sends nothing, or half a
ClientHello) never delays others, even on a single worker: with 20 stalled
sockets open, a normal TLS request completes within about a second; and
each stalled socket is closed by the gateway once handshake_timeout (2s)
has passed, not before and not much later."""

import socket
import time

import pytest

from helpers import HOST, request

# A TLS record header announcing a 512-byte handshake message, and the
# first bytes of a ClientHello: the server must wait for the rest.
HALF_HELLO = bytes.fromhex("16030102000100" "01fc0303") + b"\x00" * 40


@pytest.mark.timeout(60)
def test_stalled_handshakes_do_not_block(gateway_factory, certs):
    gw = gateway_factory(server={"workers": 1}, tls={"handshake_timeout": "2s"})
    stalled = []
    t_open = time.monotonic()
    for i in range(20):
        s = socket.create_connection((HOST, gw.port), timeout=5)
        if i % 2:
            s.sendall(HALF_HELLO)
        stalled.append(s)
    time.sleep(0.2)

    t0 = time.monotonic()
    r = request(gw.port, certs, "/main.html", timeout=5)
    took = time.monotonic() - t0
    assert r.status == 200
    assert took < 1.0, f"a normal request took {took:.2f} s next to 20 stalled handshakes"
    r = request(gw.port, certs, "/protected/secret.html", cert="client1", timeout=5)
    assert r.status == 200

    closed_at = []
    for s in stalled:
        s.settimeout(max(0.1, t_open + 8 - time.monotonic()))
        try:
            data = s.recv(4096)
            # EOF, or a TLS alert record (0x15) before EOF.
            assert data == b"" or data[:1] == b"\x15", data[:20]
            if data:
                s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            pass
        closed_at.append(time.monotonic() - t_open)
        s.close()
    assert max(closed_at) < 6, f"stalled sockets kept open up to {max(closed_at):.1f} s " \
                               "with handshake_timeout 2s"
    assert min(closed_at) > 1.5, f"a stalled socket was closed after {min(closed_at):.1f} s, " \
                                 "before handshake_timeout 2s"
