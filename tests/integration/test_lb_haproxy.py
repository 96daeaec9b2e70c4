# SPDX-License-Identifier: MIT
"""Behind a real load balancer: Debian's HAProxy, running
conf/haproxy-example.cfg itself (TCP mode, send-proxy-v2, health checks on
/ready over TLS), in front of two gateways whose proxy_protocol listeners
take PROXY headers only from 127.0.0.1 (proxy_from).

- mTLS passes through HAProxy and ends at the gateway (client1 reaches a
  client_cert = require location);
- both gateways serve, and each sees the original client address (a
  client bound to 127.0.0.3) in its access log, and forwards it as
  X-Forwarded-For to an upstream;
- HAProxy's checks reach /ready on both (stats socket: UP, L7OK 200);
- a connection to a gateway from 127.0.0.2 (outside proxy_from) is closed
  before a single TLS byte, counted in /metrics, and logged at most once a
  second however many come;
- a gateway given SIGTERM (drain_delay) answers /ready 503 at once: HAProxy
  marks it DOWN for that 503 (L7STS, not a refused connection) while it
  still accepts, and sends every request to the other gateway.
The example itself passes `haproxy -c`.
"""

import json
import re
import signal
import ssl
import struct
import time

import pytest

from helpers import (HOST, SNI, build_request, client_context, free_port, read_response,
                     request, wait_until)
from lbhelp import HAProxy, check_example, connect_from
from upstream_server import Upstream

CLIENT = "127.0.0.3"   # the "real" client, as HAProxy sees it
OUTSIDER = "127.0.0.2"  # not in proxy_from
CHECK_TIMEOUT = 40.0    # HAProxy: inter 2s, fall 2, rise 2, on a loaded machine


def _gateway(factory, upstream, drain_delay="0s"):
    pp_port = free_port()
    gw = factory(
        locations=[("/ready", {"ready": "yes"}), ("/metrics", {"metrics": "yes"}),
                   ("/echo/", {"proxy_pass": f"http://{upstream.addr}/"})],
        extra=(f"[server]\nlisten = {HOST}:{pp_port} proxy_protocol\n"
               f"proxy_from = 127.0.0.1/32\ndrain_delay = {drain_delay}\n"))
    gw.pp_port = pp_port
    return gw


@pytest.fixture(scope="module")
def lb(module_gateway_factory, certs, tmp_path_factory):
    up = Upstream().start()
    gw1 = _gateway(module_gateway_factory, up)
    # gw2 is drained by the last test: long enough for HAProxy to notice.
    gw2 = _gateway(module_gateway_factory, up, drain_delay="60s")
    ha = HAProxy(tmp_path_factory.mktemp("haproxy"), certs.dir,
                 f"{HOST}:{gw1.pp_port}", f"{HOST}:{gw2.pp_port}").start()
    ha.gw = {"gw1": gw1, "gw2": gw2}
    ha.upstream = up
    try:
        yield ha
    finally:
        ha.stop()
        up.stop()


def _via(lb, certs, path, source=CLIENT, cert=None):
    """One request through HAProxy from SOURCE; (response, client port)."""
    raw = connect_from(source, lb.port)
    port = raw.getsockname()[1]
    s = client_context(certs, cert=cert).wrap_socket(raw, server_hostname=SNI)
    try:
        s.sendall(build_request("GET", path))
        return read_response(s), port
    finally:
        s.close()


def _states(lb):
    return {name: (row["status"], row["check_status"], row["check_code"])
            for name, row in lb.servers().items()}


def _both_up(lb):
    st = _states(lb)
    return all(st.get(n, ("",))[0] == "UP" and st[n][1] == "L7OK" for n in ("gw1", "gw2")) and st


def test_example_passes_haproxy_check(certs):
    rc, out = check_example(certs.dir)
    assert rc == 0, out


def test_health_checks_use_ready(lb):
    st = wait_until(lambda: _both_up(lb), timeout=CHECK_TIMEOUT)
    assert st, f"servers not UP by /ready: {_states(lb)}\n{lb.output()}"
    assert {v[2] for v in st.values()} == {"200"}
    for gw in lb.gw.values():
        # The check carries a PROXY v2 LOCAL header: the socket's address.
        assert wait_until(lambda: any(l["path"] == "/ready" and l["status"] == 200
                                      and l["client"].startswith("127.0.0.1:")
                                      for l in gw.access())), gw.access()[-3:]


def test_both_gateways_see_the_client_address(lb, certs):
    assert wait_until(lambda: _both_up(lb), timeout=CHECK_TIMEOUT), _states(lb)
    ports = []
    for _ in range(6):
        r, port = _via(lb, certs, "/health")
        assert r.status == 200
        ports.append(port)
    served = {}
    for name, gw in lb.gw.items():
        def mine():
            return [l for l in gw.access() if l["path"] == "/health"
                    and l["client"].split(":")[0] == CLIENT]
        wait_until(lambda: len(mine()) >= 1, timeout=5)
        served[name] = mine()
    assert sum(len(v) for v in served.values()) == 6, served
    assert all(served.values()), f"round robin must use both gateways: {served}"
    assert sorted(int(l["client"].split(":")[1]) for v in served.values() for l in v) \
        == sorted(ports)


