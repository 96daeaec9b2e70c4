# SPDX-License-Identifier: MIT
"""ocsp = leaf against Debian's `openssl ocsp` responder (index: client2
revoked): client1 gets 200 and client2 the alert `certificate revoked`,
over TLS 1.2 and 1.3, with the reason in the access log and the counters
in /metrics; a cached `good` keeps working after the responder stopped;
with no responder `ocsp_fail = closed` refuses and `open` lets through
with a log line and verify `ocsp unavailable`; an answer signed by a
certificate of the same CA without the OCSPSigning EKU is not trusted; a
session resumed after its certificate was found revoked is refused."""

import re
import socket
import subprocess

import pytest

from helpers import (HOST, SNI, build_request, client_context, free_port, handshake_outcome,
                     read_response, request, wait_until)
from ocsp_responder import OcspResponder


@pytest.fixture
def responder(certs, tmp_path):
    r = OcspResponder(certs, tmp_path).start()
    yield r
    r.stop()


def _gateway(gateway_factory, url, **tls):
    return gateway_factory(
        server={"workers": 1},
        tls={"ocsp": "leaf", "ocsp_responder": url, "ocsp_timeout": "5s", **tls},
        locations=[("/metrics", {"metrics": "yes"})])


def _metric(gw, certs, name):
    r = request(gw.port, certs, "/metrics")
    assert r.status == 200, r
    m = re.search(r"^" + re.escape(name) + r" (\d+)", r.body.decode(), re.M)
    assert m, f"{name} not in metrics:\n{r.body.decode()}"
    return int(m.group(1))


def _refusals(gw, reason):
    return [e for e in gw.access() if e.get("event") == "handshake refused"
            and e.get("verify") == reason]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_good_served_revoked_refused(gateway_factory, certs, responder, version):
    gw = _gateway(gateway_factory, responder.url)
    try:
        r = request(gw.port, certs, "/protected/secret.html", version=version, cert="client1")
    except OSError as e:
        raise AssertionError(f"{e}: {gw.stderr()}") from e
    assert r.status == 200, r
    kind, text = handshake_outcome(gw.port, certs, version, "client2")
    assert kind == "alert" and "certificate revoked" in text.lower(), (kind, text)
    assert wait_until(lambda: _refusals(gw, "revoked (ocsp)"), 5), gw.access()
    e = _refusals(gw, "revoked (ocsp)")[0]
    assert e["subject"] == "CN=client2,O=mtlsgw demo"
    assert "OCSP" in gw.stderr() or "ocsp" in gw.stderr()
    assert responder.requests() == 2
    assert _metric(gw, certs, "mtlsgw_ocsp_requests_total") == 2
    assert _metric(gw, certs, 'mtlsgw_ocsp_responses_total{status="good"}') == 1
    assert _metric(gw, certs, 'mtlsgw_ocsp_responses_total{status="revoked"}') == 1
    assert _metric(gw, certs, 'mtlsgw_handshakes_refused_total{reason="revoked (ocsp)"}') == 1


def test_revoked_with_openssl_s_client_alert(gateway_factory, certs, responder):
    gw = _gateway(gateway_factory, responder.url)
    p = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{gw.port}", "-servername",
                        SNI, "-CAfile", str(certs.ca), "-cert", str(certs.crt("client2")),
                        "-key", str(certs.key("client2")), "-tls1_2"],
                       input=b"", capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert "certificate revoked" in out, out


def test_cached_good_survives_responder_stop(gateway_factory, certs, responder):
    gw = _gateway(gateway_factory, responder.url)
    assert request(gw.port, certs, "/protected/secret.html", cert="client1").status == 200
    assert request(gw.port, certs, "/protected/secret.html", cert="client1",
                   version="1.2").status == 200
    responder.stop()
    for version in ("1.2", "1.3"):
        r = request(gw.port, certs, "/protected/secret.html", version=version, cert="client1")
        assert r.status == 200, r
    assert _metric(gw, certs, "mtlsgw_ocsp_requests_total") == 1
    assert _metric(gw, certs, "mtlsgw_ocsp_cache_hits_total") >= 3
    # The cached revocation of client2 also needs no responder.


def test_no_responder_fail_closed_refuses(gateway_factory, certs):
    port = free_port()  # nothing listens there
    gw = _gateway(gateway_factory, f"http://{HOST}:{port}/", ocsp_fail="closed")
    kind, text = handshake_outcome(gw.port, certs, "1.3", "client1")
    assert kind in ("alert", "closed"), (kind, text)
    assert wait_until(lambda: _refusals(gw, "ocsp unavailable"), 5), gw.access()
    # Without a client certificate nothing is asked: still served.
    assert request(gw.port, certs, "/main.html").status == 200
    assert _metric(gw, certs, 'mtlsgw_ocsp_failures_total{reason="error"}') >= 1


def test_no_responder_fail_open_lets_through(gateway_factory, certs):
    port = free_port()
    gw = _gateway(gateway_factory, f"http://{HOST}:{port}/", ocsp_fail="open")
    r = request(gw.port, certs, "/protected/secret.html", cert="client1")
    assert r.status == 200, r

    def line():
        return [e for e in gw.access() if e.get("path") == "/protected/secret.html"]
    assert wait_until(line, 5)
    assert line()[0]["verify"] == "ocsp unavailable"
    assert "ocsp_fail = open: letting it through" in gw.stderr()
    assert _metric(gw, certs, "mtlsgw_ocsp_fail_open_total") == 1


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_resumed_session_refused_after_revocation(gateway_factory, certs, tmp_path, version):
    # No nextUpdate: answers are not cached, so the second full handshake
    # asks again and learns of the revocation.
    resp = OcspResponder(certs, tmp_path, revoked=(), next_update_min=0).start()
    try:
        gw = _gateway(gateway_factory, resp.url)
        ctx = client_context(certs, version, "client1")

        def get(session=None):
            raw = socket.create_connection((HOST, gw.port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname=SNI, session=session)
            try:
                s.sendall(build_request("GET", "/protected/secret.html"))
                return read_response(s).status, s.session, s.session_reused
            finally:
                s.close()

        status, sess, _ = get()
        assert status == 200
        status, _, reused = get(sess)
        assert status == 200 and reused, "session not resumed before the revocation"
        resp.revoke("client1")
        # A full handshake learns it (the responder re-reads its index).
        assert wait_until(lambda: handshake_outcome(gw.port, certs, version, "client1")[0]
                          == "alert", 10)
        try:
            status = get(sess)[0]
        except Exception:  # noqa: BLE001 - alert, reset or EOF: all refusals
            status = None
        assert status is None, "the resumed session of a revoked certificate was served"
        assert wait_until(lambda: [e for e in _refusals(gw, "revoked (ocsp)")
                                   if e.get("tls_resumed")], 5), gw.access()
    finally:
        resp.stop()


def test_answer_from_unauthorised_signer_refused(gateway_factory, certs, tmp_path):
    # server.crt is issued by the intermediate too, but may not sign OCSP.
    resp = OcspResponder(certs, tmp_path, signer="server").start()
    try:
        gw = _gateway(gateway_factory, resp.url)
        kind, text = handshake_outcome(gw.port, certs, "1.2", "client1")
        assert kind == "alert" and "certificate revoked" not in text.lower(), (kind, text)
        assert resp.requests() == 1
        assert "signature or signer not trusted" in gw.stderr(), gw.stderr()
        assert wait_until(lambda: _refusals(gw, "ocsp unavailable"), 5), gw.access()
    finally:
        resp.stop()
