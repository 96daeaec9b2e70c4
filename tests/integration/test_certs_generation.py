# SPDX-License-Identifier: MIT
"""scripts/gen-certs.sh produces the PKI the docs and tests rely on: every
named file, keys mode 0600, ECDSA P-256 by default and RSA 2048 with
--rsa; a second run changes nothing, --force makes new keys; the leaves
have the promised names, SANs and EKUs; expired is really expired;
crl.pem lists revoked (and only it) with a next update years away."""

import re
import stat
import subprocess

from helpers import REPO

SCRIPT = REPO / "scripts" / "gen-certs.sh"
FILES = ["ca.crt", "intermediate.crt", "client-ca.pem", "crl.pem", "server.crt", "server.key",
         "client1.crt", "client1.key", "client2.crt", "client2.key", "unknown-ca.crt",
         "unknown-ca.key", "unknown-ca-root.crt", "expired.crt", "expired.key", "revoked.crt",
         "revoked.key", "server-eku.crt", "server-eku.key", "deep.crt", "deep.key"]


def _gen(*args):
    p = subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout + p.stderr


def _x509(path, *opts):
    return subprocess.run(["openssl", "x509", "-in", str(path), "-noout", *opts],
                          capture_output=True, text=True, timeout=10, check=True).stdout


def test_files_modes_and_idempotence(tmp_path):
    d = tmp_path / "c"
    _gen(d)
    for f in FILES:
        assert (d / f).is_file() and (d / f).stat().st_size > 0, f
    for k in d.glob("*.key"):
        assert stat.S_IMODE(k.stat().st_mode) == 0o600, k
    before = {f: (d / f).read_bytes() for f in FILES}
    out = _gen(d)
    assert "nothing to do" in out
    assert {f: (d / f).read_bytes() for f in FILES} == before
    # A partial set is completed around the existing keys ...
    (d / "crl.pem").unlink()
    _gen(d)
    assert (d / "crl.pem").exists()
    for f in FILES:
        if f.endswith(".key"):
            assert (d / f).read_bytes() == before[f], f
    # ... and only --force makes new keys.
    _gen("--force", d)
    assert (d / "client1.key").read_bytes() != before["client1.key"]


def test_algorithms(tmp_path, certs):
    assert "id-ecPublicKey" in _x509(certs.crt("client1"), "-text")
    assert "prime256v1" in _x509(certs.crt("client1"), "-text")
    d = tmp_path / "rsa"
    _gen("--rsa", d)
    text = _x509(d / "server.crt", "-text")
    assert "rsaEncryption" in text and "2048 bit" in text


def test_leaf_contents(certs):
    srv = _x509(certs.crt("server"), "-text")
    assert "CN = localhost" in srv
    assert re.search(r"DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1", srv)
    assert "TLS Web Server Authentication" in srv
    assert (certs.dir / "server.crt").read_text().count("BEGIN CERTIFICATE") == 2
    for c in ("client1", "client2"):
        t = _x509(certs.crt(c), "-text")
        assert f"CN = {c}" in t
        assert "TLS Web Client Authentication" in t
        assert f"URI:spiffe://mtlsgw.test/{c}" in t and f"DNS:{c}.mtlsgw.test" in t
    eku = _x509(certs.crt("server-eku"), "-text")
    assert "TLS Web Server Authentication" in eku and "Client Authentication" not in eku
    assert (certs.dir / "client-ca.pem").read_text().count("BEGIN CERTIFICATE") == 2
    inter = _x509(certs.dir / "intermediate.crt", "-text")
    assert "CA:TRUE, pathlen:0" in inter


def test_expired_is_expired(certs):
    p = subprocess.run(["openssl", "x509", "-in", str(certs.crt("expired")), "-noout",
                        "-checkend", "0"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and "will expire" in p.stdout
    assert "2021" in _x509(certs.crt("expired"), "-enddate")


def test_crl_lists_revoked_only(certs):
    pem = (certs.dir / "crl.pem").read_text()
    blocks = re.findall(r"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", pem, re.S)
    assert len(blocks) >= 2
    revoked_serial = _x509(certs.crt("revoked"), "-serial").split("=")[1].strip()
    listed = []
    for b in blocks:
        t = subprocess.run(["openssl", "crl", "-noout", "-text"], input=b, capture_output=True,
                           text=True, timeout=10, check=True).stdout
        listed += re.findall(r"Serial Number: ([0-9A-F]+)", t)
        m = re.search(r"Next Update: .* (\d{4}) GMT", t)
        assert m and int(m.group(1)) >= 2030, t
    assert listed == [revoked_serial]


def test_verdicts_with_openssl_verify(certs):
    def verify(name, *extra):
        return subprocess.run(
            ["openssl", "verify", "-CAfile", str(certs.dir / "client-ca.pem"), "-CRLfile",
             str(certs.dir / "crl.pem"), "-crl_check_all", "-purpose", "sslclient",
             "-verify_depth", "2", *extra, str(certs.crt(name))],
            capture_output=True, text=True, timeout=10).stdout + ""
    assert "OK" in verify("client1")
    assert "OK" in verify("client2")
    for name in ("expired", "revoked", "server-eku", "unknown-ca"):
        assert "OK" not in verify(name), name
    deep = str(certs.crt("deep"))
    p = subprocess.run(["openssl", "verify", "-CAfile", str(certs.dir / "client-ca.pem"),
                        "-untrusted", deep, "-verify_depth", "2", deep],
                       capture_output=True, text=True, timeout=10)
    assert "chain too long" in p.stdout + p.stderr
