# SPDX-License-Identifier: MIT
"""The real gateway in bpf mode with real client certificates: per
certificate, N connections give conns_total N and conns_active 0 once
closed; requests and bytes are counted; clients without a certificate are
counted by address; `bpftool -j map dump` shows the hex fingerprint and
the subject as strings."""

from bpfhelp import KeepAlive, dump_stats, get, start_gateway, wait_for


def test_gateway_counts(instance, gateway_factory, certs):
    gw = start_gateway(gateway_factory, instance)
    assert "limits: bpf" in gw.stderr(), gw.stderr()
    fp1, fp2 = certs.fingerprint("client1"), certs.fingerprint("client2")

    # The fixture's start-up check was one anonymous connection.
    anon_before = dump_stats(instance)["127.0.0.1"]["conns_total"]
    for _ in range(5):
        assert get(gw, "/protected/", cert="client1").status == 200
    for _ in range(2):
        assert get(gw, "/main.html", cert="client2").status == 200
    assert get(gw, "/main.html").status == 200  # no certificate

    assert wait_for(lambda: dump_stats(instance)[fp1]["conns_active"] == 0)
    st = dump_stats(instance)
    assert st[fp1]["conns_total"] == 5
    assert st[fp1]["requests"] == 5
    assert st[fp1]["fingerprint"] == fp1
    assert st[fp1]["subject"] == "client1"
    # Bytes count from admission on: the handshake is not in them, and a
    # request that arrived before the bind may not be either.
    assert st[fp1]["bytes_out"] > 5 * 200 and st[fp1]["bytes_in"] > 0
    assert st[fp2]["conns_total"] == 2 and st[fp2]["subject"] == "client2"
    assert st["127.0.0.1"]["conns_total"] == anon_before + 1
    assert st["127.0.0.1"]["fingerprint"] == ""

    # Concurrent keep-alive connections are active until closed.
    conns = [KeepAlive(gw, "client1") for _ in range(3)]
    for c in conns:
        assert c.get().status == 200
    in_before = dump_stats(instance)[fp1]["bytes_in"]
    for c in conns:
        assert c.get().status == 200
    st = dump_stats(instance)[fp1]
    assert st["conns_active"] == 3 and st["requests"] == 11
    # Three requests of ~50 bytes, each in a TLS record and an IP packet.
    assert st["bytes_in"] - in_before >= 3 * 100
    for c in conns:
        c.close()
    assert wait_for(lambda: dump_stats(instance)[fp1]["conns_active"] == 0)
    assert dump_stats(instance)[fp1]["conns_total"] == 8
