# SPDX-License-Identifier: MIT
"""limits_reload (SIGHUP): entries the config names are rewritten, an
override removed from the config is removed from cert_limits, and an
entry an operator added with bpftool (from_config 0) is kept."""

from bpfhelp import dump_limits, update_limit

FP1 = "4f" * 32
FP2 = "5a" * 32
FP3 = "6b" * 32


def test_reload_rewrites_config_entries(instance, start_probe):
    p = start_probe(instance, f"default max_conns=5\n{FP1} max_conns=1\n")
    lim = dump_limits(instance)
    assert lim["default"]["max_conns"] == 5
    assert lim[FP1]["max_conns"] == 1 and lim[FP1]["from_config"] == 1
    assert lim["anonymous"]["max_conns"] == 5  # inherits from default

    update_limit(instance, FP3, max_conns=7)  # an operator's entry
    update_limit(instance, "default", max_conns=99)  # overridden by reload

    p.reload(f"default max_conns=6\n{FP2} req_rate=3\n")
    lim = dump_limits(instance)
    assert lim["default"]["max_conns"] == 6
    assert FP1 not in lim
    assert lim[FP2]["req_rate"] == 3 and lim[FP2]["max_conns"] == 6
    assert lim[FP3]["max_conns"] == 7 and lim[FP3]["from_config"] == 0
