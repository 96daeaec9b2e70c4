# SPDX-License-Identifier: MIT
"""Token buckets in the kernel: a burst of new connections beyond
conn_burst is refused in the expected count, and requests beyond
req_burst get LIMIT (429) while the connection stays usable; counters
match what the clients saw."""

import time

from bpfhelp import dump_stats

FP1 = "f6" * 32


def test_conn_rate_burst(instance, start_probe):
    # 2/s with a burst of 4: 10 quick connections get 4 through, plus one
    # per half second they took.
    p = start_probe(instance, "default conn_rate=2 conn_burst=4\n")
    t0 = time.monotonic()
    conns = [p.connect(FP1, "client1") for _ in range(10)]
    elapsed = time.monotonic() - t0
    admitted = sum(c.admitted for c in conns)
    assert 4 <= admitted <= 4 + int(2 * elapsed), ([c.answer for c in conns],
                                                   elapsed)
    refused = [c for c in conns if not c.admitted]
    assert all(c.retry_after() >= 1 for c in refused)
    st = dump_stats(instance)[FP1]
    assert st["conns_total"] == admitted
    assert st["conns_rejected"] == 10 - admitted
    for c in conns:
        c.close()
    # Tokens come back at the rate.
    time.sleep(1.1)
    with p.connect(FP1, "client1") as c:
        assert c.admitted


def test_req_rate_burst(instance, start_probe):
    p = start_probe(instance, "default req_rate=5 req_burst=10\n")
    with p.connect(FP1, "client1") as c:
        assert c.admitted
        t0 = time.monotonic()
        answers = [c.request() for _ in range(30)]
        elapsed = time.monotonic() - t0
        ok = answers.count("OK")
        limited = [a for a in answers if a.startswith("LIMIT")]
        assert 10 <= ok <= 10 + int(5 * elapsed), (answers, elapsed)
        assert len(limited) == 30 - ok
        assert all(int(a.split()[1]) >= 1 for a in limited)
        # The connection stays usable, and the bucket refills.
        time.sleep(0.25)
        assert c.request() == "OK"
        st = dump_stats(instance)[FP1]
        assert st["requests"] == ok + 1
        assert st["requests_rejected"] == 30 - ok
        assert st["conns_active"] == 1