def test_mtls_passes_through(lb, certs):
    r, _ = _via(lb, certs, "/protected/", cert="client1")
    assert r.status == 200, r
    r, _ = _via(lb, certs, "/protected/")
    assert r.status == 403, r


def test_x_forwarded_for_is_the_client(lb, certs):
    r, port = _via(lb, certs, "/echo/xff", source="127.0.0.4")
    assert r.status == 200, r
    seen = json.loads(r.body)
    xff = [v for k, v in seen["headers"] if k.lower() == "x-forwarded-for"]
    assert xff == ["127.0.0.4"], seen["headers"]


def _refused_before_tls(gw, payload):
    """Connect from OUTSIDER, send PAYLOAD; what comes back before close."""
    s = connect_from(OUTSIDER, gw.pp_port, timeout=10)
    try:
        try:
            if payload:
                s.sendall(payload)
        except OSError:
            pass  # already closed: fine
        data = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()


def _client_hello():
    """The first flight of a real TLS client (from a memory BIO)."""
    ctx = client_context_for_hello()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=SNI)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def client_context_for_hello():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


REFUSED = 'mtlsgw_connections_refused_total{reason="proxy_from"}'


def _metric(gw, certs, name):
    """A value of GW's /metrics, read on its plain listener."""
    r = request(gw.port, certs, "/metrics")
    m = re.search(r"^" + re.escape(name) + r" (\d+)$", r.text(), re.M)
    return int(m.group(1)) if m else None


def test_outside_proxy_from_is_closed_before_tls(lb, certs):
    gw = lb.gw["gw1"]
    v2_header = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack("!H", 12)
                 + bytes([198, 51, 100, 1, 127, 0, 0, 1]) + struct.pack("!HH", 1234, 443))
    # Nothing sent, a forged header + ClientHello: not one byte comes back.
    assert _refused_before_tls(gw, b"") == b""
    assert _refused_before_tls(gw, v2_header + _client_hello()) == b""
    assert wait_until(lambda: f"connection from {OUTSIDER}:" in gw.stderr()
                      and "not in proxy_from" in gw.stderr()), gw.stderr()[-2000:]
    assert not any(l["client"].startswith("198.51.100.1") for l in gw.access())
    # From 127.0.0.1 (HAProxy's address) the same listener works.
    assert wait_until(lambda: _both_up(lb), timeout=CHECK_TIMEOUT), _states(lb)


def test_refusals_counted_and_log_rate_limited(lb, certs):
    gw = lb.gw["gw1"]
    lines = lambda: gw.stderr().count("not in proxy_from")  # noqa: E731
    before = lines()
    refused = _metric(gw, certs, REFUSED)
    t0 = time.monotonic()
    for _ in range(30):
        assert _refused_before_tls(gw, b"") == b""
    elapsed = time.monotonic() - t0
    time.sleep(0.2)
    logged = lines() - before
    # At most one line per second (plus one at each edge of the window).
    assert logged <= int(elapsed) + 2, (logged, elapsed)
    assert _metric(gw, certs, REFUSED) == refused + 30


def test_sigterm_takes_a_gateway_out_of_rotation(lb, certs):
    """Last: it stops gw2."""
    gw2 = lb.gw["gw2"]
    assert wait_until(lambda: _both_up(lb), timeout=CHECK_TIMEOUT), _states(lb)
    try:
        gw2.send_signal(signal.SIGTERM)
        down = wait_until(lambda: _states(lb)["gw2"][0].startswith("DOWN") and _states(lb),
                          timeout=CHECK_TIMEOUT)
        assert down, f"gw2 not marked DOWN: {_states(lb)}\n{lb.output()}"
        # DOWN because /ready said 503, not because the port went away.
        assert down["gw2"][1:] == ("L7STS", "503"), down
        assert down["gw1"][0] == "UP", down
        assert "/ready answers 503; still accepting" in gw2.stderr()
        # Still accepting (drain_delay), but HAProxy sends everything to gw1.
        before = len([l for l in gw2.access() if l["path"] == "/health"])
        for _ in range(4):
            r, _ = _via(lb, certs, "/health")
            assert r.status == 200
        direct = _via_pp_local(gw2, certs, "/ready")
        assert direct.status == 503 and "draining" in direct.text(), direct
        assert len([l for l in gw2.access() if l["path"] == "/health"]) == before
    finally:
        gw2.send_signal(signal.SIGTERM)  # the second one stops at once
        rc = gw2.wait(timeout=20)
    assert rc == 0, gw2.stderr()[-2000:]


def _via_pp_local(gw, certs, path):
    """Straight to a gateway's proxy_protocol listener, as HAProxy's own
    check does: PROXY v2 LOCAL, then TLS."""
    raw = connect_from(HOST, gw.pp_port)
    raw.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
    s = client_context(certs).wrap_socket(raw, server_hostname=SNI)
    try:
        s.sendall(build_request("GET", path))
        return read_response(s)
    finally:
        s.close()
