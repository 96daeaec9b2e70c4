# SPDX-License-Identifier: MIT
"""Counts stay exact when the process is killed with SIGKILL (the pinned
cgroup/sock_release program closes the books), the programs stay attached
through a restart (the pinned links are updated in place, not replaced),
and counters and limits survive the restart."""

import signal
import subprocess

from bpfhelp import PIN_ROOT, bpftool_json, dump_stats, wait_for

FP1 = "c3" * 32


def link_info(instance, prog):
    return bpftool_json("link", "show", "pinned",
                        str(PIN_ROOT / instance / f"link_{prog}"))


def test_sigkill_then_restart(instance, start_probe):
    p = start_probe(instance, "default max_conns=3\n")
    conns = [p.connect(FP1, "client1") for _ in range(3)]
    assert all(c.admitted for c in conns)
    assert dump_stats(instance)[FP1]["conns_active"] == 3
    before = link_info(instance, "setsockopt_bind_identity")

    p.kill(signal.SIGKILL)
    for c in conns:
        c.close()
    assert wait_for(lambda: dump_stats(instance)[FP1]["conns_active"] == 0), \
        dump_stats(instance)[FP1]
    # Still attached with nobody holding a file descriptor: pinned links.
    assert link_info(instance, "skb_egress_meter")["prog_id"]

    p2 = start_probe(instance, "default max_conns=3\n")
    assert p2.ready_mode == "bpf", p2.log()
    after = link_info(instance, "setsockopt_bind_identity")
    assert after["id"] == before["id"], "link replaced instead of updated"
    assert after["prog_id"] != before["prog_id"], "old program still attached"
    # The old program is gone once its link points elsewhere.
    assert wait_for(lambda: subprocess.run(
        ["bpftool", "prog", "show", "id", str(before["prog_id"])],
        capture_output=True).returncode != 0)

    st = dump_stats(instance)[FP1]
    assert st["conns_total"] == 3 and st["conns_active"] == 0
    with p2.connect(FP1, "client1") as c:
        assert c.admitted
        assert c.request() == "OK"
        st = dump_stats(instance)[FP1]
        assert st["conns_total"] == 4 and st["conns_active"] == 1
    assert wait_for(lambda: dump_stats(instance)[FP1]["conns_active"] == 0)
