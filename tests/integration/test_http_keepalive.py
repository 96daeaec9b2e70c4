# SPDX-License-Identifier: MIT
"""Keep-alive: several requests on one TLS connection (http.client) all
succeed, and the access log shows them all coming from that one client
address and port; pipelined requests are answered in order."""

import http.client

import pytest

from helpers import client_context, wait_until

PATHS = ["/main.html", "/unprotected/", "/protected/secret.html", "/health",
         "/data/hello.txt", "/nope.html", "/main.html"]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_keepalive_one_connection(gateway_factory, certs, version):
    gw = gateway_factory()
    ctx = client_context(certs, version, "client1")
    conn = http.client.HTTPSConnection("localhost", gw.port, context=ctx, timeout=10)
    conn.connect()
    local_port = conn.sock.getsockname()[1]
    statuses = []
    for p in PATHS:
        conn.request("GET", p)
        r = conn.getresponse()
        r.read()
        statuses.append(r.status)
        assert not r.will_close, f"server closed after {p}"
    assert conn.sock.getsockname()[1] == local_port  # never reconnected
    conn.close()
    assert statuses == [200, 200, 200, 200, 200, 404, 200]

    entries = wait_until(lambda: [e for e in gw.access() if e.get("path") in PATHS]
                         if len(gw.access()) >= len(PATHS) else None, 5)
    assert entries and len(entries) == len(PATHS), gw.access()
    clients = {e["client"] for e in entries}
    assert clients == {f"127.0.0.1:{local_port}"}, clients
    assert [e["status"] for e in entries] == statuses


def test_pipelined_requests_all_answers(gateway, certs, site):
    from helpers import build_request, connect_tls, parse_response, read_all
    s = connect_tls(gateway.port, certs, cert="client1")
    try:
        s.sendall(build_request("GET", "/main.html", close=False)
                  + build_request("GET", "/protected/secret.html", close=False)
                  + build_request("GET", "/health", close=True))
        data = read_all(s, timeout=10)
    finally:
        s.close()
    bodies = []
    for _ in range(3):
        r, data = parse_response(data)
        bodies.append((r.status, r.body))
    assert [b[0] for b in bodies] == [200, 200, 200]
    assert bodies[0][1] == (site.root / "main.html").read_bytes()
    assert b"Secret page" in bodies[1][1]
    assert bodies[2][1].strip() == b"ok"
