# SPDX-License-Identifier: MIT
"""The chain verification cache (daemon/verifycache.c) never accepts what
OpenSSL would refuse: with a good chain (client1) cached, unknown-CA,
expired, revoked, wrong-EKU and too-deep chains still fail the handshake
with their alert, every time, and are never answered from the cache; a
reload that adds a CRL revoking a chain the cache accepted refuses it at
once, and so does a CRL file rewritten on disk (crl_epoch); the cache
does answer for a good chain seen before (the debug log
says so), over TLS 1.2 and 1.3, and the request is served as client1.
One worker, so every connection meets the same cache."""

import shutil
import signal

import pytest

from helpers import BAD_CERTS, handshake_outcome, request, wait_until
from test_crl_reload import _crl_with, _replace

HIT = "chain verification: cached result"


def _hits(gw):
    return gw.stderr().count(HIT)


@pytest.fixture(scope="module")
def gw(module_gateway_factory):
    return module_gateway_factory(server={"workers": 1, "log_level": "debug"})


def _cache_client1(gw, certs, version):
    before = _hits(gw)
    for _ in range(2):
        r = request(gw.port, certs, "/protected/secret.html", version=version, cert="client1")
        assert r.status == 200, r
    assert wait_until(lambda: _hits(gw) > before, 3), \
        "the second handshake with client1 did not use the cache"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_good_chain_answered_from_cache(gw, certs, version):
    _cache_client1(gw, certs, version)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("cert", list(BAD_CERTS))
def test_bad_chain_refused_after_good_one_cached(gw, certs, cert, version):
    _cache_client1(gw, certs, version)
    before = _hits(gw)
    for _ in range(2):
        kind, text = handshake_outcome(gw.port, certs, version, cert)
        assert kind == "alert", f"{cert}: expected a TLS alert, got {kind}: {text}"
        assert any(a in text.lower() for a in BAD_CERTS[cert][0]), text
    assert _hits(gw) == before, f"{cert} was answered from the cache"


def _reload(gw, text):
    before = len(gw.stderr())
    gw.conf.write_text(text)
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reloaded" in gw.stderr()[before:], 5), gw.stderr()[before:]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_reload_adding_crl_refuses_cached_chain(gateway_factory, certs, version):
    gw = gateway_factory(server={"workers": 1, "log_level": "debug"}, tls={"crl": None})
    before = _hits(gw)
    for _ in range(2):
        r = request(gw.port, certs, "/protected/secret.html", version=version, cert="revoked")
        assert r.status == 200, "without a CRL the revoked certificate verifies"
    assert wait_until(lambda: _hits(gw) > before, 3), "revoked's chain was not cached"

    text = gw.conf.read_text()
    assert "crl =" not in text
    _reload(gw, text.replace("[tls]\n", f"[tls]\ncrl = {certs.dir / 'crl.pem'}\n", 1))
    before = _hits(gw)
    kind, out = handshake_outcome(gw.port, certs, version, "revoked")
    assert kind == "alert" and "revoked" in out.lower(), f"{kind}: {out}"
    # client1 verifies in full once under the new configuration
    r = request(gw.port, certs, "/protected/secret.html", version=version, cert="client1")
    assert r.status == 200, r
    assert _hits(gw) == before, "a result from the old configuration was used"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_crl_rewritten_refuses_cached_chain(gateway_factory, certs, tmp_path, version):
    crl = tmp_path / "crl.pem"
    shutil.copy(certs.dir / "crl.pem", crl)
    gw = gateway_factory(server={"workers": 1, "log_level": "debug"},
                         tls={"crl": crl, "crl_check_interval": "1s"})
    _cache_client1(gw, certs, version)
    loaded = gw.stderr().count("CRL(s)")
    _replace(crl, _crl_with(certs, tmp_path, ("client1",)))
    assert wait_until(lambda: gw.stderr().count("CRL(s)") > loaded, 15), gw.stderr()
    before = _hits(gw)
    kind, text = handshake_outcome(gw.port, certs, version, "client1")
    assert kind == "alert" and "certificate revoked" in text.lower(), (kind, text)
    assert _hits(gw) == before, "a result from before the CRL change was used"
