# SPDX-License-Identifier: MIT
"""conn_rate/conn_burst and req_rate/req_burst in the kernel: bursts
beyond the bucket get 429 in the expected counts; a request over the
rate gets 429 and the connection stays usable."""

import time

from bpfhelp import KeepAlive, dump_stats, get, start_gateway


def test_conn_burst(instance, gateway_factory, certs):
    gw = start_gateway(gateway_factory, instance,
                       default={"conn_rate": 1, "conn_burst": 4})
    t0 = time.monotonic()
    codes = [get(gw, cert="client1").status for _ in range(10)]
    elapsed = time.monotonic() - t0
    ok = codes.count(200)
    # 4 from the burst, plus at most one token per second meanwhile.
    assert 4 <= ok <= 4 + int(elapsed), (codes, elapsed)
    assert codes.count(429) == 10 - ok
    st = dump_stats(instance)[certs.fingerprint("client1")]
    assert st["conns_rejected"] == 10 - ok and st["conns_total"] == ok


def test_req_burst(instance, gateway_factory, certs):
    gw = start_gateway(gateway_factory, instance,
                       default={"req_rate": 2, "req_burst": 6})
    with KeepAlive(gw, "client1") as c:
        t0 = time.monotonic()
        resp = [c.get() for _ in range(15)]
        elapsed = time.monotonic() - t0
        codes = [r.status for r in resp]
        ok = codes.count(200)
        assert 6 <= ok <= 6 + int(2 * elapsed), (codes, elapsed)
        assert codes.count(429) == 15 - ok
        assert all(int(r.header("Retry-After")) >= 1
                   for r in resp if r.status == 429)
        time.sleep(0.6)
        assert c.get().status == 200  # same connection, after a refill
    st = dump_stats(instance)[certs.fingerprint("client1")]
    assert st["requests"] == ok + 1
    assert st["requests_rejected"] == 15 - ok
