# SPDX-License-Identifier: MIT
"""The real gateway, cert_buckets full of identities with open
connections: limits never fail open. A client whose identity has no room
is answered 429 with Retry-After (and the connection closed), and the
refusal is counted in /metrics as reason="limits_state"; once a slot is
free, clients get in again."""

from bpfhelp import (ID_LEN, PIN_ROOT, busy_state, get, limits_config,
                     map_delete, map_fill, map_keys, start_check_settled)

MAX_IDENTITIES = 65536  # include/mtlsgw_abi.h


def _metrics(gw):
    r = get(gw, "/metrics")
    assert r.status == 200, (r.status, r.body)
    out = {}
    for line in r.text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_full_state_refuses_with_429(instance, gateway_factory, certs):
    gw = gateway_factory(
        locations=[("/metrics", {"metrics": "yes"})],
        extra=limits_config(instance, default={"max_conns": 100}))
    path = PIN_ROOT / instance / "cert_buckets"
    start_check_settled(instance)
    for k in map_keys(path):  # the start-up check's entry, idle
        map_delete(path, k)
    fake = [f"busy-{i}".encode().ljust(ID_LEN, b"\0")
            for i in range(MAX_IDENTITIES)]
    map_fill(path, ((k, busy_state(k)) for k in fake))

    for cert in ("client1", None):
        r = get(gw, "/main.html", cert=cert)
        assert r.status == 429, (cert, r.status, r.body)
        assert int(r.header("Retry-After")) >= 1
    assert "refusing the connection" in gw.stderr()

    map_delete(path, fake[0])  # one slot: the metrics client takes it
    m = _metrics(gw)
    assert m['mtlsgw_connections_refused_total{reason="limits_state"}'] >= 2
    assert get(gw, "/main.html").status == 200
