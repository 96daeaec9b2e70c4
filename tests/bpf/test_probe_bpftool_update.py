# SPDX-License-Identifier: MIT
"""An operator's `bpftool map update` of cert_limits takes effect on the
next connection and the next request, with no reload; a per-fingerprint
entry overrides the default for that identity only."""

from bpfhelp import dump_limits, update_limit

FP1 = "0a" * 32
FP2 = "0b" * 32


def test_live_update(instance, start_probe):
    p = start_probe(instance, "")  # unlimited
    first = p.connect(FP1, "client1")
    assert first.admitted
    assert dump_limits(instance)["default"]["max_conns"] == 0

    update_limit(instance, "default", max_conns=1)
    assert dump_limits(instance)["default"]["max_conns"] == 1
    second = p.connect(FP1, "client1")
    assert not second.admitted, "max_conns=1 not applied to the next connection"
    second.close()

    # An override for FP2 only: two requests, then 429s.
    update_limit(instance, FP2, max_conns=5, req_rate=1, req_burst=2)
    c2 = [p.connect(FP2, "client2") for _ in range(3)]
    assert all(c.admitted for c in c2)
    answers = [c2[0].request() for _ in range(4)]
    assert answers[:2] == ["OK", "OK"]
    assert all(a.startswith("LIMIT") for a in answers[2:])
    # FP1's requests are unlimited by the default entry.
    assert all(first.request() == "OK" for _ in range(20))
    for c in c2 + [first]:
        c.close()
