# SPDX-License-Identifier: MIT
"""An operator lowers a limit with `bpftool map update` while the gateway
runs: the next connection sees it (429), with no reload."""

from bpfhelp import KeepAlive, dump_limits, get, start_gateway, update_limit


def test_bpftool_update_applies_at_once(instance, gateway_factory, certs):
    gw = start_gateway(gateway_factory, instance)
    fp1 = certs.fingerprint("client1")
    with KeepAlive(gw, "client1") as held:
        assert held.get().status == 200
        assert get(gw, cert="client1").status == 200
        update_limit(instance, fp1, max_conns=1)
        assert dump_limits(instance)[fp1]["max_conns"] == 1
        r = get(gw, cert="client1")
        assert r.status == 429
        assert get(gw, cert="client2").status == 200  # default: unlimited
        update_limit(instance, fp1, max_conns=5, req_rate=1, req_burst=1)
        codes = [held.get().status for _ in range(3)]
        assert codes[0] == 200 and codes[1:] == [429, 429]
