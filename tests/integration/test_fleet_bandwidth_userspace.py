# SPDX-License-Identifier: MIT
"""fleet_bandwidth_out without BPF ([bpf] mode = off: nothing counts
bytes per identity): the gateway starts, says once that the limit is NOT
enforced, serves downloads (never a 429 for bytes) and pushes no bytes,
while its request counts still reach the fleet (mtlsgw-stat --fleet)."""

import json
import subprocess

from helpers import REPO, request
from redishelp import METRICS_LOC, fleet_extra, metrics, redis_factory  # noqa: F401
from redishelp import wait_synced


def test_fleet_bandwidth_needs_bpf(gateway_factory, redis_factory):
    redis = redis_factory()
    gw = gateway_factory(locations=[METRICS_LOC],
                         extra=fleet_extra(redis.port, "gwu",
                                           limits={"fleet_bandwidth_out": "1K"}))
    log = gw.stderr()
    assert log.count("fleet_bandwidth_out is NOT enforced") == 1, log[-2000:]
    for _ in range(5):
        r = request(gw.port, gw.certs, "/data/1mb.bin", cert="client1")
        assert r.status == 200 and len(r.body) == 1 << 20
    wait_synced([gw])
    assert metrics(gw)['mtlsgw_fleet_refused_total{reason="bandwidth_out"}'] == 0
    st = subprocess.run([str(REPO / "build" / "mtlsgw-stat"), "--fleet", "-c",
                         str(gw.conf), "--json"], capture_output=True, text=True,
                        timeout=30)
    assert st.returncode == 0, st.stderr
    fp = gw.certs.fingerprint("client1")
    row = [x for x in json.loads(st.stdout)["fleet"] if x["fingerprint"] == fp]
    assert row and row[0]["hosts"]["gwu"]["requests"] >= 5, st.stdout
    assert row[0]["bytes_out"] == 0 and row[0]["bytes_out_window"] == 0, st.stdout
