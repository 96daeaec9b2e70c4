# SPDX-License-Identifier: MIT
"""HEAD answers like GET (status, Content-Length, Content-Type,
Last-Modified) and sends no body bytes at all."""

from helpers import connect_tls, read_all, request


def test_head_no_body(gateway, certs, site):
    s = connect_tls(gateway.port, certs)
    try:
        s.sendall(b"HEAD /data/1mb.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = read_all(s, timeout=5)
    finally:
        s.close()
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data[:300]
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"content-length: 1048576" in head.lower()
    assert rest == b"", f"{len(rest)} body bytes after a HEAD"


def test_head_matches_get(gateway, certs):
    g = request(gateway.port, certs, "/main.html")
    h = request(gateway.port, certs, "/main.html", method="HEAD")
    assert h.status == g.status == 200
    for k in ("Content-Length", "Content-Type", "Last-Modified"):
        assert h.header(k) == g.header(k), k


def test_head_protected_without_cert(gateway, certs):
    assert request(gateway.port, certs, "/protected/", method="HEAD").status == 403
