# SPDX-License-Identifier: MIT
"""The server's TLS 1.2 suite preference: a client offering every AEAD suite
in its own order (AES-256 first, as OpenSSL's default list does) gets
AES-128-GCM; without AES-128 it gets ChaCha20-Poly1305 before AES-256-GCM;
Python's default client (its own order) also gets AES-128-GCM."""

import ssl

from helpers import connect_tls, s_client

ALL_AEAD = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
    "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_tls12_prefers_aes128_gcm(gateway, certs):
    rc, out = s_client(gateway.port, certs, "-tls1_2", "-cipher", ALL_AEAD)
    assert rc == 0, out
    assert "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in out, out


def test_tls12_chacha_before_aes256(gateway, certs):
    rc, out = s_client(gateway.port, certs, "-tls1_2", "-cipher",
                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305")
    assert rc == 0, out
    assert "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in out, out


def test_tls12_default_client_gets_aes128_gcm(gateway, certs):
    s = connect_tls(gateway.port, certs, version="1.2", cert="client1")
    try:
        name, version, _ = s.cipher()
        assert version == "TLSv1.2"
        assert name == "ECDHE-ECDSA-AES128-GCM-SHA256", name
    finally:
        s.close()
