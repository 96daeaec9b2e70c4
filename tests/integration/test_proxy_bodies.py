# SPDX-License-Identifier: MIT
"""Bodies stream both ways byte-exact: request bodies with Content-Length
and chunked (re-framed chunked toward the upstream), responses with
Content-Length, chunked and until-close, large ones included; HEAD keeps
the upstream's Content-Length and has no body."""

import hashlib
import json
import os

import pytest

from helpers import build_request, connect_tls, parse_response, read_response, request
from upstream_server import gateway_opts, pattern_sha256, upstream  # noqa: F401

MB = 1 << 20


def upload(port, certs, body, chunked, chunk_sizes=(1, 7, 4096, 65536, 300000)):
    s = connect_tls(port, certs, cert="client1", timeout=60)
    try:
        head = "PUT /svc/up HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if chunked:
            s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            off, i = 0, 0
            while off < len(body):
                n = chunk_sizes[i % len(chunk_sizes)]
                part = body[off:off + n]
                s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                off += len(part)
                i += 1
            s.sendall(b"0\r\n\r\n")
        else:
            s.sendall((head + f"Content-Length: {len(body)}\r\n\r\n").encode())
            s.sendall(body)
        return read_response(s, timeout=60)
    finally:
        s.close()


def fetch(port, certs, path, timeout=60):
    """GET with Connection: close, read to EOF, parse once (linear: the
    shared read_response re-parses on every read, too slow for 50 MB)."""
    s = connect_tls(port, certs, timeout=timeout)
    parts = []
    try:
        s.sendall(build_request("GET", path))
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            parts.append(b)
    finally:
        s.close()
    resp, _ = parse_response(b"".join(parts), "GET", eof=True)
    return resp


@pytest.mark.timeout(180)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_byte_exact(gateway_factory, certs, upstream, chunked):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    for size in (0, 1, 100000, 20 * MB + 3):
        body = os.urandom(size)
        r = upload(gw.port, certs, body, chunked)
        assert r.status == 200, r.text()[:300]
        seen = json.loads(r.body)
        assert seen["body_len"] == size
        assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
        if size or chunked:
            assert seen["body_framing"] == ("chunked" if chunked else "length")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("te", ["length", "chunked", "close"])
def test_download_byte_exact(gateway_factory, certs, upstream, te):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    for size, chunk in ((0, 1000), (1, 1000), (70001, 997), (50 * MB + 5, 262144)):
        r = fetch(gw.port, certs, f"/svc/dl?stream={size}&te={te}&chunk={chunk}")
        assert r.status == 200
        assert len(r.body) == size
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(size)
        if te == "length":
            assert r.header("Content-Length") == str(size)
        elif r.header("Content-Length") is None:
            # Unknown length toward the client: chunked (HTTP/1.1).
            assert "chunked" in (r.header("Transfer-Encoding") or "").lower()


def test_head_keeps_length(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    r = request(gw.port, certs, "/svc/h?stream=12345&te=length", method="HEAD")
    assert r.status == 200
    assert r.header("Content-Length") == "12345"
    assert r.body == b""
    # The connection to the upstream is still good for the next request.
    r = request(gw.port, certs, "/svc/after")
    assert r.status == 200 and json.loads(r.body)["target"] == "/after"
