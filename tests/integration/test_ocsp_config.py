# SPDX-License-Identifier: MIT
"""The revocation keys of [tls] are checked by `mtlsgw -t` with FILE:LINE
errors: ocsp, ocsp_fail and the durations take only their values,
ocsp_responder must be an http:// URL and needs ocsp on, a responder
name that does not resolve fails the load; a full set of good values
passes. With ocsp = chain the intermediate is asked about too: a
responder that cannot vouch for it (it only signs for the intermediate's
own certificates) gets client1 refused where ocsp = leaf serves it."""

import re
import subprocess

import pytest

from helpers import handshake_outcome, request
from ocsp_responder import OcspResponder


def _conf(certs, site, tmp_path, extra):
    conf = tmp_path / "ocsp.conf"
    lines = ["[server]", "listen = 127.0.0.1:18443", "access_log = off", "[tls]",
             f"cert = {certs.dir / 'server.crt'}", f"key = {certs.dir / 'server.key'}",
             f"client_ca = {certs.dir / 'client-ca.pem'}", f"crl = {certs.dir / 'crl.pem'}",
             *extra, "[location /]", f"root = {site.root}"]
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _check(mtlsgw_bin, conf):
    p = subprocess.run([str(mtlsgw_bin), "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


def test_good_values(mtlsgw_bin, certs, site, tmp_path):
    conf = _conf(certs, site, tmp_path, [
        "ocsp = chain", "ocsp_responder = http://127.0.0.1:8888/ocsp", "ocsp_timeout = 500ms",
        "ocsp_fail = open", "ocsp_cache_size = 100", "crl_check_interval = 0"])
    rc, out = _check(mtlsgw_bin, conf)
    assert rc == 0, out


@pytest.mark.parametrize("line,why", [
    ("ocsp = yes", "ocsp"),
    ("ocsp_fail = maybe", "ocsp_fail"),
    ("ocsp_timeout = 0", "ocsp_timeout"),
    ("ocsp_timeout = forever", "ocsp_timeout"),
    ("ocsp_cache_size = 0", "ocsp_cache_size"),
    ("crl_check_interval = often", "crl_check_interval"),
    ("ocsp_responder = https://127.0.0.1:8888/", "http://"),
    ("ocsp_responder = 127.0.0.1:8888", "http://"),
    ("ocsp_responder = http://127.0.0.1:0/", "port"),
    ("ocsp_responder = http://[::1/", "IPv6"),
])
def test_bad_values(mtlsgw_bin, certs, site, tmp_path, line, why):
    extra = [line] if line.startswith("ocsp =") else ["ocsp = leaf", line]
    conf = _conf(certs, site, tmp_path, extra)
    rc, out = _check(mtlsgw_bin, conf)
    lineno = 9 + extra.index(line)
    assert rc == 1, out
    assert re.search(rf"^{re.escape(str(conf))}:{lineno}: .*{re.escape(why)}", out, re.M), out


def test_responder_needs_ocsp_on(mtlsgw_bin, certs, site, tmp_path):
    conf = _conf(certs, site, tmp_path, ["ocsp_responder = http://127.0.0.1:8888/"])
    rc, out = _check(mtlsgw_bin, conf)
    assert rc == 1 and f"{conf}:9: ocsp_responder is set but ocsp is off" in out, out


def test_unresolvable_responder_name(mtlsgw_bin, certs, site, tmp_path):
    conf = _conf(certs, site, tmp_path,
                 ["ocsp = leaf", "ocsp_responder = http://no-such-host.invalid:8888/"])
    rc, out = _check(mtlsgw_bin, conf)
    assert rc == 1 and f"{conf}:10: ocsp_responder" in out, out


def test_chain_mode_asks_about_the_intermediate(gateway_factory, certs, tmp_path):
    resp = OcspResponder(certs, tmp_path).start()
    try:
        leaf = gateway_factory(tls={"ocsp": "leaf", "ocsp_responder": resp.url})
        assert request(leaf.port, certs, "/protected/secret.html", cert="client1").status == 200
        chain = gateway_factory(tls={"ocsp": "chain", "ocsp_responder": resp.url})
        kind, text = handshake_outcome(chain.port, certs, "1.3", "client1")
        assert kind in ("alert", "closed"), (kind, text)
        assert "depth 1" in chain.stderr(), chain.stderr()
    finally:
        resp.stop()
