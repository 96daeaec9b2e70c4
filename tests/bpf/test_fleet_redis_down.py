# SPDX-License-Identifier: MIT
"""Redis killed under load: serving goes on (no request fails because of
it), the local limits in the kernel still hold (req_rate: 429s keep
coming for the over-rate certificate), /metrics says disconnected and
counts sync errors, the log warns once; Redis restarted on the same port:
the gateway reconnects by itself and syncs again."""

import threading
import time

import pytest

from bpfhelp import limits_config
from helpers import build_request, connect_tls, read_response, request
from redishelp import METRICS_LOC, fleet_extra, metrics, redis_factory  # noqa: F401
from redishelp import wait_synced, wait_time


class Load:
    """Keep-alive requests on one connection until stopped."""

    def __init__(self, gw, cert, path="/health"):
        self.gw, self.cert, self.path = gw, cert, path
        self.codes, self.errors = [], []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run)

    def run(self):
        try:
            s = connect_tls(self.gw.port, self.gw.certs, cert=self.cert)
            while not self.stop.is_set():
                s.sendall(build_request("GET", self.path, close=False))
                self.codes.append(read_response(s, "GET").status)
                time.sleep(0.005)
            s.close()
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.errors.append(repr(e))

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(30)


@pytest.mark.timeout(120)
def test_redis_killed_and_back(bpf_ok, instance, gateway_factory, redis_factory):
    redis = redis_factory()
    extra = (limits_config(instance, overrides=None, default=None)
             + fleet_extra(redis.port, "gwk", sync="50ms",
                           limits={"fleet_req_rate": "100000/s"}))
    # client2 has a local req_rate of 5/s in the kernel.
    fp2 = gateway_factory.certs.fingerprint("client2")
    extra += f"\n[limits sha256:{fp2}]\nreq_rate = 5/s\nreq_burst = 5\n"
    gw = gateway_factory(locations=[METRICS_LOC], extra=extra)
    wait_synced([gw])
    assert metrics(gw)["mtlsgw_fleet_connected"] == 1

    with Load(gw, "client1") as free, Load(gw, "client2") as limited:
        time.sleep(0.5)
        redis.kill()
        assert wait_time(lambda: metrics(gw)["mtlsgw_fleet_connected"] == 0, 10) is not None
        n_free, n_lim = len(free.codes), len(limited.codes)
        time.sleep(2.0)  # past the hold time (1 s): fleet_fail applies
        assert len(free.codes) > n_free, "requests stopped while Redis is down"
        assert 429 in limited.codes[n_lim:], "local req_rate not enforced without Redis"
        assert metrics(gw)["mtlsgw_fleet_sync_errors_total"] >= 1
        redis.start()
        assert wait_time(lambda: metrics(gw)["mtlsgw_fleet_connected"] == 1, 20) is not None
        wait_synced([gw])
    assert not free.errors and not limited.errors, (free.errors, limited.errors)
    assert set(free.codes) == {200}, "a request failed because Redis went away"
    assert set(limited.codes) <= {200, 429}
    log = gw.stderr()
    assert log.count("fleet: redis unreachable (") == 1, log[-3000:]
    assert "reachable again" in log
    # Pushed again after the restart: this gateway's counts are in Redis.
    fp1 = gateway_factory.certs.fingerprint("client1")
    assert "gwk" in redis.cli("HGETALL", f"mtlsgw:{{{fp1}}}:hosts")
    assert request(gw.port, gw.certs, "/health", cert="client1").status == 200
