# SPDX-License-Identifier: MIT
"""Static locations take GET and HEAD only: POST, PUT, DELETE (with or
without a body) answer 405 with an Allow header listing GET and HEAD, and
the file is not changed."""

import pytest

from helpers import request


@pytest.mark.parametrize("method,body", [("POST", b"x=1"), ("PUT", b"new content"),
                                         ("DELETE", b""), ("POST", b"")])
def test_405_with_allow(gateway, certs, site, method, body):
    before = (site.root / "main.html").read_bytes()
    r = request(gateway.port, certs, "/main.html", method=method, body=body,
                headers={"Content-Type": "text/plain"} if body else None)
    assert r.status == 405, r
    allow = {m.strip().upper() for m in (r.header("Allow") or "").split(",")}
    assert {"GET", "HEAD"} <= allow, r.headers
    assert (site.root / "main.html").read_bytes() == before


def test_405_on_protected_with_cert(gateway, certs):
    r = request(gateway.port, certs, "/protected/secret.html", method="POST", body=b"a",
                cert="client1")
    assert r.status == 405, r
