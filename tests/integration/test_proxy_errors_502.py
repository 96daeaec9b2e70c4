# SPDX-License-Identifier: MIT
"""An upstream that refuses connections gives 502 and an info log line with
the upstream's address and the reason; with several servers the gateway
fails over to the next one on a connect error."""

import json

from helpers import request, wait_until
from upstream_server import closed_port, gateway_opts, upstream  # noqa: F401


def test_closed_port_502(gateway_factory, certs):
    port = closed_port()
    gw = gateway_factory(**gateway_opts(f"127.0.0.1:{port}"))
    r = request(gw.port, certs, "/svc/x", cert="client1")
    assert r.status == 502
    line = wait_until(lambda: [l for l in gw.stderr().splitlines()
                               if f"127.0.0.1:{port}" in l and "proxy" in l], 5)
    assert line, gw.stderr()
    assert "refused" in line[0].lower(), line
    assert "[info]" in line[0], line
    entries = wait_until(lambda: [e for e in gw.access() if e["path"] == "/svc/x"], 5)
    assert entries and entries[0]["status"] == 502
    # The daemon is fine afterwards.
    assert request(gw.port, certs, "/health").status == 200


def test_failover_to_next_server(gateway_factory, certs, upstream):
    dead = f"127.0.0.1:{closed_port()}"
    gw = gateway_factory(**gateway_opts([dead, upstream.addr], up={"keepalive": 0}))
    for i in range(6):  # round robin starts on each server in turn
        r = request(gw.port, certs, f"/svc/f{i}")
        assert r.status == 200, r.text()
        assert json.loads(r.body)["target"] == f"/f{i}"
    assert any(dead in l and "next server" in l for l in gw.stderr().splitlines()), \
        gw.stderr()
