# SPDX-License-Identifier: MIT
"""Last-Modified and If-Modified-Since: a file answers with Last-Modified;
asking again with that date (or a later one) answers 304 without a body;
an older date answers 200 with the file."""

from email.utils import formatdate, parsedate_to_datetime

from helpers import request


def test_last_modified_and_304(gateway, certs, site):
    r = request(gateway.port, certs, "/main.html")
    assert r.status == 200
    lm = r.header("Last-Modified")
    assert lm, r.headers
    mtime = (site.root / "main.html").stat().st_mtime
    assert abs(parsedate_to_datetime(lm).timestamp() - int(mtime)) <= 1

    r2 = request(gateway.port, certs, "/main.html", headers={"If-Modified-Since": lm})
    assert r2.status == 304, r2
    assert r2.body == b""

    later = formatdate(mtime + 3600, usegmt=True)
    r3 = request(gateway.port, certs, "/main.html", headers={"If-Modified-Since": later})
    assert r3.status == 304, r3


def test_older_date_gives_200(gateway, certs, site):
    r = request(gateway.port, certs, "/main.html",
                headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert r.status == 200
    assert r.body == (site.root / "main.html").read_bytes()


def test_304_on_protected_needs_cert_first(gateway, certs):
    """Policy comes before caching: no certificate, no 304 either."""
    r = request(gateway.port, certs, "/protected/secret.html",
                headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert r.status == 403
