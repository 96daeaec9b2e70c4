# SPDX-License-Identifier: MIT
"""The demo configuration itself (conf/mtlsgw.conf with conf/www), moved
only to a free port and pointed at the session's certificates, gives the
article's results: /main.html, /unprotected/ and /health 200 without a
certificate, /protected/secret.html 403 without one and 200 with
client1's, unknown-CA certificate refused at the handshake."""

import pytest

from helpers import REPO, handshake_outcome, request


@pytest.fixture
def demo(gateway_factory, certs, tmp_path):
    text = (REPO / "conf" / "mtlsgw.conf").read_text()
    assert "listen = 127.0.0.1:8443" in text and "../certs/" in text
    text = text.replace("127.0.0.1:8443", "127.0.0.1:@PORT@")
    text = text.replace("../certs/", f"{certs.dir}/")
    text = text.replace("root = www", f"root = {REPO / 'conf' / 'www'}")
    gw_holder = {}

    # Reuse the factory's start/stop (exit 0 on SIGTERM) with this text.
    orig = gateway_factory.config
    gateway_factory.config = lambda port, workdir, **kw: text.replace("@PORT@", str(port))
    try:
        gw_holder["gw"] = gateway_factory()
    finally:
        gateway_factory.config = orig
    return gw_holder["gw"]


def test_demo_config(demo, certs):
    for path in ("/main.html", "/unprotected/", "/health"):
        assert request(demo.port, certs, path).status == 200, path
    assert request(demo.port, certs, "/protected/secret.html").status == 403
    assert request(demo.port, certs, "/protected/secret.html", cert="client1").status == 200
    kind, text = handshake_outcome(demo.port, certs, "1.2", "unknown-ca")
    assert kind == "alert" and "unknown ca" in text.lower(), (kind, text)
    # access_log = stderr: the JSON lines are in the daemon's output.
    assert '"path":"/protected/secret.html"' in demo.stderr().replace(" ", "")
