# SPDX-License-Identifier: MIT
"""`metrics = yes` serves Prometheus text whose counters follow what the
gateway did: handshakes ok and failed, connections by data path with the
reason for the userspace fallback, requests by status class; and the
location's certificate policy applies to the metrics page itself."""

import re

import pytest

from helpers import handshake_outcome, request


@pytest.fixture(scope="module")
def mgw(module_gateway_factory):
    return module_gateway_factory(locations=[
        ("/metrics", {"metrics": "yes"}),
        ("/private-metrics", {"metrics": "yes", "client_cert": "require",
                              "allow_subject": "CN=client1"}),
    ])


def _metrics(gw, certs, path="/metrics", cert=None):
    r = request(gw.port, certs, path, cert=cert)
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain")
    out = {}
    for line in r.text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def test_counters_move(mgw, certs):
    before = _metrics(mgw, certs)
    for _ in range(3):
        assert request(mgw.port, certs, "/main.html").status == 200
    assert request(mgw.port, certs, "/nope.html").status == 404
    kind, _ = handshake_outcome(mgw.port, certs, "1.3", "revoked")
    assert kind == "alert"
    after = _metrics(mgw, certs)
    d = lambda k: after.get(k, 0) - before.get(k, 0)
    # 4 requests plus the second /metrics fetch itself
    assert d('mtlsgw_handshakes_total{result="ok"}') == 5
    assert d('mtlsgw_handshakes_total{result="failed"}') >= 1
    assert d('mtlsgw_requests_total{code="2xx"}') >= 4  # 3 pages + first /metrics
    assert d('mtlsgw_requests_total{code="4xx"}') == 1
    paths = d('mtlsgw_connections_total{data_path="ktls"}') + \
        d('mtlsgw_connections_total{data_path="userspace"}')
    assert paths == 5
    assert after["mtlsgw_workers"] == 2


def test_fallback_reason_and_info(mgw, certs):
    m = _metrics(mgw, certs)
    reasons = [k for k in m if k.startswith("mtlsgw_userspace_fallback_total{")]
    assert reasons and all(re.search(r'reason="[^"]+"', k) for k in reasons)
    info = [k for k in m if k.startswith("mtlsgw_info{")]
    assert info and 'limits="off"' in info[0]


def test_metrics_behind_policy(mgw, certs):
    assert request(mgw.port, certs, "/private-metrics").status == 403
    assert request(mgw.port, certs, "/private-metrics", cert="client2").status == 403
    m = _metrics(mgw, certs, "/private-metrics", cert="client1")
    assert "mtlsgw_connections_active" in m
