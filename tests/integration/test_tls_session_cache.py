# SPDX-License-Identifier: MIT
"""Sessions resume from the server's cache (TLS 1.3 tickets that name a
cached session, TLS 1.2 session IDs): a session resumes on any worker, as
many times as the client likes within the timeout, with its identity;
session_tickets = no turns resumption off on both versions."""

import socket

import pytest

from helpers import HOST, SNI, build_request, client_context, read_response


def _get(ctx, port, path, session=None):
    raw = socket.create_connection((HOST, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=SNI, session=session)
    try:
        s.sendall(build_request("GET", path))
        r = read_response(s)
        return r.status, s.session, s.session_reused
    finally:
        s.close()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_session_resumes_repeatedly(gateway, certs, version):
    ctx = client_context(certs, version, "client1")
    status, sess, reused = _get(ctx, gateway.port, "/protected/secret.html")
    assert status == 200 and not reused
    # Two workers: new source ports spread the resumptions over both.
    for _ in range(6):
        status, _, reused = _get(ctx, gateway.port, "/protected/secret.html", session=sess)
        assert reused, "the session did not resume"
        assert status == 200


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_no_resumption_when_off(gateway_factory, certs, version):
    gw = gateway_factory(tls={"session_tickets": "no"})
    ctx = client_context(certs, version, "client1")
    status, sess, reused = _get(ctx, gw.port, "/protected/secret.html")
    assert status == 200 and not reused
    status, _, reused = _get(ctx, gw.port, "/protected/secret.html", session=sess)
    assert status == 200
    assert not reused, "session_tickets = no still resumed a session"
