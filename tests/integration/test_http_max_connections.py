# SPDX-License-Identifier: MIT
"""max_connections bounds open client connections for the whole process:
with 3 held open, a 4th is closed at once (before any TLS), the log says
why, and as soon as one of the 3 closes a new client is served again."""

import ssl

import pytest

from helpers import build_request, connect_tls, read_response, request, wait_until


def test_fourth_connection_refused(gateway_factory, certs):
    gw = gateway_factory(server={"max_connections": 3})
    held = [connect_tls(gw.port, certs) for _ in range(3)]
    try:
        for s in held:  # all three really are served
            s.sendall(build_request("GET", "/health", close=False))
            assert read_response(s).status == 200
        with pytest.raises((ssl.SSLError, OSError)):
            s4 = connect_tls(gw.port, certs, timeout=5)
            s4.sendall(build_request("GET", "/health"))
            if not s4.recv(100):
                raise ConnectionError("closed without an answer")
        assert wait_until(lambda: "max_connections (3) reached" in gw.stderr())
    finally:
        held.pop().close()
    # one slot is free again (the close is noticed asynchronously)
    assert wait_until(lambda: _served(gw, certs), 5)
    for s in held:
        s.close()


def _served(gw, certs):
    try:
        return request(gw.port, certs, "/health").status == 200
    except (ssl.SSLError, OSError):
        return False
