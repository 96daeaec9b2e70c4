# SPDX-License-Identifier: MIT
"""Seed matrix, good clients: the article's URLs (/main.html,
/unprotected/unprotected.html, /protected/protected.html,
/protected/confidential.html, /health) and the folders' index pages over
TLS 1.2 and 1.3, with no client certificate and with client1's. The open
URLs answer 200 either way; the /protected/ ones answer 403 (with a short
body that is not the page)
without a certificate and 200 with the page's bytes with client1's. The
certificate is requested at the handshake, so TLS 1.3 behaves exactly like
TLS 1.2 (no post-handshake auth, no renegotiation)."""

import pytest

from helpers import REPO, request

WWW = REPO / "conf" / "www"
URLS = {
    "/main.html": WWW / "main.html",
    "/unprotected/": WWW / "unprotected" / "index.html",
    "/unprotected/unprotected.html": WWW / "unprotected" / "unprotected.html",
    "/protected/": WWW / "protected" / "index.html",
    "/protected/protected.html": WWW / "protected" / "protected.html",
    "/protected/confidential.html": WWW / "protected" / "confidential.html",
    "/protected/secret.html": WWW / "protected" / "secret.html",
    "/health": None,
}


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("cert", [None, "client1"], ids=["nocert", "client1"])
@pytest.mark.parametrize("url", list(URLS))
def test_seed_url(gateway, certs, url, cert, version):
    r = request(gateway.port, certs, url, version=version, cert=cert)
    assert r.tls_version == f"TLSv{version}"
    protected = url.startswith("/protected")
    if protected and cert is None:
        assert r.status == 403, r
        for page in (b"Protected area", b"Protected page", b"Confidential page",
                     b"Secret page"):
            assert page not in r.body
        assert len(r.body) < 1024
        return
    assert r.status == 200, r
    if URLS[url] is None:
        assert r.body.strip() == b"ok"
    else:
        assert r.body == URLS[url].read_bytes()
        assert (r.header("Content-Type") or "").startswith("text/html")
