# SPDX-License-Identifier: MIT
"""`mtlsgw -t` on broken configs exits 1 and prints each problem as
FILE:LINE: message, pointing at the offending line: an unknown key, bad
values, a missing file, a key that does not match its certificate
(client1.key with server.crt), an unknown section; several errors in one
file are all reported. `-t` on a good config exits 0."""

import re
import subprocess

import pytest



def _base(certs, site, tls_key=None, crt=None):
    lines = [
        "[server]",                                           # 1
        "listen = 127.0.0.1:18443",                           # 2
        "workers = 1",                                        # 3
        "access_log = off",                                   # 4
        "[tls]",                                              # 5
        f"cert = {crt or certs.dir / 'server.crt'}",          # 6
        f"key = {tls_key or certs.dir / 'server.key'}",       # 7
        f"client_ca = {certs.dir / 'client-ca.pem'}",         # 8
        f"crl = {certs.dir / 'crl.pem'}",                     # 9
        "verify_depth = 2",                                   # 10
        "min_version = 1.2",                                  # 11
        "handshake_timeout = 10s",                            # 12
        "[location /]",                                       # 13
        f"root = {site.root}",                                # 14
        "[location /protected]",                              # 15
        "client_cert = require",                              # 16
        f"root = {site.root}",                                # 17
        "[location /health]",                                 # 18
        "return = 200 ok",                                    # 19
    ]
    return lines


def _check(tmp_path, lines):
    conf = tmp_path / "broken.conf"
    conf.write_text("\n".join(lines) + "\n")
    p = subprocess.run([str(_BIN[0]), "-t", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    return conf, p.returncode, p.stdout + p.stderr


def _error_lines(conf, out):
    """The line numbers of FILE:LINE: messages about CONF."""
    pat = re.compile(r"^" + re.escape(str(conf)) + r":(\d+): .+", re.M)
    return [int(n) for n in pat.findall(out)]


_BIN = [None]


@pytest.fixture(autouse=True)
def _bin(mtlsgw_bin):
    _BIN[0] = mtlsgw_bin


def test_good_config(certs, site, tmp_path):
    conf, rc, out = _check(tmp_path, _base(certs, site))
    assert rc == 0, out


@pytest.mark.parametrize("lineno,text", [
    (3, "bogus_key = 1"),                 # unknown key in [server]
    (10, "verify_depth = many"),
    (10, "verify_depth = -1"),
    (11, "min_version = 1.1"),
    (11, "min_version = 1.0"),
    (12, "handshake_timeout = soon"),
    (16, "client_cert = maybe"),
    (2, "listen = 127.0.0.1:99999"),
    (2, "listen = nowhere"),
    (3, "workers = zero"),
    (6, "cert = /nonexistent/server.crt"),
    (8, "client_ca = /nonexistent/ca.pem"),
    (14, "root = /nonexistent/www"),
    (19, "return = 999 bad"),
    (19, "allow_fingerprint = not-a-fingerprint"),
])
def test_bad_line(certs, site, tmp_path, lineno, text):
    lines = _base(certs, site)
    lines[lineno - 1] = text
    conf, rc, out = _check(tmp_path, lines)
    assert rc == 1, f"exit {rc} for {text!r}:\n{out}"
    assert lineno in _error_lines(conf, out), \
        f"no {conf}:{lineno}: line for {text!r}; output:\n{out}"


def test_unknown_section(certs, site, tmp_path):
    lines = _base(certs, site) + ["[bogus]", "a = b"]
    conf, rc, out = _check(tmp_path, lines)
    assert rc == 1, out
    assert set(_error_lines(conf, out)) & {20, 21}, out


def test_key_does_not_match_cert(certs, site, tmp_path):
    lines = _base(certs, site, tls_key=certs.key("client1"))
    conf, rc, out = _check(tmp_path, lines)
    assert rc == 1, out
    assert set(_error_lines(conf, out)) & {6, 7}, \
        f"the mismatch should point at the cert or key line:\n{out}"


def test_several_errors_all_reported(certs, site, tmp_path):
    lines = _base(certs, site)
    lines[2] = "bogus_key = 1"
    lines[10] = "min_version = 1.1"
    lines[15] = "client_cert = maybe"
    conf, rc, out = _check(tmp_path, lines)
    assert rc == 1, out
    assert {3, 11, 16} <= set(_error_lines(conf, out)), out


def test_missing_config_file(tmp_path):
    p = subprocess.run([str(_BIN[0]), "-t", "-c", str(tmp_path / "nope.conf")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "nope.conf" in p.stdout + p.stderr


def test_refused_at_start_too(certs, site, tmp_path):
    """Without -t the same config is refused at start (exit non-zero, same
    FILE:LINE message), it does not start serving."""
    lines = _base(certs, site)
    lines[2] = "bogus_key = 1"
    conf = tmp_path / "broken.conf"
    conf.write_text("\n".join(lines) + "\n")
    p = subprocess.run([str(_BIN[0]), "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert 3 in _error_lines(conf, p.stdout + p.stderr), p.stdout + p.stderr
