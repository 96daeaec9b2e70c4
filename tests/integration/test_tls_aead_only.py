# SPDX-License-Identifier: MIT
"""Only AEAD cipher suites: a TLS 1.2 client offering only CBC suites (SHA1
or SHA2 MACs) gets a handshake failure; AES-GCM and ChaCha20-Poly1305 work;
TLS 1.3 suites work; compression is never negotiated."""

import pytest

from helpers import s_client

CBC = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
       "ECDHE-ECDSA-AES256-SHA384"]
AEAD12 = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
          "ECDHE-ECDSA-CHACHA20-POLY1305"]
AEAD13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]


@pytest.mark.parametrize("cipher", CBC)
def test_cbc_refused(gateway, certs, cipher):
    rc, out = s_client(gateway.port, certs, "-tls1_2", "-cipher", cipher)
    assert rc != 0, out
    assert "alert handshake failure" in out or "no shared cipher" in out, out
    assert f"Cipher is {cipher}" not in out


def test_all_cbc_together_refused(gateway, certs):
    rc, out = s_client(gateway.port, certs, "-tls1_2", "-cipher", ":".join(CBC))
    assert rc != 0, out
    assert "alert handshake failure" in out or "Cipher is (NONE)" in out, out


@pytest.mark.parametrize("cipher", AEAD12)
def test_aead_tls12_accepted(gateway, certs, cipher):
    rc, out = s_client(gateway.port, certs, "-tls1_2", "-cipher", cipher)
    assert rc == 0, out
    assert f"Cipher is {cipher}" in out, out
    assert "Compression: NONE" in out, out


@pytest.mark.parametrize("suite", AEAD13)
def test_tls13_suites_accepted(gateway, certs, suite):
    rc, out = s_client(gateway.port, certs, "-tls1_3", "-ciphersuites", suite)
    assert rc == 0, out
    assert f"Cipher is {suite}" in out, out
