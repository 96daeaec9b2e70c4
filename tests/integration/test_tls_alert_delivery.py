# SPDX-License-Identifier: MIT
"""A refused client certificate is named on the client, every time: 50
attempts per bad certificate per TLS version, with curl and with openssl
s_client (both send their request right after their Finished, so the
gateway closes with client data unread). Each must report the alert the
gateway sent (certificate revoked, certificate expired, unknown ca,
unsupported certificate), never a reset or an EOF: after a failed
handshake the gateway shuts down its sending side and drains what the
client still sends before closing (lingering close)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import curl, s_client

ATTEMPTS = 50
ALERTS = {
    "revoked": "certificate revoked",
    "expired": "certificate expired",
    "unknown-ca": "unknown ca",
    "server-eku": "unsupported certificate",
}
CURL_TLS = {"1.2": ["--tlsv1.2", "--tls-max", "1.2"], "1.3": ["--tlsv1.3"]}
S_CLIENT_TLS = {"1.2": "-tls1_2", "1.3": "-tls1_3"}
REQUEST = b"GET /main.html HTTP/1.1\r\nHost: localhost\r\n\r\n"


def _curl_once(port, certs, cert, version):
    # -v: curl names a received alert ("TLS alert, certificate expired")
    # even where its error message says only "verification failed".
    rc, code, err, _ = curl(port, certs, "/main.html", "-v", *CURL_TLS[version], cert=cert,
                            timeout=20)
    return rc, code, err.strip()


def _s_client_once(port, certs, cert, version):
    rc, out = s_client(port, certs, S_CLIENT_TLS[version], "-cert", str(certs.crt(cert)),
                       "-key", str(certs.key(cert)), "-ign_eof", stdin=REQUEST, timeout=20)
    return rc, out


def _run(fn, *args):
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda _: fn(*args), range(ATTEMPTS)))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("cert", list(ALERTS))
def test_curl_reports_the_alert(gateway, certs, cert, version):
    results = _run(_curl_once, gateway.port, certs, cert, version)
    missed = [r for r in results if ALERTS[cert] not in r[2].lower() or r[1] not in ("", "000")]
    assert not missed, (f"{len(missed)}/{ATTEMPTS} curl runs did not report "
                        f"'{ALERTS[cert]}', e.g. {missed[:3]}")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("cert", list(ALERTS))
def test_s_client_reports_the_alert(gateway, certs, cert, version):
    results = _run(_s_client_once, gateway.port, certs, cert, version)
    missed = [r for r in results if ALERTS[cert] not in r[1].lower() or "HTTP/1.1 200" in r[1]]
    assert not missed, (f"{len(missed)}/{ATTEMPTS} s_client runs did not report "
                        f"'{ALERTS[cert]}', e.g. {[m[1][-300:] for m in missed[:2]]}")
