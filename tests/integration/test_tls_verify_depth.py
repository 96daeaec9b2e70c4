# SPDX-License-Identifier: MIT
"""verify_depth is the most CA certificates allowed above the client's own,
root included (Apache's SSLVerifyDepth). Against chains of 2 (chain2:
leaf + root), 3 (client1: leaf + intermediate + root) and 4 certificates
(chain4: leaf + two intermediates + root), over TLS 1.2 and 1.3:
verify_depth = 1 accepts only the chain of 2, verify_depth = 2 the chains
of 2 and 3, verify_depth = 3 all three; a refused chain fails the
handshake with an alert and the log says the chain is too long.
verify_depth = 0 (OpenSSL would read it as "default", 100) is refused by
`mtlsgw -t` and at start with FILE:LINE."""

import subprocess

import pytest

from helpers import handshake_outcome, request, wait_until

CHAINS = {"chain2": 2, "client1": 3, "chain4": 4}


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_depth_against_chains(gateway_factory, certs, depth):
    gw = gateway_factory(tls={"verify_depth": depth})
    for name, length in CHAINS.items():
        for version in ("1.2", "1.3"):
            accepted = length <= depth + 1
            before = len(gw.stderr())
            if accepted:
                r = request(gw.port, certs, "/protected/", version=version, cert=name)
                assert r.status == 200, (depth, name, version, r.status)
                continue
            kind, text = handshake_outcome(gw.port, certs, version, name)
            assert kind == "alert", (
                f"verify_depth {depth}, chain of {length} ({name}) over TLS {version}: "
                f"expected a handshake alert, got {kind}: {text}")
            assert wait_until(lambda: "too long" in gw.stderr()[before:].lower(), 3), (
                f"no 'chain too long' in the log for {name} at depth {depth}:\n"
                f"{gw.stderr()[before:][-2000:]}")


def test_depth_zero_refused(gateway_factory, mtlsgw_bin, certs):
    gw = gateway_factory()
    text = gw.conf.read_text().replace("verify_depth = 2", "verify_depth = 0")
    assert "verify_depth = 0" in text
    bad = gw.conf.with_name("depth0.conf")
    bad.write_text(text)
    line = text.splitlines().index("verify_depth = 0") + 1
    p = subprocess.run([str(mtlsgw_bin), "-t", "-c", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"{bad}:{line}: " in p.stderr and "verify_depth" in p.stderr, p.stderr
    # the same at start: the daemon refuses to run with it
    p = subprocess.run([str(mtlsgw_bin), "-c", str(bad)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0 and f"{bad}:{line}: " in p.stderr, p.stderr
