# SPDX-License-Identifier: MIT
"""The fleet block list: `mtlsgw-ctl block sha256:FP` makes all three
gateways sharing one Redis answer 403 to that certificate (other
certificates unaffected) and close its open keep-alive connection;
`unblock` restores it; `list` shows it with its reason. A block survives
a gateway restart (read at start, before serving) and a Redis restart
(append-only file)."""

import time

import pytest

from helpers import build_request, connect_tls, keepalive_closed, request
from redishelp import (METRICS_LOC, ctl, fleet_extra, redis_factory,  # noqa: F401
                       wait_synced, wait_time)

# Pass/fail deadline on a loaded machine; the measured time is printed
# (and measured by scripts/bench-fleet.sh): the design target is < 1 s.
DEADLINE = 5.0


def start_three(gateway_factory, redis):
    return [gateway_factory(locations=[METRICS_LOC],
                            extra=fleet_extra(redis.port, f"gw{i}"))
            for i in range(3)]


def status(gw, cert="client1"):
    return request(gw.port, gw.certs, "/main.html", cert=cert).status


@pytest.mark.timeout(120)
def test_block_unblock_on_three(gateway_factory, redis_factory, certs):
    redis = redis_factory()
    gws = start_three(gateway_factory, redis)
    fp = certs.fingerprint("client1")
    assert all(status(g) == 200 for g in gws)

    # An open keep-alive connection on each gateway, one request served.
    socks = []
    for g in gws:
        s = connect_tls(g.port, certs, cert="client1")
        s.sendall(build_request("GET", "/main.html", close=False))
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        assert b"200 OK" in s.recv(65536)
    wait_synced(gws)

    p = ctl(gws[0], "block", f"sha256:{fp}", "--ttl", "1h", "--reason", "leaked key")
    assert p.returncode == 0, p.stderr
    t0 = time.monotonic()
    for g in gws:
        took = wait_time(lambda: status(g) == 403, DEADLINE)
        assert took is not None, f"gateway {g.port} still serves a blocked cert"
    for s in socks:
        took = wait_time(lambda: keepalive_closed(s), DEADLINE)
        assert took is not None, "keep-alive connection of a blocked cert stays open"
        s.close()
    print(f"blocked on 3 gateways and connections closed in "
          f"{time.monotonic() - t0:.3f} s")
    r = request(gws[1].port, certs, "/main.html", cert="client1")
    assert r.status == 403 and "blocked" in r.text()
    # Others are not affected, nor clients without a certificate.
    assert all(status(g, "client2") == 200 for g in gws)
    assert all(status(g, None) == 200 for g in gws)
    lst = ctl(gws[2], "list")
    assert lst.returncode == 0 and fp in lst.stdout and "leaked key" in lst.stdout

    p = ctl(gws[1], "unblock", f"sha256:{fp}")
    assert p.returncode == 0, p.stderr
    for g in gws:
        assert wait_time(lambda: status(g) == 200, DEADLINE) is not None
    assert fp not in ctl(gws[0], "list").stdout


@pytest.mark.timeout(120)
def test_block_survives_restarts(gateway_factory, redis_factory, certs):
    redis = redis_factory(persist=True)
    gw = gateway_factory(locations=[METRICS_LOC], extra=fleet_extra(redis.port, "gwa"))
    fp = certs.fingerprint("client2")
    assert ctl(gw, "block", f"sha256:{fp}").returncode == 0
    assert wait_time(lambda: status(gw, "client2") == 403, DEADLINE) is not None

    # Redis restarts from its append-only file.
    redis.stop()
    redis.start()
    assert fp in redis.cli("HKEYS", "mtlsgw:{blocks}:list")
    # A gateway started now refuses it from its first connection.
    gw.stop()
    gw2 = gateway_factory(locations=[METRICS_LOC], extra=fleet_extra(redis.port, "gwb"))
    assert status(gw2, "client2") == 403
    assert status(gw2, "client1") == 200
    assert ctl(gw2, "unblock", f"sha256:{fp}").returncode == 0
    assert wait_time(lambda: status(gw2, "client2") == 200, DEADLINE) is not None


def test_ctl_usage_errors(gateway_factory, redis_factory):
    redis = redis_factory()
    gw = gateway_factory(extra=fleet_extra(redis.port, "gwu"))
    assert ctl(gw, "block", "sha256:1234").returncode == 2
    assert ctl(gw, "block").returncode == 2
    assert ctl(gw, "frobnicate").returncode == 2
    assert ctl(gw, "block", "sha256:" + "a" * 64, "--ttl", "soon").returncode == 2
    assert redis.cli("HLEN", "mtlsgw:{blocks}:list").strip() == "0"
