# SPDX-License-Identifier: MIT
"""SIGHUP reloads the configuration: a changed allow list applies to the
next request, also on a connection kept alive across the reload and on a
client that resumes its TLS session from before it (the new TLS context
has new ticket keys, so the identity is checked again); a broken config is
refused with FILE:LINE in the log and the old one keeps serving; a download
running during the reload completes byte-exact."""

import hashlib
import signal
import subprocess
import time

from helpers import build_request, client_context, connect_tls, read_response, request, wait_until, HOST, SNI
import socket


def _allow(gw, subject):
    text = gw.conf.read_text()
    marker = "[location /protected]\n"
    head, tail = text.split(marker, 1)
    tail = "\n".join(l for l in tail.split("\n") if not l.startswith("allow_subject"))
    gw.conf.write_text(head + marker + f"allow_subject = {subject}\n" + tail)


def _reload(gw, expect="reloaded"):
    before = len(gw.stderr())
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: expect in gw.stderr()[before:], 5), gw.stderr()[before:]
    return gw.stderr()[before:]


def test_allow_list_change_applies(gateway_factory, certs):
    gw = gateway_factory()
    assert request(gw.port, certs, "/protected/", cert="client2").status == 200
    keep = connect_tls(gw.port, certs, cert="client2")
    keep.sendall(build_request("GET", "/protected/", close=False))
    assert read_response(keep).status == 200

    _allow(gw, "CN=client1")
    _reload(gw)
    assert request(gw.port, certs, "/protected/", cert="client2").status == 403
    assert request(gw.port, certs, "/protected/", cert="client1").status == 200
    # the connection opened before the reload is judged by the new policy
    keep.sendall(build_request("GET", "/protected/", close=False))
    assert read_response(keep).status == 403
    keep.close()


def test_resumed_session_rechecked(gateway_factory, certs):
    gw = gateway_factory()
    ctx = client_context(certs, "1.2", "client2")

    def get(session=None):
        raw = socket.create_connection((HOST, gw.port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname=SNI, session=session)
        s.sendall(build_request("GET", "/protected/"))
        r = read_response(s)
        out = (r.status, s.session, s.session_reused)
        s.close()
        return out

    status, sess, _ = get()
    assert status == 200
    status, _, reused = get(sess)
    assert status == 200 and reused  # resumption works before the reload
    _allow(gw, "CN=client1")
    _reload(gw)
    status, _, reused = get(sess)
    assert status == 403, "a session from before the reload kept the old policy"


def test_broken_config_keeps_old(gateway_factory, certs):
    gw = gateway_factory()
    good = gw.conf.read_text()
    gw.conf.write_text(good + "\n[server]\nbogus_key = 1\n")
    log = _reload(gw, expect="reload of")
    assert "bogus_key" in log and ":" in log
    assert "still serving" in log
    assert request(gw.port, certs, "/main.html").status == 200
    assert request(gw.port, certs, "/protected/", cert="client1").status == 200
    gw.conf.write_text(good)


def test_download_survives_reload(gateway_factory, certs, site, tmp_path):
    gw = gateway_factory()
    out = tmp_path / "dl.bin"
    # curl, rate-limited so the reloads land mid-transfer
    p = subprocess.Popen(["curl", "-sS", "--cacert", str(certs.ca), "--limit-rate", "40M",
                          "-o", str(out), "-m", "60",
                          f"https://localhost:{gw.port}/data/100mb.bin"])
    for _ in range(3):
        time.sleep(0.3)
        _reload(gw)
    assert p.wait(90) == 0
    h = hashlib.sha256(out.read_bytes()).hexdigest()
    assert h == site.sha256["100mb.bin"]
