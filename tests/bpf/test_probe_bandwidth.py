# SPDX-License-Identifier: MIT
"""bandwidth_out: the egress program holds a 4 MB download of a limited
identity near 1 MB/s (drop with congestion notification, TCP backs off),
while an unlimited identity downloads far faster in the same run;
bandwidth_in polices uploads the same way."""

from bpfhelp import dump_stats

FP1 = "2d" * 32
FP2 = "3e" * 32
MB = 1_000_000


def test_bandwidth_out(instance, start_probe):
    p = start_probe(instance,
                    f"default bandwidth_out={MB}\n{FP2} bandwidth_out=0\n")
    with p.connect(FP2, "client2") as fast:
        assert fast.admitted
        t_fast = fast.get(4 * MB)
    with p.connect(FP1, "client1") as slow:
        assert slow.admitted
        t_slow = slow.get(4 * MB)
    rate_slow = 4 * MB / t_slow
    rate_fast = 4 * MB / t_fast
    print(f"limited {rate_slow / MB:.2f} MB/s, unlimited {rate_fast / MB:.1f} MB/s")
    assert 0.5 * MB <= rate_slow <= 1.3 * MB
    assert rate_fast > 5 * rate_slow
    assert dump_stats(instance)[FP1]["bytes_out"] >= 4 * MB


def test_bandwidth_in(instance, start_probe):
    p = start_probe(instance, f"default bandwidth_in={MB}\n")
    with p.connect(FP1, "client1") as c:
        assert c.admitted
        t = c.put(3 * MB)
    rate = 3 * MB / t
    print(f"upload {rate / MB:.2f} MB/s")
    assert 0.4 * MB <= rate <= 1.3 * MB
