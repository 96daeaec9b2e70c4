# SPDX-License-Identifier: MIT
"""max_conns=2: the third concurrent connection of one identity is refused
(with a Retry-After), another identity is unaffected, and a slot freed by
a close is usable again."""

from bpfhelp import dump_stats, wait_for

FP1 = "d4" * 32
FP2 = "e5" * 32


def test_third_connection_refused(instance, start_probe):
    p = start_probe(instance, "default max_conns=2\n")
    a, b = p.connect(FP1, "client1"), p.connect(FP1, "client1")
    assert a.admitted and b.admitted
    c = p.connect(FP1, "client1")
    assert not c.admitted
    assert c.retry_after() >= 1
    c.close()
    others = [p.connect(FP2, "client2") for _ in range(2)]
    assert all(o.admitted for o in others)

    st = dump_stats(instance)
    assert st[FP1]["conns_rejected"] == 1
    assert st[FP1]["conns_active"] == 2
    assert st[FP2]["conns_rejected"] == 0

    a.close()
    assert wait_for(lambda: dump_stats(instance)[FP1]["conns_active"] == 1)
    with p.connect(FP1, "client1") as d:
        assert d.admitted
    for x in [b] + others:
        x.close()
