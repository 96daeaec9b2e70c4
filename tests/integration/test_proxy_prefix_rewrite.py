# SPDX-License-Identifier: MIT
"""proxy_pass rewrites the location prefix to its path (nginx style), keeps
the query as sent, re-encodes the checked path, and forwards the path
unchanged when proxy_pass has no path; inline host:port upstreams work."""

import json

import pytest

from helpers import request
from upstream_server import gateway_opts, upstream  # noqa: F401 (fixture)

CASES = [
    ("/orders/items/1", "/api/items/1"),
    ("/orders/items/1?x=1&y=a+b&z=%2F&flag", "/api/items/1?x=1&y=a+b&z=%2F&flag"),
    ("/orders/", "/api/"),
    ("/orders", "/api/"),
    ("/orders/a%20b/c", "/api/a%20b/c"),
    ("/orders//x/./y", "/api/x/y"),
]


@pytest.mark.parametrize("sent,expected", CASES)
def test_prefix_rewrite(gateway_factory, certs, upstream, sent, expected):
    gw = gateway_factory(**gateway_opts(upstream.addr, location="/orders/",
                                        proxy_pass="http://orders/api/", name="orders"))
    r = request(gw.port, certs, None, raw_target=sent.encode())
    assert r.status == 200, r.text()
    assert json.loads(r.body)["target"] == expected


def test_no_path_keeps_path(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, location="/svc",
                                        proxy_pass="http://backend"))
    r = request(gw.port, certs, None, raw_target=b"/svc/deep/er?q=1")
    assert r.status == 200, r.text()
    assert json.loads(r.body)["target"] == "/svc/deep/er?q=1"


def test_inline_host_port_and_path_without_slash(gateway_factory, certs, upstream):
    opts = {"locations": [("/v1", {"proxy_pass": f"http://{upstream.addr}/internal"})]}
    gw = gateway_factory(**opts)
    for sent, expected in (("/v1/users", "/internal/users"), ("/v1", "/internal")):
        r = request(gw.port, certs, None, raw_target=sent.encode())
        assert r.status == 200, r.text()
        assert json.loads(r.body)["target"] == expected
    # The method and the body go through unchanged.
    r = request(gw.port, certs, "/v1/x", method="PUT", body=b"payload")
    seen = json.loads(r.body)
    assert (seen["method"], seen["body"], seen["body_framing"]) == ("PUT", "payload", "length")
