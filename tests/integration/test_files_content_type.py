# SPDX-License-Identifier: MIT
"""Static file basics: Content-Type by extension, index.html for a
directory, 404 for a missing file, and the health location's fixed answer."""

import pytest

from helpers import request


@pytest.mark.parametrize("path,ctype", [
    ("/main.html", "text/html"),
    ("/unprotected/", "text/html"),
    ("/data/hello.txt", "text/plain"),
    ("/data/style.css", "text/css"),
    ("/data/1mb.bin", "application/octet-stream"),
])
def test_content_type(gateway, certs, path, ctype):
    r = request(gateway.port, certs, path, method="HEAD")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").split(";")[0].strip() == ctype


def test_directory_index(gateway, certs, site):
    r = request(gateway.port, certs, "/unprotected/")
    assert r.body == (site.root / "unprotected" / "index.html").read_bytes()


@pytest.mark.parametrize("path", ["/nope.html", "/unprotected/nope", "/data/1mb.bin/x"])
def test_not_found(gateway, certs, path):
    r = request(gateway.port, certs, path)
    assert r.status == 404, r


def test_health(gateway, certs):
    r = request(gateway.port, certs, "/health")
    assert r.status == 200 and r.body.strip() == b"ok"
