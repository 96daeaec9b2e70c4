# SPDX-License-Identifier: MIT
"""cert_buckets is a plain hash (the kernel allows no spin lock in an LRU
map): when it is full, a new identity's admission makes limits.c remove
the idle identities and the connection is admitted, with its limits
enforced."""

import struct

from bpfhelp import PIN_ROOT, dump_stats, map_fill

MAX_IDENTITIES = 65536
STATE_SIZE = 72
FP1 = "ab" * 32


def test_full_bucket_map_is_collected(instance, start_probe):
    p = start_probe(instance, "default max_conns=1\n")
    idle = ((f"idle-{i}".encode().ljust(72, b"\0"), bytes(STATE_SIZE))
            for i in range(MAX_IDENTITIES))
    map_fill(PIN_ROOT / instance / "cert_buckets", idle)
    with p.connect(FP1, "client1") as c:
        assert c.admitted, (c.answer, p.log())
        with p.connect(FP1, "client1") as d:
            assert not d.admitted  # max_conns still enforced
    assert "removed" in p.log() and "idle identities" in p.log()
    assert dump_stats(instance)[FP1]["conns_total"] == 1
    # struct layout check: the value size the program uses.
    assert STATE_SIZE == struct.calcsize("<I I 8q")
