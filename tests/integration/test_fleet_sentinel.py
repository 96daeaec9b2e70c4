# SPDX-License-Identifier: MIT
"""Redis through Sentinel (`redis = SENTINEL` + `sentinel_master`): a
primary, a replica and a real Sentinel (redis-server --sentinel) on
loopback. The gateway finds the primary through the Sentinel and syncs;
after a Sentinel failover the old primary turns replica, the gateway's
writes fail, it asks the Sentinel again, reconnects to the new primary
and syncs there; mtlsgw-ctl finds the new primary too and its block
applies."""

import subprocess

import pytest

from helpers import HOST, free_port, request, wait_until
from redishelp import (METRICS_LOC, Redis, ctl, fleet_extra, metrics,  # noqa: F401
                       redis_factory, wait_synced, wait_time)


class Sentinel:
    def __init__(self, workdir, master_port):
        self.dir = workdir
        self.port = free_port()
        conf = workdir / "sentinel.conf"
        conf.write_text(f"port {self.port}\nbind {HOST}\ndir {workdir}\n"
                        f"logfile {workdir / 'sentinel.log'}\n"
                        f"sentinel monitor mymaster {HOST} {master_port} 1\n"
                        "sentinel down-after-milliseconds mymaster 1000\n"
                        "sentinel failover-timeout mymaster 5000\n")
        self.proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-h", HOST, "-p", str(self.port), *args],
                              capture_output=True, text=True, timeout=10).stdout

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.mark.timeout(120)
def test_sentinel_failover(gateway_factory, redis_factory, tmp_path, certs):
    primary = redis_factory()
    replica = redis_factory()
    replica.cli("REPLICAOF", HOST, str(primary.port))
    sentinel = Sentinel(tmp_path, primary.port)
    try:
        assert wait_until(lambda: str(replica.port) in sentinel.cli(
            "SENTINEL", "replicas", "mymaster"), timeout=30), \
            "the Sentinel does not see the replica"
        gw = gateway_factory(locations=[METRICS_LOC], extra=fleet_extra(
            sentinel.port, "gws", fleet={"sentinel_master": "mymaster"}))
        wait_synced([gw])
        assert metrics(gw)["mtlsgw_fleet_connected"] == 1
        assert f"connected to redis {HOST}:{primary.port}" in gw.stderr()
        assert request(gw.port, certs, "/main.html", cert="client1").status == 200
        fp = certs.fingerprint("client1")
        assert wait_until(lambda: "gws" in primary.cli("HKEYS", f"mtlsgw:{{{fp}}}:hosts"))

        assert "OK" in sentinel.cli("SENTINEL", "failover", "mymaster")
        assert wait_until(lambda: "role:master" in replica.cli("INFO", "replication"),
                          timeout=30), "failover did not happen"
        # The gateway moves to the new primary by itself.
        assert wait_until(lambda: f"redis {HOST}:{replica.port} reachable again"
                          in gw.stderr(), timeout=30), gw.stderr()[-3000:]
        assert ctl(gw, "block", f"sha256:{fp}").returncode == 0
        assert fp in replica.cli("HKEYS", "mtlsgw:{blocks}:list")
        assert wait_time(lambda: request(gw.port, certs, "/main.html",
                                         cert="client1").status == 403, 10) is not None
    finally:
        sentinel.stop()
