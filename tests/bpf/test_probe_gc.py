# SPDX-License-Identifier: MIT
"""cert_buckets holds what enforcement needs (open connections, token
buckets); it is a plain hash (the kernel allows no spin lock in an LRU
map) that only the daemon's GC empties, through the kernel program. Driven
with 100k distinct identities against its 65536 entries, each bound on a
real socket by the real programs:

- full of identities that are not idle, a new identity is refused (never
  admitted without limits) and counted as such; known identities still
  get in;
- once they are idle, GC reclaims them: a bounded number of entries looked
  at per call, linear over calls (the C struct's totals, not arithmetic
  done here);
- an identity with open connections keeps its max_conns and an exact
  conns_active while the flood churns through cert_stats (an LRU).
"""

from bpfhelp import stats_of, wait_for

MAX_IDENTITIES = 65536  # include/mtlsgw_abi.h
GC_SCAN = 4096  # LIMITS_GC_SCAN, daemon/limits_private.h
FLOOD = 100000
HOUR_NS = 3600 * 10**9
FPX = "ee" * 32


def fp(i):
    return f"{i:064x}"


def test_full_state_map_refuses_new_identities(instance, start_probe):
    # conn_rate touches the conn bucket: with a GC idle time of an hour,
    # no entry is reclaimable.
    p = start_probe(instance, "default max_conns=2 conn_rate=1000000\n")
    p.control(f"GC {HOUR_NS}")
    r = p.control(f"BULK 0 {FLOOD} 0")
    assert r == {"admitted": MAX_IDENTITIES,
                 "full": FLOOD - MAX_IDENTITIES,
                 "refused": 0, "error": 0}, (r, p.log()[-2000:])
    gc = p.control("GCSTATS")
    assert gc["calls"] >= 1 and gc["reclaimed"] == 0
    assert 0 < gc["max"] <= GC_SCAN, gc
    # The real connection path: a new identity is refused with a
    # Retry-After, a known one is admitted and still limited.
    with p.connect(fp(FLOOD + 1), "new") as c:
        assert not c.admitted and c.retry_after() >= 1, c.answer
    with p.connect(fp(7), "known") as a, p.connect(fp(7), "known") as b:
        assert a.admitted and b.admitted
        with p.connect(fp(7), "known") as c:
            assert not c.admitted  # max_conns = 2
    assert "refusing the connection" in p.log()


def test_gc_reclaims_idle_identities_linearly(instance, start_probe):
    p = start_probe(instance, "default max_conns=2 conn_rate=1000000\n")
    p.control(f"GC {HOUR_NS}")
    r = p.control(f"BULK 0 {MAX_IDENTITIES} 0")
    assert r["admitted"] == MAX_IDENTITIES, r
    # Idle now: every admission of a new identity needs a reclaimed slot.
    p.control("GC 0")
    r = p.control(f"BULK {MAX_IDENTITIES} {FLOOD} 0")
    assert r == {"admitted": FLOOD, "full": 0, "refused": 0, "error": 0}, \
        (r, p.log()[-2000:])
    gc = p.control("GCSTATS")
    assert gc["reclaimed"] >= FLOOD, gc
    # Bounded per call; linear overall: entries looked at stay within a
    # small factor of those reclaimed (a walk restarting from the first
    # bucket after each delete would look at billions).
    assert 0 < gc["max"] <= GC_SCAN, gc
    assert gc["scanned"] <= 2 * gc["reclaimed"] + MAX_IDENTITIES, gc
    assert gc["calls"] <= gc["scanned"], gc


def test_max_conns_and_conns_active_survive_lru_churn(instance, start_probe):
    p = start_probe(instance,
                    f"default max_conns=5\n{FPX} max_conns=3\n")
    p.control("GC 0")
    held = [p.connect(FPX, "x") for _ in range(3)]
    assert all(c.admitted for c in held)
    # 100k other identities through cert_stats (65536 entries, LRU) and,
    # by GC, through cert_buckets.
    r = p.control(f"BULK 0 {FLOOD} 0")
    assert r == {"admitted": FLOOD, "full": 0, "refused": 0, "error": 0}, r
    print("after the flood:", stats_of(instance, FPX))
    with p.connect(FPX, "x") as c:
        assert not c.admitted, "max_conns = 3 lost under the flood"
    st = stats_of(instance, FPX)
    assert st is not None and st["conns_active"] == 3, st
    held.pop().close()
    # The probe releases its end after it reads our close: wait for it.
    assert wait_for(lambda: stats_of(instance, FPX)["conns_active"] == 2)
    with p.connect(FPX, "x") as c:
        assert c.admitted
        assert stats_of(instance, FPX)["conns_active"] == 3
    for c in held:
        c.close()
    assert wait_for(lambda: stats_of(instance, FPX)["conns_active"] <= 1)
    with p.connect(FPX, "x") as c:
        assert c.admitted
    # The probe closes its end after ours.
    assert wait_for(lambda: stats_of(instance, FPX)["conns_active"] == 0)
