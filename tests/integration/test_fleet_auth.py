# SPDX-License-Identifier: MIT
"""[fleet] password_file: a Redis with requirepass is reached with AUTH
(the gateway syncs, mtlsgw-ctl works); with a wrong password the gateway
still serves, reports disconnected and logs the AUTH failure -- and the
password never appears in its log."""

import secrets

from helpers import request
from redishelp import (METRICS_LOC, ctl, fleet_extra, metrics,  # noqa: F401
                       redis_factory, wait_synced, wait_time)


def test_auth(gateway_factory, redis_factory, tmp_path, certs):
    password = "pw-" + secrets.token_hex(12)
    redis = redis_factory(args=["--requirepass", password])
    good, bad = tmp_path / "good.pass", tmp_path / "bad.pass"
    good.write_text(password + "\n")
    bad.write_text("wrong-" + password[3:] + "\n")
    gw = gateway_factory(locations=[METRICS_LOC], extra=fleet_extra(
        redis.port, "gwp", fleet={"password_file": good}))
    wait_synced([gw])
    assert metrics(gw)["mtlsgw_fleet_connected"] == 1
    fp = certs.fingerprint("client1")
    assert ctl(gw, "block", f"sha256:{fp}").returncode == 0
    assert wait_time(lambda: request(gw.port, certs, "/main.html",
                                     cert="client1").status == 403, 10) is not None
    assert ctl(gw, "unblock", f"sha256:{fp}").returncode == 0

    gw2 = gateway_factory(locations=[METRICS_LOC], extra=fleet_extra(
        redis.port, "gwq", fleet={"password_file": bad}))
    assert request(gw2.port, certs, "/main.html", cert="client1").status == 200
    assert metrics(gw2)["mtlsgw_fleet_connected"] == 0
    log = gw2.stderr()
    assert "AUTH" in log and "unreachable" in log, log
    for g in (gw, gw2):
        assert password[3:] not in g.stderr()
