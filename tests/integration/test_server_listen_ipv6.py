# SPDX-License-Identifier: MIT
"""listen is repeatable and takes IPv6: a daemon listening on both
127.0.0.1:P and [::1]:Q serves the same pages on both (server certificate
valid for IP ::1 too)."""

import socket

import pytest

from helpers import connect_tls, free_port, read_response, build_request


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_listen_v4_and_v6(gateway_factory, certs):
    p6 = free_port("::1")
    gw = gateway_factory(server={"listen": ["127.0.0.1:@PORT@", f"[::1]:{p6}"]})
    for host, port in (("127.0.0.1", gw.port), ("::1", p6)):
        s = connect_tls(port, certs, host=host, cert="client1")
        try:
            s.sendall(build_request("GET", "/protected/secret.html"))
            r = read_response(s)
        finally:
            s.close()
        assert r.status == 200, (host, r)
