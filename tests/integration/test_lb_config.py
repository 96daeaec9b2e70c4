# SPDX-License-Identifier: MIT
"""The load-balancer keys at the config check and at start: `mtlsgw -t`
refuses a bad proxy_from (an address with host bits set, a name, a bad
prefix length), proxy_from without any proxy_protocol listener, and a
location with both ready and another handler, each as FILE:LINE; a
proxy_protocol listener without proxy_from starts but warns that every
source is trusted, and with proxy_from it does not warn; a reload applies
a changed proxy_from."""

import signal
import subprocess

import pytest

from helpers import (HOST, SNI, build_request, client_context, free_port, read_response,
                     request, wait_until)
from lbhelp import connect_from


def _conf(certs, tmp_path, server_lines, extra=""):
    text = "\n".join([
        "[server]",                                        # 1
        f"listen = {HOST}:18443 proxy_protocol",           # 2
        *server_lines,                                     # 3...
        "[tls]",
        f"cert = {certs.dir / 'server.crt'}",
        f"key = {certs.dir / 'server.key'}",
        f"client_ca = {certs.dir / 'client-ca.pem'}",
        "[location /ready]",
        "ready = yes",
    ]) + "\n" + extra
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return path


def _check(mtlsgw_bin, path):
    p = subprocess.run([str(mtlsgw_bin), "-t", "-c", str(path)], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("value,message", [
    ("10.0.0.1/8", "'10.0.0.1/8': host bits are set"),
    ("127.0.0.1/32, lb1.example", "'lb1.example': not an IPv4 or IPv6 address"),
    ("2001:db8::/129", "prefix length must be 0 to 128"),
    ("10.0.0.0/8,", "empty item"),
])
def test_bad_proxy_from(certs, tmp_path, mtlsgw_bin, value, message):
    path = _conf(certs, tmp_path, ["workers = 1", f"proxy_from = {value}"])
    rc, out = _check(mtlsgw_bin, path)
    assert rc == 1
    assert f"{path}:4: bad value '{value}' for proxy_from" in out, out
    assert message in out, out


def test_good_proxy_from_and_drain_delay(certs, tmp_path, mtlsgw_bin):
    path = _conf(certs, tmp_path, ["proxy_from = 127.0.0.1/32, 10.0.0.0/8",
                                   "proxy_from = ::1, 2001:db8::/32", "drain_delay = 5s"])
    assert _check(mtlsgw_bin, path) == (0, f"{path}: configuration ok\n")


def test_proxy_from_needs_a_proxy_protocol_listener(certs, tmp_path, mtlsgw_bin):
    path = _conf(certs, tmp_path, [f"listen = {HOST}:18444", "proxy_from = 127.0.0.1"])
    path.write_text(path.read_text().replace(" proxy_protocol", ""))
    rc, out = _check(mtlsgw_bin, path)
    assert rc == 1
    assert f"{path}:4: proxy_from (line 4) has no effect" in out, out


def test_ready_is_a_handler(certs, tmp_path, mtlsgw_bin):
    path = _conf(certs, tmp_path, [], extra="return = 200 ok\n")
    rc, out = _check(mtlsgw_bin, path)
    assert rc == 1
    assert "[location /ready]: ready (line 8) and return (line 9) are both set" in out, out


def test_warns_without_proxy_from(gateway_factory, certs):
    pp = free_port()
    gw = gateway_factory(locations=[("/ready", {"ready": "yes"})],
                         extra=f"[server]\nlisten = {HOST}:{pp} proxy_protocol\n")
    assert request(gw.port, certs, "/ready").status == 200
    assert (f"listen {HOST}:{pp}: proxy_protocol without proxy_from trusts a PROXY header "
            "from every source") in gw.stderr()


def test_no_warning_with_proxy_from(gateway_factory, certs):
    pp = free_port()
    gw = gateway_factory(extra=f"[server]\nlisten = {HOST}:{pp} proxy_protocol\n"
                               "proxy_from = 127.0.0.1/32\n")
    assert request(gw.port, certs, "/health").status == 200
    assert "without proxy_from" not in gw.stderr()


def test_reload_applies_proxy_from(gateway_factory, certs):
    """127.0.0.2 is refused before TLS; after a reload that lists it, its
    PROXY header is taken."""
    pp = free_port()
    gw = gateway_factory(extra=f"[server]\nlisten = {HOST}:{pp} proxy_protocol\n"
                               "proxy_from = 127.0.0.1/32\n")
    s = connect_from("127.0.0.2", pp)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        s.close()
    gw.conf.write_text(gw.conf.read_text().replace("proxy_from = 127.0.0.1/32",
                                                   "proxy_from = 127.0.0.0/30"))
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reloaded" in gw.stderr(), timeout=10), gw.stderr()[-2000:]
    raw = connect_from("127.0.0.2", pp)
    raw.sendall(b"PROXY TCP4 203.0.113.44 127.0.0.1 4444 443\r\n")
    t = client_context(certs).wrap_socket(raw, server_hostname=SNI)
    try:
        t.sendall(build_request("GET", "/health"))
        assert read_response(t).status == 200
    finally:
        t.close()
    assert wait_until(lambda: any(l["client"] == "203.0.113.44:4444" for l in gw.access()))
