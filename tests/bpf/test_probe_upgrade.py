# SPDX-License-Identifier: MIT
"""cert_buckets pinned by an older version (72-byte values, before the
entries carried their own key) is replaced at start instead of making BPF
mode unavailable: the probe comes up in bpf mode, says so, and enforces."""

import subprocess

from bpfhelp import PIN_ROOT, bpftool_json

FP1 = "5a" * 32


def test_old_bucket_map_is_replaced(instance, start_probe):
    pins = PIN_ROOT / instance
    pins.mkdir(parents=True)
    subprocess.run(["bpftool", "map", "create", str(pins / "cert_buckets"),
                    "type", "hash", "key", "72", "value", "72",
                    "entries", "65536", "name", "cert_buckets"],
                   check=True, capture_output=True, timeout=30)
    p = start_probe(instance, "default max_conns=1\n", mode="required")
    assert p.ready_mode == "bpf", p.log()
    assert "pinned by an older version" in p.log(), p.log()
    info = bpftool_json("map", "show", "pinned", str(pins / "cert_buckets"))
    assert info["bytes_value"] == 152, info
    with p.connect(FP1, "c") as a:
        assert a.admitted
        with p.connect(FP1, "c") as b:
            assert not b.admitted
