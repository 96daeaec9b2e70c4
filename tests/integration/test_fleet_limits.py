# SPDX-License-Identifier: MIT
"""Fleet-wide limits over three gateways sharing one Redis:
- fleet_max_conns: once the fleet holds that many connections of a
  certificate, a new one on any gateway is answered 429 with Retry-After
  (each gateway alone would have allowed three times more); closing one
  makes room again; other certificates are not affected. A gateway that
  has never seen the certificate refuses it too (the others mark it).
- mtlsgw-stat --fleet shows the fleet total and the gateways holding it.
- fleet_req_rate: a client spreading keep-alive requests over the three
  gets at most the fleet rate per 1 s window plus the documented
  overshoot (sync_interval x the offered rate), well under the three times
  the local-only count; refusals are 429 with Retry-After and the
  connection stays usable."""

import json
import math
import subprocess

import pytest

from helpers import REPO, KeepAlive, request
from redishelp import (METRICS_LOC, fleet_extra, hammer, metrics,  # noqa: F401
                       redis_factory, retry_after_ok, wait_synced)

SYNC_S = 0.05


def start_three(gateway_factory, redis, limits):
    return [gateway_factory(locations=[METRICS_LOC],
                            extra=fleet_extra(redis.port, f"gw{i}", sync="50ms",
                                              limits=limits))
            for i in range(3)]


@pytest.mark.timeout(120)
def test_fleet_max_conns(gateway_factory, redis_factory):
    redis = redis_factory()
    gws = start_three(gateway_factory, redis, {"fleet_max_conns": 2})
    held = []
    for g in gws[:2]:
        c = KeepAlive(g)
        assert c.get().status == 200
        held.append(c)
        wait_synced(gws)
    st = subprocess.run([str(REPO / "build" / "mtlsgw-stat"), "--fleet", "-c",
                         str(gws[2].conf), "--json"], capture_output=True, text=True,
                        timeout=30)
    assert st.returncode == 0, st.stderr
    fp = gws[0].certs.fingerprint("client1")
    row = [r for r in json.loads(st.stdout)["fleet"] if r["fingerprint"] == fp]
    assert row and row[0]["conns_active"] == 2, st.stdout
    assert {h: v["conns_active"] for h, v in row[0]["hosts"].items()} == \
        {"gw0": 1, "gw1": 1}, st.stdout
    # Third gateway: it holds none itself and has never seen this
    # certificate, but the others marked it as at its fleet limit.
    r = request(gws[2].port, gws[2].certs, "/health", cert="client1")
    assert r.status == 429, r
    assert int(r.header("Retry-After")) >= 1
    r = request(gws[0].port, gws[0].certs, "/health", cert="client1")
    assert r.status == 429, r
    # Another certificate has its own count.
    assert request(gws[2].port, gws[2].certs, "/health", cert="client2").status == 200
    m = metrics(gws[2])
    assert m['mtlsgw_fleet_refused_total{reason="max_conns"}'] >= 1
    assert m["mtlsgw_fleet_connected"] == 1
    # Closing makes room again, on any gateway.
    while len(held) > 1:
        held.pop().close()
    wait_synced(gws)
    c = KeepAlive(gws[2])
    assert c.get().status == 200
    held.append(c)
    for c in held:
        c.close()


@pytest.mark.timeout(120)
def test_fleet_req_rate(gateway_factory, redis_factory):
    rate = 10
    redis = redis_factory()
    gws = start_three(gateway_factory, redis, {"fleet_req_rate": f"{rate}/s"})
    conns = [KeepAlive(g) for g in gws]
    got, elapsed = hammer(conns, 3.0)
    codes = [s for _, s, _, _ in got]
    for c in conns:
        assert c.get().status in (200, 429)  # still usable
        c.close()

    ok, sent = codes.count(200), len(codes)
    assert set(codes) <= {200, 429}, codes
    assert retry_after_ok(got)
    windows = math.ceil(elapsed) + 1
    # The bound of README "Fleet": per window the rate, plus what the
    # others admit between two syncs (sync_interval x offered rate).
    bound = windows * rate + sent * SYNC_S * 2
    local_only = 3 * rate * windows
    print(f"fleet req rate: {ok} of {sent} admitted in {elapsed:.2f} s "
          f"({windows} windows), bound {bound:.0f}, local-only {local_only}")
    assert sent > local_only, "client too slow to test the fleet rate"
    assert ok <= bound, (ok, bound)
    assert ok < local_only, (ok, local_only)
    assert ok >= rate  # the limit, not a refusal of everything
