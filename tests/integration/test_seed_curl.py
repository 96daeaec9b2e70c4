# SPDX-License-Identifier: MIT
"""The article's curl commands, as a newcomer types them: open pages 200
without a certificate, /protected/ 403 without one, 200 with
--cert client1.crt --key client1.key, and curl fails (no HTTP status at
all, exit code of a TLS failure) with the unknown-CA, expired and revoked
certificates, over TLS 1.2 and TLS 1.3."""

import pytest

from helpers import curl

TLS = {"1.2": ["--tlsv1.2", "--tls-max", "1.2"], "1.3": ["--tlsv1.3"]}


@pytest.mark.parametrize("version", list(TLS))
def test_curl_open_pages(gateway, certs, version):
    for path in ("/main.html", "/unprotected/unprotected.html", "/unprotected/", "/health"):
        rc, code, err, _ = curl(gateway.port, certs, path, *TLS[version])
        assert (rc, code) == (0, "200"), (path, rc, code, err)


@pytest.mark.parametrize("version", list(TLS))
def test_curl_protected_without_cert(gateway, certs, version):
    for path in ("/protected/", "/protected/protected.html", "/protected/confidential.html"):
        rc, code, err, body = curl(gateway.port, certs, path, *TLS[version])
        assert (rc, code) == (0, "403"), (path, rc, code, err)
        assert b"Protected" not in body and b"Confidential page" not in body


@pytest.mark.parametrize("version", list(TLS))
def test_curl_protected_with_client1(gateway, certs, version):
    for path, page in (("/protected/protected.html", b"Protected page"),
                       ("/protected/confidential.html", b"Confidential page"),
                       ("/protected/secret.html", b"Secret page")):
        rc, code, err, body = curl(gateway.port, certs, path, *TLS[version], cert="client1")
        assert (rc, code) == (0, "200"), (path, rc, code, err)
        assert page in body


@pytest.mark.parametrize("version", list(TLS))
@pytest.mark.parametrize("cert", ["unknown-ca", "expired", "revoked"])
def test_curl_bad_cert_fails(gateway, certs, cert, version):
    rc, code, err, body = curl(gateway.port, certs, "/main.html", *TLS[version], cert=cert,
                               timeout=15)
    # 35: SSL connect error; 56: failure receiving (TLS 1.3 alert after the
    # handshake); 60: curl reports a certificate_expired alert as a peer
    # verification failure; 16/52/55 are variants of the same close.
    assert rc in (16, 35, 52, 55, 56, 60), (rc, code, err)
    assert code == "000" and body == b""
