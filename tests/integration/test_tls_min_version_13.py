# SPDX-License-Identifier: MIT
"""min_version = 1.3: a TLS 1.2-only client is refused with a
protocol_version alert, a TLS 1.3 client is served (both with and without
a client certificate)."""

from helpers import handshake_outcome, request


def test_tls12_refused_when_min_13(gateway_factory, certs):
    gw = gateway_factory(tls={"min_version": "1.3"})
    kind, text = handshake_outcome(gw.port, certs, "1.2", None)
    assert kind == "alert" and "protocol version" in text.lower(), (kind, text)


def test_tls13_served_when_min_13(gateway_factory, certs):
    gw = gateway_factory(tls={"min_version": "1.3"})
    r = request(gw.port, certs, "/main.html", version="1.3")
    assert r.status == 200 and r.tls_version == "TLSv1.3"
    r = request(gw.port, certs, "/protected/secret.html", version="1.3", cert="client1")
    assert r.status == 200
