# SPDX-License-Identifier: MIT
"""Without BPF privileges: mode auto falls back to the userspace limiter
(same limits, loud warning, no pinned maps), mode required refuses to
start and says why; mode off counts and limits nothing."""

import pwd

from bpfhelp import PIN_ROOT

FP1 = "7c" * 32


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def test_auto_falls_back_to_userspace(instance, start_probe):
    p = start_probe(instance, "default max_conns=2 req_rate=2 req_burst=3\n",
                    user=nobody())
    assert p.ready_mode == "userspace", p.log()
    assert "BPF UNAVAILABLE" in p.log() and "USERSPACE" in p.log()
    assert not (PIN_ROOT / instance).exists()
    a, b = p.connect(FP1, "client1"), p.connect(FP1, "client1")
    assert a.admitted and b.admitted
    c = p.connect(FP1, "client1")
    assert not c.admitted and c.retry_after() >= 1
    c.close()
    answers = [a.request() for _ in range(5)]
    assert answers[:3] == ["OK"] * 3
    assert all(x.startswith("LIMIT") for x in answers[3:])
    # Release frees the slot (userspace bookkeeping).
    b.close()
    for _ in range(50):
        with p.connect(FP1, "client1") as d:
            if d.admitted:
                break
    else:
        raise AssertionError("slot never freed after close")
    a.close()


def test_required_refuses_to_start(instance, start_probe):
    p = start_probe(instance, "", mode="required", user=nobody(),
                    expect_ready=False)
    assert p.proc.returncode == 1
    log = p.log()
    assert "mode = required" in log and "unavailable" in log, log


def test_off(instance, start_probe):
    p = start_probe(instance, "default max_conns=1\n", mode="off")
    assert p.ready_mode == "off"
    conns = [p.connect(FP1, "client1") for _ in range(3)]
    assert all(c.admitted for c in conns)
    assert all(conns[0].request() == "OK" for _ in range(5))
    assert not (PIN_ROOT / instance).exists()
    for c in conns:
        c.close()


def test_incompatible_pinned_map(instance, start_probe):
    """Maps pinned by another layout are not reused: required says what to
    remove; auto falls back and leaves nothing new pinned."""
    import subprocess
    pins = PIN_ROOT / instance
    pins.mkdir(parents=True)
    subprocess.run(["bpftool", "map", "create", str(pins / "cert_stats"),
                    "type", "hash", "key", "8", "value", "8", "entries", "16",
                    "name", "cert_stats"], check=True)
    p = start_probe(instance, "", mode="required", expect_ready=False)
    assert p.proc.returncode == 1
    assert "rm -r" in p.log() and str(pins) in p.log(), p.log()
    q = start_probe(instance, "default max_conns=1\n")
    assert q.ready_mode == "userspace", q.log()
    assert sorted(x.name for x in pins.iterdir()) == ["cert_stats"]


def _chain(fp, chains=4096):
    """daemon/limits.c's limits_hash (FNV-1a) chain of an identity."""
    h = 2166136261
    for ch in fp.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h % chains


def test_userspace_full_table_refuses(instance, start_probe):
    """The userspace table holds 16 identities per hash chain: when a
    chain is full of identities with open connections, a new identity of
    that chain is refused (REFUSED, as the gateway answers 429), never
    admitted without limits; once one closes, its slot is reused."""
    per_chain, chain_max = {}, 65536 // 4096
    i = 0
    while True:
        fp = f"{i:064x}"
        same = per_chain.setdefault(_chain(fp), [])
        same.append(fp)
        if len(same) > chain_max:
            break
        i += 1
    p = start_probe(instance, "default max_conns=5\n", user=nobody())
    assert p.ready_mode == "userspace", p.log()
    held = [p.connect(fp, "x") for fp in same[:chain_max]]
    assert all(c.admitted for c in held)
    with p.connect(same[chain_max], "x") as c:
        assert not c.admitted and c.retry_after() >= 1, c.answer
    assert "no limiter state" in p.log()
    held.pop().close()
    for _ in range(50):
        with p.connect(same[chain_max], "x") as d:
            if d.admitted:
                break
    else:
        raise AssertionError("slot never freed after close")
    for c in held:
        c.close()
