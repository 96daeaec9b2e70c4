# SPDX-License-Identifier: MIT
"""[limits] anonymous_prefix_v4 (0..32, default 32) and anonymous_prefix_v6
(0..128, default 64): `mtlsgw -t` accepts the range, refuses values out
of it and the keys anywhere but [limits], each as FILE:LINE: message."""

import subprocess

import pytest


def _conf(certs, site, limits):
    return "\n".join([
        "[server]",
        "listen = 127.0.0.1:18443",
        "access_log = off",
        "[tls]",
        f"cert = {certs.dir / 'server.crt'}",
        f"key = {certs.dir / 'server.key'}",
        f"client_ca = {certs.dir / 'client-ca.pem'}",
        "[location /]",
        f"root = {site.root}",
    ] + limits) + "\n"


def _check(mtlsgw_bin, tmp_path, text):
    conf = tmp_path / "t.conf"
    conf.write_text(text)
    p = subprocess.run([str(mtlsgw_bin), "-t", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30)
    return conf, p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("limits", [
    [],
    ["[limits]", "anonymous_prefix_v6 = 0", "anonymous_prefix_v4 = 0"],
    ["[limits]", "anonymous_prefix_v6 = 128", "anonymous_prefix_v4 = 32"],
    ["[limits]", "max_conns = 5", "anonymous_prefix_v6 = 48",
     "[limits anonymous]", "max_conns = 1"],
])
def test_prefix_accepted(mtlsgw_bin, tmp_path, certs, site, limits):
    conf, rc, out = _check(mtlsgw_bin, tmp_path, _conf(certs, site, limits))
    assert rc == 0, out


@pytest.mark.parametrize("limits, message", [
    (["[limits]", "anonymous_prefix_v6 = 129"], "anonymous_prefix_v6"),
    (["[limits]", "anonymous_prefix_v4 = 33"], "anonymous_prefix_v4"),
    (["[limits]", "anonymous_prefix_v4 = -1"], "anonymous_prefix_v4"),
    (["[limits]", "anonymous_prefix_v6 = /64"], "anonymous_prefix_v6"),
    (["[limits anonymous]", "anonymous_prefix_v6 = 64"],
     "'anonymous_prefix_v6' belongs in [limits], not in [limits anonymous]"),
    ([f"[limits sha256:{'ab' * 32}]", "anonymous_prefix_v4 = 24"],
     "'anonymous_prefix_v4' belongs in [limits]"),
])
def test_prefix_refused(mtlsgw_bin, tmp_path, certs, site, limits, message):
    text = _conf(certs, site, limits)
    conf, rc, out = _check(mtlsgw_bin, tmp_path, text)
    line = len(text.splitlines())  # the key is the last line
    assert rc == 1, out
    assert f"{conf}:{line}: " in out and message in out, out
