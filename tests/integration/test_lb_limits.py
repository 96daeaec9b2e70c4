# SPDX-License-Identifier: MIT
"""Anonymous limits behind HAProxy key on the original client address,
not the balancer's: two gateways (BPF limits, [limits anonymous]
max_conns = 2) behind conf/haproxy-example.cfg. Five connections held by
one client address (127.0.0.3) cannot all be admitted on two gateways:
at least one is answered 429; a client from another address (127.0.0.5)
is still served, which it would not be if every connection counted
against HAProxy's 127.0.0.1. cert_stats counts the client's address.
Needs BPF (root, BTF) like tests/bpf: skipped without it, failed in CI."""

import sys

import pytest

from helpers import HOST, REPO, SNI, build_request, client_context, free_port, read_response, \
    wait_until
from lbhelp import HAProxy, connect_from

sys.path.insert(0, str(REPO / "tests" / "bpf"))
from bpfhelp import (bpf_unavailable_reason, cleanup_instance, dump_stats,  # noqa: E402
                     in_ci, limits_config, unique_instance)

CHECK_TIMEOUT = 40.0


@pytest.fixture
def instances():
    why = bpf_unavailable_reason()
    if why:
        if in_ci():
            pytest.fail(f"needs BPF in CI: {why}")
        pytest.skip(why)
    names = [unique_instance(), unique_instance()]
    for n in names:
        cleanup_instance(n)
    yield names
    for n in names:
        cleanup_instance(n)


def _held_request(lb_port, certs, source):
    """A TLS connection through HAProxy from SOURCE, kept open after one
    request; (socket, status)."""
    raw = connect_from(source, lb_port)
    s = client_context(certs).wrap_socket(raw, server_hostname=SNI)
    s.sendall(build_request("GET", "/health", close=False))
    return s, read_response(s).status


@pytest.mark.timeout(120)
def test_anonymous_limit_per_client_address(instances, gateway_factory, certs, tmp_path):
    gws = []
    for inst in instances:
        pp = free_port()
        gw = gateway_factory(
            locations=[("/ready", {"ready": "yes"})],
            extra=(f"[server]\nlisten = {HOST}:{pp} proxy_protocol\nproxy_from = 127.0.0.1/32\n"
                   + limits_config(inst, anonymous={"max_conns": 2})))
        gw.pp_port = pp
        gws.append(gw)
    ha = HAProxy(tmp_path, certs.dir, f"{HOST}:{gws[0].pp_port}",
                 f"{HOST}:{gws[1].pp_port}").start()
    held = []
    try:
        up = wait_until(lambda: all(r["status"] == "UP" and r["check_status"] == "L7OK"
                                    for r in ha.servers().values()), timeout=CHECK_TIMEOUT)
        assert up, ha.servers()
        statuses = []
        for _ in range(5):
            s, status = _held_request(ha.port, certs, "127.0.0.3")
            held.append(s)
            statuses.append(status)
        assert 429 in statuses, statuses
        assert statuses.count(200) <= 4, statuses
        s, status = _held_request(ha.port, certs, "127.0.0.5")
        held.append(s)
        assert status == 200, "another client address must not share 127.0.0.3's limit"
        stats = [dump_stats(i) for i in instances]
        assert sum(st.get("127.0.0.3", {}).get("conns_rejected", 0) for st in stats) >= 1, stats
        assert all(st.get("127.0.0.1", {}).get("conns_rejected", 0) == 0 for st in stats), stats
        assert sum(st.get("127.0.0.5", {}).get("conns_total", 0) for st in stats) == 1, stats
    finally:
        for s in held:
            s.close()
        ha.stop()
