# SPDX-License-Identifier: MIT
"""limits.c + BPF on plain TCP: N admitted connections give conns_total N
and conns_active N while open, 0 after they close; requests and bytes are
charged to the identity; bpftool alone shows the fingerprint and subject
as strings."""

from bpfhelp import dump_stats, wait_for

FP1 = "a1" * 32
FP2 = "b2" * 32


def test_counts_per_identity(instance, start_probe):
    p = start_probe(instance)
    assert p.ready_mode == "bpf", p.log()
    conns = [p.connect(FP1, "client1") for _ in range(5)]
    other = p.connect(FP2, "client2")
    assert all(c.admitted for c in conns + [other])

    st = dump_stats(instance)
    assert st[FP1]["conns_total"] == 5
    assert st[FP1]["conns_active"] == 5
    assert st[FP2]["conns_total"] == 1

    for _ in range(7):
        assert conns[0].request() == "OK"
    conns[1].get(300_000)
    conns[2].put(200_000)
    st = dump_stats(instance)
    assert st[FP1]["requests"] == 7
    assert st[FP1]["requests_rejected"] == 0
    assert st[FP1]["bytes_out"] >= 300_000
    assert st[FP1]["bytes_in"] >= 200_000
    assert st[FP2]["bytes_out"] < 10_000
    # Text fields are strings in bpftool's JSON, counters are numbers.
    assert st[FP1]["fingerprint"] == FP1
    assert st[FP1]["subject"] == "client1"
    assert isinstance(st[FP1]["conns_total"], int)
    assert st[FP1]["last_seen"] > 1_600_000_000

    for c in conns + [other]:
        c.close()
    assert wait_for(lambda: dump_stats(instance)[FP1]["conns_active"] == 0)
    st = dump_stats(instance)
    assert st[FP1]["conns_total"] == 5
    assert st[FP2]["conns_active"] == 0
