# SPDX-License-Identifier: MIT
"""Upstream connections are pooled per worker: many requests (each on its
own client connection) reach the upstream over far fewer TCP connections;
keepalive = 0 turns the pool off; an upstream closing a pooled connection
does not cost a request."""

import json
import time

from helpers import request
from upstream_server import gateway_opts, upstream  # noqa: F401 (fixture)

REQUESTS = 20


def run(gw, certs, n=REQUESTS, query=""):
    for i in range(n):
        r = request(gw.port, certs, f"/svc/k{i}{query}", cert="client1")
        assert r.status == 200, r.text()
        assert json.loads(r.body)["target"].startswith(f"/k{i}")


def test_pool_reuses_connections(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, up={"keepalive": 4},
                                        server={"workers": 1}))
    run(gw, certs)
    assert len(upstream.requests) == REQUESTS
    assert upstream.connections <= 2, upstream.connections


def test_pool_off_with_keepalive_0(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, up={"keepalive": 0},
                                        server={"workers": 1}))
    run(gw, certs, 8)
    assert upstream.connections == 8


def test_pooled_connection_closed_by_upstream(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, up={"keepalive": 4},
                                        server={"workers": 1}))
    for i in range(5):
        # Announced keep-alive, closed right after: the next request must
        # still succeed, on a new connection.
        r = request(gw.port, certs, f"/svc/c{i}?linger_close=1")
        assert r.status == 200, r.text()
        time.sleep(0.1)
    assert upstream.connections == 5


def test_back_to_back_on_closing_upstream(gateway_factory, certs, upstream):
    """Back to back, a pooled connection is often taken before its close is
    seen: the gateway must send again on a fresh one (nothing was answered
    yet), never answer 502."""
    import http.client

    from helpers import client_context
    gw = gateway_factory(**gateway_opts(upstream.addr, up={"keepalive": 4},
                                        server={"workers": 1}))
    conn = http.client.HTTPSConnection("localhost", gw.port, timeout=10,
                                       context=client_context(certs))
    for i in range(30):
        conn.request("GET", f"/svc/b{i}?linger_close=1")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, body
        assert json.loads(body)["target"].startswith(f"/b{i}")
    conn.close()
    assert len(upstream.requests) == 30
