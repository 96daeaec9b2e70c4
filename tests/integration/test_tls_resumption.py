# SPDX-License-Identifier: MIT
"""Session resumption keeps the identity right: a session that client1
established resumes with client1's identity (the protected page is
served, the access log says resumed with client1's fingerprint), and a
session established without a certificate resumes as anonymous (403 on
the protected page), over TLS 1.2 and 1.3."""

import socket

import pytest

from helpers import HOST, SNI, build_request, client_context, read_response, wait_until


def _get(ctx, port, path, session=None):
    raw = socket.create_connection((HOST, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=SNI, session=session)
    try:
        s.sendall(build_request("GET", path))
        r = read_response(s)
        return r, s.session, s.session_reused, s.getsockname()[1]
    finally:
        s.close()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resumed_session_keeps_identity(gateway_factory, certs, version):
    gw = gateway_factory()
    ctx = client_context(certs, version, "client1")
    r, sess, reused, _ = _get(ctx, gw.port, "/protected/secret.html")
    assert r.status == 200 and not reused
    r, _, reused, lport = _get(ctx, gw.port, "/protected/secret.html", session=sess)
    assert reused, "the gateway did not resume the session (session_tickets default yes)"
    assert r.status == 200, r

    def line():
        for e in gw.access():
            if e.get("client") == f"127.0.0.1:{lport}":
                return e
        return None
    e = wait_until(line, 5)
    assert e, gw.access()
    assert e.get("tls_resumed") is True, e
    assert e["fingerprint"] == certs.fingerprint("client1")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resumed_anonymous_session_stays_anonymous(gateway_factory, certs, version):
    gw = gateway_factory()
    ctx = client_context(certs, version)
    r, sess, _, _ = _get(ctx, gw.port, "/main.html")
    assert r.status == 200
    r, _, reused, _ = _get(ctx, gw.port, "/protected/secret.html", session=sess)
    assert r.status == 403, r
