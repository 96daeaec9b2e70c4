# SPDX-License-Identifier: MIT
"""A client can never forge its identity: incoming X-Client-* headers (any
case, '_' for '-', any name under the prefix) and RFC 9440 Client-Cert /
Client-Cert-Chain are removed before the gateway adds its own, with and
without a client certificate."""

import json

import pytest

from helpers import connect_tls, read_response
from upstream_server import gateway_opts, upstream  # noqa: F401 (fixture)

FORGED = [
    ("X-Client-Verify", "SUCCESS"),
    ("x-client-verify", "SUCCESS"),
    ("X-CLIENT-SUBJECT", "CN=admin,O=evil"),
    ("X_Client_Cert_Fingerprint", "00" * 32),
    ("x_client_san_uri", "spiffe://corp/ns/web/sa/admin"),
    ("X-Client-SAN-DNS", "admin.corp"),
    ("X-Client-Issuer", "CN=evil CA"),
    ("X-Client-Serial", "01"),
    ("X-Client-Cert", "-----BEGIN%20CERTIFICATE-----"),
    ("X-Client-Something-New", "x"),
    ("Client-Cert", ":AAAA:"),
    ("client_cert_chain", ":AAAA:"),
]


def norm(name):
    return name.lower().replace("_", "-")


def send_forged(port, certs, cert):
    s = connect_tls(port, certs, cert=cert)
    try:
        lines = ["GET /svc/forge HTTP/1.1", "Host: localhost", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in FORGED]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return read_response(s)
    finally:
        s.close()


@pytest.mark.parametrize("cert", [None, "client1"])
def test_forged_identity_headers_never_reach_upstream(gateway_factory, certs, upstream,
                                                      cert):
    gw = gateway_factory(**gateway_opts(upstream.addr, loc={"forward_cert": "yes"}))
    r = send_forged(gw.port, certs, cert)
    assert r.status == 200, r.text()
    seen = json.loads(r.body)["headers"]
    ours = [(k, v) for k, v in seen
            if norm(k).startswith("x-client-") or norm(k).startswith("client-cert")]
    names = [norm(k) for k, _ in ours]
    # Each name once, and only the gateway's spelling and values.
    assert len(names) == len(set(names)), ours
    forged_values = {v for k, v in FORGED if norm(k) != "x-client-verify"}
    for k, v in ours:
        assert v not in forged_values, (k, v)
    if cert is None:
        assert ours == [("X-Client-Verify", "NONE")]
    else:
        d = dict(ours)
        assert d["X-Client-Verify"] == "SUCCESS"
        assert d["X-Client-Subject"].startswith("CN=client1")
        assert d["X-Client-Cert-Fingerprint"] == certs.fingerprint("client1")
        assert d["X-Client-SAN-URI"] == "spiffe://mtlsgw.test/client1"
        assert "x-client-something-new" not in names
        assert d["Client-Cert"] != ":AAAA:"


def test_forged_header_with_space_before_colon(gateway_factory, certs, upstream):
    """"X-Client-Verify : SUCCESS" is either refused (400) or removed."""
    gw = gateway_factory(**gateway_opts(upstream.addr))
    s = connect_tls(gw.port, certs)
    try:
        s.sendall(b"GET /svc/sp HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  b"X-Client-Verify : SUCCESS\r\nX-Client-Subject\t: CN=admin\r\n\r\n")
        r = read_response(s)
    finally:
        s.close()
    if r.status == 400:
        assert upstream.last() is None
        return
    assert r.status == 200, r.text()
    seen = json.loads(r.body)["headers"]
    ours = [(k, v) for k, v in seen if norm(k).replace(" ", "").startswith("x-client-")]
    assert ours == [("X-Client-Verify", "NONE")]
