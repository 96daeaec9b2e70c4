# SPDX-License-Identifier: MIT
"""Counts stay exact when the gateway is killed with SIGKILL (the pinned
sock_release program closes the books), and counters survive a restart
(pinned maps reused), also a graceful one."""

import signal

from bpfhelp import KeepAlive, dump_stats, get, start_gateway, wait_for


def test_sigkill_and_restart(instance, gateway_factory, certs):
    fp1 = certs.fingerprint("client1")
    gw = start_gateway(gateway_factory, instance)
    conns = [KeepAlive(gw, "client1") for _ in range(3)]
    for c in conns:
        assert c.get().status == 200
    assert dump_stats(instance)[fp1]["conns_active"] == 3

    gw.kill()
    gw.returncode = gw.proc.returncode
    assert gw.returncode == -signal.SIGKILL
    for c in conns:
        c.close()
    assert wait_for(lambda: dump_stats(instance)[fp1]["conns_active"] == 0), \
        dump_stats(instance)[fp1]

    gw2 = start_gateway(gateway_factory, instance)
    st = dump_stats(instance)[fp1]
    assert st["conns_total"] == 3 and st["requests"] == 3
    assert get(gw2, cert="client1").status == 200
    assert wait_for(lambda: dump_stats(instance)[fp1]["conns_total"] == 4)

    assert gw2.stop() == 0  # graceful restart keeps them too
    gw3 = start_gateway(gateway_factory, instance)
    assert get(gw3, cert="client1").status == 200
    assert wait_for(lambda: dump_stats(instance)[fp1]["conns_total"] == 5)
    assert dump_stats(instance)[fp1]["requests"] == 5
