# SPDX-License-Identifier: MIT
"""Seed matrix, bad client certificates: unknown CA, expired, revoked,
server-only EKU and a chain deeper than verify_depth 2 each fail the TLS
HANDSHAKE (TLS 1.2 and 1.3) with the matching alert; no URL gets an HTTP
answer with them, not even the open ones; and the daemon's log names the
reason."""

import pytest

from helpers import BAD_CERTS, build_request, connect_tls, handshake_outcome, read_all, wait_until

URLS = ["/main.html", "/unprotected/", "/protected/", "/protected/secret.html", "/health"]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("cert", list(BAD_CERTS))
def test_bad_cert_alert(gateway, certs, cert, version):
    kind, text = handshake_outcome(gateway.port, certs, version, cert)
    alerts = BAD_CERTS[cert][0]
    assert kind == "alert", f"expected a TLS alert, got {kind}: {text}"
    assert any(a in text.lower() for a in alerts), f"expected alert {alerts}, got: {text}"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("cert", list(BAD_CERTS))
def test_bad_cert_logged(gateway, certs, cert, version):
    before = len(gateway.stderr())
    handshake_outcome(gateway.port, certs, version, cert)
    words = BAD_CERTS[cert][1]
    found = wait_until(lambda: any(w in gateway.stderr()[before:].lower() for w in words), 3)
    assert found, (f"no log line naming the reason ({words}) for {cert}; log since:\n"
                   f"{gateway.stderr()[before:][-2000:]}")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("cert", list(BAD_CERTS))
@pytest.mark.parametrize("url", URLS)
def test_bad_cert_gets_no_http(gateway, certs, url, cert, version):
    try:
        s = connect_tls(gateway.port, certs, version, cert)
    except OSError:
        return  # the handshake failed (TLS 1.2): nothing served
    try:
        try:
            s.sendall(build_request("GET", url))
        except OSError:
            return
        data = read_all(s, timeout=5)
    finally:
        s.close()
    assert not data.startswith(b"HTTP/"), f"{cert} got an HTTP answer: {data[:200]!r}"
    assert data == b""
