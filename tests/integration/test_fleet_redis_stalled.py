# SPDX-License-Identifier: MIT
"""Redis stalled (SIGSTOP: it accepts connections but never answers):
requests keep being served while the gateway's sync thread times out,
/metrics says disconnected, and the fleet limit (its last state, then
fleet_fail = static: this gateway's share) still refuses a burst over it; with `[fleet] required = yes`, /ready answers 503
("fleet") while Redis does not answer; after SIGCONT the gateway reconnects and syncs again."""

import signal

import pytest

from helpers import build_request, connect_tls, read_response, request
from redishelp import (METRICS_LOC, fleet_extra, metrics,  # noqa: F401
                       redis_factory, wait_synced, wait_time)


@pytest.mark.timeout(120)
def test_redis_stalled(gateway_factory, redis_factory, certs):
    redis = redis_factory()
    gw = gateway_factory(locations=[METRICS_LOC, ("/ready", {"ready": "yes"})],
                         extra=fleet_extra(redis.port, "gwst", sync="50ms",
                                           limits={"fleet_req_rate": "20/s"},
                                           fleet={"required": "yes"}))
    wait_synced([gw])
    assert request(gw.port, certs, "/ready").status == 200
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        assert wait_time(lambda: metrics(gw)["mtlsgw_fleet_connected"] == 0, 20) \
            is not None, gw.stderr()[-2000:]
        r = request(gw.port, certs, "/ready")
        assert r.status == 503 and "fleet" in r.text(), r
        # Served meanwhile, on new connections and on a keep-alive one,
        # and the fleet rate (now a static share) still refuses a burst.
        assert request(gw.port, certs, "/main.html", cert="client2").status == 200
        s = connect_tls(gw.port, certs, cert="client1")
        codes = []
        for _ in range(60):
            s.sendall(build_request("GET", "/health", close=False))
            codes.append(read_response(s, "GET").status)
        s.close()
        assert set(codes) <= {200, 429} and 200 in codes, codes
        assert 429 in codes, "fleet limit dropped while Redis stalls (fleet_fail = static)"
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    assert wait_time(lambda: metrics(gw)["mtlsgw_fleet_connected"] == 1, 30) \
        is not None, gw.stderr()[-2000:]
    wait_synced([gw])
    assert "reachable again" in gw.stderr()
    assert request(gw.port, certs, "/ready").status == 200
