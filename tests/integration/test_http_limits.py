# SPDX-License-Identifier: MIT
"""Configurable request limits: a request whose headers exceed
max_header_size answers 431 (Request Header Fields Too Large, RFC 6585:
413 is for bodies), a body over max_body_size answers 413; a chunked body
to a location that takes none (files, return) is refused with 413 and
Connection: close before it is read, and the client gets exactly the
status the access log records; requests within the limits are served
normally on the same daemon."""

import pytest

from helpers import IO_TIMEOUT, connect_tls, parse_response, receive_until_closed, request, wait_until


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory(server={"max_header_size": 2048, "max_body_size": 1024})


def test_small_headers_ok(gw, certs):
    assert request(gw.port, certs, "/main.html", headers={"X-Pad": "a" * 500}).status == 200


def test_header_too_large(gw, certs):
    try:
        r = request(gw.port, certs, "/main.html", headers={"X-Pad": "a" * 8000})
    except ConnectionError as e:
        pytest.fail(f"connection closed without a 431 answer: {e}")
    assert r.status == 431, \
        f"8000 bytes of headers answered {r.status} with max_header_size = 2048"


def test_body_too_large(gw, certs):
    try:
        r = request(gw.port, certs, "/health", method="POST", body=b"b" * 8000)
    except ConnectionError as e:
        pytest.fail(f"connection closed without a 413 answer: {e}")
    assert r.status == 413, r


def test_header_too_large_default_limit(gateway, certs):
    """With the default max_header_size (16 KiB), 64 KiB of headers are
    refused with 431 (by libmicrohttpd itself here: they overflow its
    per-connection memory), not served and not a dropped connection."""
    try:
        r = request(gateway.port, certs, "/main.html",
                    headers={f"X-Pad-{i}": "a" * 4000 for i in range(16)})
    except ConnectionError as e:
        pytest.fail(f"connection closed without a 431 answer: {e}")
    assert r.status == 431, r


def _send_all_read_all(port, certs, raw):
    """Send RAW, then read until the gateway closes: a helpers.Received."""
    s = connect_tls(port, certs)
    try:
        try:
            s.sendall(raw)
        except OSError:
            pass  # answered and closed before all of it was read
        return receive_until_closed(s, IO_TIMEOUT)
    finally:
        s.close()


def _chunked(path, size, extra=b""):
    body = b"".join(b"400\r\n" + b"c" * 0x400 + b"\r\n" for _ in range(size // 0x400))
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\n".encode() + extra +
            b"Transfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n\r\n")


@pytest.mark.parametrize("path,size", [("/health/chunked-big", 8192),
                                       ("/f/chunked-file", 8192),
                                       ("/health/chunked-small", 1024)])
def test_chunked_body_refused_at_headers(gw, certs, path, size):
    """The size of a chunked body is unknown when the headers arrive, and
    libmicrohttpd 0.9.75 cannot send a status once it reads a body: a
    location that takes no body refuses it at once, so the 413 in the
    access log is the 413 the client reads, and nothing pipelined behind
    it is answered."""
    raw = _chunked(path, size) + b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
    got = _send_all_read_all(gw.port, certs, raw)
    data = got.data
    resp, rest = parse_response(data)
    assert resp.status == 413, data[:300]
    assert (resp.header("Connection") or "").lower() == "close", resp.headers
    assert got.closed and b"HTTP/1." not in rest, (got.end, data[:600])

    def line():
        return [e for e in gw.access() if e.get("path") == path]
    entries = wait_until(line, 5)
    assert len(entries) == 1, entries
    assert entries[0]["status"] == resp.status
    assert entries[0]["note"] == "chunked body on a location without body"
    assert "status_not_delivered" not in entries[0]


def test_length_body_over_limit_closes(gw, certs):
    """A declared Content-Length over max_body_size: 413 before the body is
    read, with Connection: close (the body is left unread)."""
    raw = (b"POST /health/cl-big HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Length: 8000\r\n\r\n" + b"b" * 8000)
    got = _send_all_read_all(gw.port, certs, raw)
    data = got.data
    resp, _ = parse_response(data)
    assert resp.status == 413, data[:300]
    assert (resp.header("Connection") or "").lower() == "close", resp.headers
    assert got.closed, got.end
    entries = wait_until(lambda: [e for e in gw.access()
                                  if e.get("path") == "/health/cl-big"], 5)
    assert [e["status"] for e in entries] == [413], entries


@pytest.mark.parametrize("fields", [1, 16])
def test_headers_just_under_default_limit_served(gateway, certs, fields):
    """Headers just under the default max_header_size (16 KiB), in one
    field or many, fit libmicrohttpd's per-connection memory (sized from
    max_header_size) and are served, not refused."""
    pad = (16 * 1024 - 600) // fields
    r = request(gateway.port, certs, "/main.html",
                headers={f"X-Pad-{i}": "a" * pad for i in range(fields)})
    assert r.status == 200, r
