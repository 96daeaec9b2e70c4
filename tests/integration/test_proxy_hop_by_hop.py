# SPDX-License-Identifier: MIT
"""Hop-by-hop headers are removed both ways: Connection and the headers it
names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*; the
rest (repeated Set-Cookie included) passes through."""

import json

from helpers import connect_tls, read_response
from upstream_server import gateway_opts, upstream  # noqa: F401 (fixture)


def test_hop_by_hop_removed_both_ways(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    s = connect_tls(gw.port, certs)
    try:
        s.sendall(b"GET /svc/hop HTTP/1.1\r\nHost: localhost\r\n"
                  b"Connection: close, X-Hop-Named\r\nX-Hop-Named: 1\r\n"
                  b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\n"
                  b"Upgrade: h2c\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n"
                  b"Proxy-Connection: keep-alive\r\nX-End-To-End: kept\r\n"
                  b"Accept: text/plain\r\n\r\n")
        r = read_response(s)
    finally:
        s.close()
    assert r.status == 200, r.text()
    sent = {k.lower(): v for k, v in json.loads(r.body)["headers"]}
    for gone in ("x-hop-named", "keep-alive", "te", "trailer", "upgrade",
                 "proxy-authorization", "proxy-connection", "transfer-encoding"):
        assert gone not in sent, (gone, sent)
    assert sent.get("connection", "").lower() in ("", "keep-alive")
    assert sent["x-end-to-end"] == "kept"
    assert sent["accept"] == "text/plain"
    # Response: the upstream sent Connection: keep-alive and Keep-Alive.
    names = [k.lower() for k, _ in r.headers]
    assert "keep-alive" not in names
    assert r.header("X-Upstream") == "echo"
    assert [v for k, v in r.headers if k.lower() == "set-cookie"] == ["a=1", "b=2"]
