# SPDX-License-Identifier: MIT
"""Location matching is longest prefix on path-segment boundaries:
/protectedx/ is NOT under [location /protected] (open, 200 without a
certificate) while /protected and /protected/... are (403 without one)."""

import pytest

from helpers import request


@pytest.mark.parametrize("path,status", [
    ("/protectedx/", 200),
    ("/protectedx/index.html", 200),
    ("/protected", 403),
    ("/protected/", 403),
    ("/protected/index.html", 403),
    ("/protected//secret.html", 403),
    ("/protected/./secret.html", 403),
    ("//protected/secret.html", 403),
])
def test_prefix_boundary(gateway, certs, path, status):
    r = request(gateway.port, certs, path)
    assert r.status == status, r
    if status == 403:
        assert b"Secret page" not in r.body and b"Protected area" not in r.body
