# SPDX-License-Identifier: MIT
"""A listener marked `proxy_protocol` (behind a load balancer) takes the
real client address from a PROXY v1 or v2 header: the access log names it;
a LOCAL / UNKNOWN header (the balancer's own health check) keeps the socket
address; a header that is missing, malformed or too slow closes the
connection before TLS, and a header split over two TCP segments still
works. Not one byte of the ClientHello is lost to the header parser."""

import socket
import struct
import time

import pytest

from helpers import HOST, SNI, build_request, client_context, free_port, read_response, wait_until


@pytest.fixture(scope="module")
def pp(module_gateway_factory):
    port2 = free_port()
    gw = module_gateway_factory(
        tls={"handshake_timeout": "2s"},
        extra=f"[server]\nlisten = {HOST}:{port2} proxy_protocol\n")
    gw.pp_port = port2
    return gw


def _v2(cmd, fam, addr_block):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    return sig + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(addr_block)) + addr_block


def _request_with_header(gw, certs, header, split=False, path="/health"):
    raw = socket.create_connection((HOST, gw.pp_port), timeout=5)
    if split:
        raw.sendall(header[:7])
        time.sleep(0.15)
        raw.sendall(header[7:])
    else:
        raw.sendall(header)
    ctx = client_context(certs)
    s = ctx.wrap_socket(raw, server_hostname=SNI)
    try:
        s.sendall(build_request("GET", path))
        return read_response(s)
    finally:
        s.close()


def _last_client(gw, path="/health"):
    lines = [l for l in gw.access() if l["path"] == path]
    return lines[-1]["client"] if lines else None


def test_v1_tcp4(pp, certs):
    r = _request_with_header(pp, certs, b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 443\r\n")
    assert r.status == 200
    assert wait_until(lambda: _last_client(pp) == "203.0.113.7:4242"), pp.access()[-1:]


def test_v1_tcp6_split_segments(pp, certs):
    r = _request_with_header(pp, certs, b"PROXY TCP6 2001:db8::5 ::1 5555 443\r\n", split=True)
    assert r.status == 200
    assert wait_until(lambda: _last_client(pp) == "[2001:db8::5]:5555")


def test_v2_tcp4(pp, certs):
    block = socket.inet_aton("198.51.100.9") + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 6000, 443)
    r = _request_with_header(pp, certs, _v2(1, 0x11, block + b"\x04\x00\x01X"))  # with a TLV
    assert r.status == 200
    assert wait_until(lambda: _last_client(pp) == "198.51.100.9:6000")


def test_v2_local_keeps_socket_address(pp, certs):
    r = _request_with_header(pp, certs, _v2(0, 0x00, b""))
    assert r.status == 200
    assert wait_until(lambda: (_last_client(pp) or "").startswith("127.0.0.1:"))


def test_v1_unknown_keeps_socket_address(pp, certs):
    r = _request_with_header(pp, certs, b"PROXY UNKNOWN\r\n")
    assert r.status == 200
    assert wait_until(lambda: (_last_client(pp) or "").startswith("127.0.0.1:"))


@pytest.mark.parametrize("header", [
    b"",                                                    # straight TLS: no header
    b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n",              # bad address
    b"PROXY TCP4 1.2.3.4 127.0.0.1 99999 443\r\n",          # bad port
    b"PROXY TCP4 1.2.3.4 127.0.0.1 1 2 3\r\n",              # extra field
    b"PROXY " + b"A" * 120,                                 # no CRLF within 107 bytes
])
def test_bad_header_closes_before_tls(pp, certs, header):
    raw = socket.create_connection((HOST, pp.pp_port), timeout=5)
    before = len(pp.stderr())
    try:
        raw.sendall(header)
        ctx = client_context(certs)
        with pytest.raises((OSError, socket.timeout)):
            s = ctx.wrap_socket(raw, server_hostname=SNI)
            s.sendall(build_request("GET", "/health"))
            data = s.recv(100)
            if not data:
                raise ConnectionError("closed")
    finally:
        raw.close()
    assert wait_until(lambda: "proxy" in pp.stderr()[before:].lower())


def test_silent_client_times_out(pp):
    raw = socket.create_connection((HOST, pp.pp_port), timeout=6)
    raw.sendall(b"PROXY TCP4")
    t0 = time.monotonic()
    try:
        assert raw.recv(10) == b""
    except ConnectionResetError:
        pass
    finally:
        raw.close()
    assert time.monotonic() - t0 < 4.5  # handshake_timeout 2s covers the header


def test_plain_listener_ignores_proxy_header(pp, certs):
    """The other listener is not marked: a PROXY line there is garbage to
    TLS, never an address override."""
    raw = socket.create_connection((HOST, pp.port), timeout=5)
    raw.sendall(b"PROXY TCP4 203.0.113.99 127.0.0.1 1 2\r\n")
    ctx = client_context(certs)
    with pytest.raises(OSError):
        s = ctx.wrap_socket(raw, server_hostname=SNI)
        s.sendall(build_request("GET", "/health"))
        if not s.recv(100):
            raise ConnectionError("closed")
    raw.close()
    assert not any(l["client"].startswith("203.0.113.99") for l in pp.access())
