# SPDX-License-Identifier: MIT
"""max_conns = 2: the third concurrent connection of client1 is answered
429 Too Many Requests with Retry-After and closed; client2 is unaffected;
the refusal is counted."""

from bpfhelp import KeepAlive, dump_stats, get, start_gateway


def test_third_connection_gets_429(instance, gateway_factory, certs):
    gw = start_gateway(gateway_factory, instance, default={"max_conns": 2})
    fp1, fp2 = certs.fingerprint("client1"), certs.fingerprint("client2")
    held = [KeepAlive(gw, "client1") for _ in range(2)]
    for c in held:
        assert c.get().status == 200
    r = get(gw, cert="client1")
    assert r.status == 429, (r.status, r.body)
    assert int(r.header("Retry-After")) >= 1
    others = [KeepAlive(gw, "client2") for _ in range(2)]
    for c in others:
        assert c.get().status == 200
    st = dump_stats(instance)
    assert st[fp1]["conns_rejected"] == 1 and st[fp1]["conns_active"] == 2
    assert st[fp2]["conns_rejected"] == 0 and st[fp2]["conns_active"] == 2
    # The held connections still work.
    assert held[0].get().status == 200
    for c in held + others:
        c.close()
