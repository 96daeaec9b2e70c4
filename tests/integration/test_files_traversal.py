# SPDX-License-Identifier: MIT
"""No request path resolves outside root, and ".." never gets around a
location's policy. Hand-written request lines over TLS (curl would
normalise them): "..", percent-encoded dots and slashes, backslashes, NUL,
symlinks in root that point outside. Each answer is 400, 403 or 404 and no
response contains a byte of the file outside root; "/protected/../main.html"
and friends do not serve anything from under /protected without a
certificate."""

import pytest

from helpers import connect_tls, read_all, request

OUTSIDE = [
    b"/../secret",
    b"/../../secret",
    b"/%2e%2e/secret",
    b"/%2E%2E/secret",
    b"/.%2e/secret",
    b"/%2e./secret",
    b"/unprotected/../../secret",
    b"/unprotected/..%2fsecret",
    b"/unprotected/..%2F..%2Fsecret",
    b"/unprotected/%2e%2e%2f%2e%2e%2fsecret",
    b"/..%5csecret",
    b"/..\\secret",
    b"/unprotected/..\\..\\secret",
    b"/%00",
    b"/main.html%00",
    b"/%00/../secret",
    b"/link-out/secret",
    b"/link-out/",
    b"/link-secret",
    b"/link-rel",
    b"/data/../../secret",
    b"/./../secret",
    b"//../secret",
    b"/%252e%252e/secret",
    b"../secret",
    b"secret",
]

POLICY = [
    b"/protected/../main.html",
    b"/protected/%2e%2e/main.html",
    b"/protected/..%2fmain.html",
    b"/unprotected/../protected/secret.html",
    b"/unprotected/%2e%2e/protected/secret.html",
    b"/main.html/../protected/secret.html",
    b"/%2fprotected/secret.html",
    b"/Protected/../protected/secret.html",
]


def _exchange(port, certs, target, method=b"GET"):
    s = connect_tls(port, certs)
    try:
        s.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: localhost\r\n"
                  b"Connection: close\r\n\r\n")
        return read_all(s, timeout=5)
    finally:
        s.close()


def _status(data):
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data[9:12])


@pytest.mark.parametrize("target", OUTSIDE, ids=lambda t: t.decode("latin-1"))
def test_nothing_outside_root(gateway, certs, site, target):
    data = _exchange(gateway.port, certs, target)
    assert site.marker not in data, f"{target!r} served the file outside root!"
    assert _status(data) in (400, 403, 404), data[:300]


@pytest.mark.parametrize("target", OUTSIDE[:6], ids=lambda t: t.decode("latin-1"))
def test_nothing_outside_root_head(gateway, certs, site, target):
    data = _exchange(gateway.port, certs, target, b"HEAD")
    assert site.marker not in data
    assert _status(data) in (400, 403, 404), data[:300]


@pytest.mark.parametrize("target", POLICY, ids=lambda t: t.decode("latin-1"))
def test_dotdot_does_not_bypass_policy(gateway, certs, target):
    data = _exchange(gateway.port, certs, target)
    assert b"Secret page" not in data and b"Protected area" not in data, data[:300]
    assert _status(data) in (400, 403, 404), data[:300]
    if target == b"/protected/../main.html":
        # Not a 200 with main.html either: a ".." segment is refused outright.
        assert b"Main page" not in data


def test_control_ordinary_files_served(gateway, certs):
    """Control: the gateway still serves ordinary files while refusing all of
    the above (so the refusals are not just a broken server)."""
    assert request(gateway.port, certs, "/main.html").status == 200
    assert request(gateway.port, certs, "/data/hello.txt").body == b"hello, world\n"
