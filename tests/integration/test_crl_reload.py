# SPDX-License-Identifier: MIT
"""The CRL file is re-read when it changes, without a signal: rewritten
with client1 revoked, client1's next handshakes are refused with the alert
`certificate revoked` (and a session client1 resumes is refused too); a
file that no longer parses keeps the old list, and says so once; with
crl_check_interval = 0 only SIGHUP re-reads it."""

import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from helpers import HOST, SNI, build_request, client_context, handshake_outcome, read_response, \
    request, wait_until
from ocsp_responder import write_index

PEM_END = "-----END X509 CRL-----\n"


def _crl_with(certs, work, revoked):
    """crl.pem of gen-certs.sh with the intermediate's CRL re-issued listing
    REVOKED too (its first block is the intermediate's)."""
    ca = work / "ca-intermediate"
    shutil.copytree(certs.dir / ".ca" / "intermediate", ca, dirs_exist_ok=True)
    cnf = (ca / "ca.cnf").read_text()
    cnf = re.sub(r"^dir = .*$", f"dir = {ca}", cnf, flags=re.M)
    (ca / "ca.cnf").write_text(cnf)
    write_index(certs, ca / "index.txt", revoked)
    subprocess.run(["openssl", "ca", "-batch", "-config", str(ca / "ca.cnf"), "-gencrl",
                    "-crldays", "30", "-out", str(work / "inter.crl")],
                   check=True, capture_output=True, timeout=30)
    original = (certs.dir / "crl.pem").read_text()
    rest = original[original.index(PEM_END) + len(PEM_END):]
    return (work / "inter.crl").read_text() + rest


def _replace(path, text):
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    tmp.replace(path)  # a new inode, as an operator's tool would write it


def _gateway(gateway_factory, certs, tmp_path, interval):
    crl = tmp_path / "crl.pem"
    shutil.copy(certs.dir / "crl.pem", crl)
    gw = gateway_factory(server={"workers": 1},
                         tls={"crl": crl, "crl_check_interval": interval},
                         locations=[("/metrics", {"metrics": "yes"})])
    return gw, crl


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_rewritten_crl_applies_without_signal(gateway_factory, certs, tmp_path, version):
    gw, crl = _gateway(gateway_factory, certs, tmp_path, "1s")
    ctx = client_context(certs, version, "client1")
    raw = socket.create_connection((HOST, gw.port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=SNI)
    s.sendall(build_request("GET", "/protected/secret.html"))
    assert read_response(s).status == 200
    sess = s.session
    s.close()
    new = _crl_with(certs, tmp_path, ("client1",))
    t0 = time.monotonic()
    _replace(crl, new)
    assert wait_until(lambda: gw.stderr().count("CRL(s)") >= 2, 15), gw.stderr()
    print(f"new CRL in force {time.monotonic() - t0:.2f} s after it was rewritten "
          f"(crl_check_interval 1 s)")
    kind, text = handshake_outcome(gw.port, certs, version, "client1")
    assert kind == "alert" and "certificate revoked" in text.lower(), (kind, text)
    assert request(gw.port, certs, "/protected/secret.html", cert="client2").status == 200
    # The session client1 made before the revocation does not resume.
    raw = socket.create_connection((HOST, gw.port), timeout=10)
    try:
        s = ctx.wrap_socket(raw, server_hostname=SNI, session=sess)
        s.sendall(build_request("GET", "/protected/secret.html"))
        status = read_response(s).status
    except Exception:  # noqa: BLE001 - alert, reset or EOF: all refusals
        status = None
    assert status is None, "a resumed session of a revoked certificate was served"
    assert wait_until(lambda: any(e.get("verify") == "revoked (crl)" and e.get("tls_resumed")
                                  for e in gw.access()), 5), gw.access()
    full = [e for e in gw.access() if e.get("verify") == "revoked (crl)"
            and not e.get("tls_resumed")]
    assert full and full[0]["subject"] == "CN=client1,O=mtlsgw demo", full
    assert gw.alive()


def test_broken_crl_keeps_old_list(gateway_factory, certs, tmp_path):
    gw, crl = _gateway(gateway_factory, certs, tmp_path, "1s")
    _replace(crl, "-----BEGIN X509 CRL-----\nbm90IGEgY3Js\n-----END X509 CRL-----\n")
    assert wait_until(lambda: "previous CRL list stays in force" in gw.stderr(), 15), gw.stderr()
    # The old list still refuses "revoked" and still lets client1 in.
    kind, text = handshake_outcome(gw.port, certs, "1.3", "revoked")
    assert kind == "alert" and "certificate revoked" in text.lower(), (kind, text)
    assert request(gw.port, certs, "/protected/secret.html", cert="client1").status == 200
    # Said once, not at every check.
    n = gw.stderr().count("previous CRL list stays in force")
    _ = wait_until(lambda: False, 2.5)
    assert gw.stderr().count("previous CRL list stays in force") == n == 1
    # A good file again is taken up.
    _replace(crl, _crl_with(certs, tmp_path, ("client1",)))
    assert wait_until(lambda: handshake_outcome(gw.port, certs, "1.3", "client1")[0]
                      == "alert", 15), gw.stderr()
    r = request(gw.port, certs, "/metrics")
    assert 'mtlsgw_crl_reloads_total{result="failed"} 1' in r.body.decode()


def test_interval_zero_waits_for_sighup(gateway_factory, certs, tmp_path):
    gw, crl = _gateway(gateway_factory, certs, tmp_path, "0")
    _replace(crl, _crl_with(certs, tmp_path, ("client1",)))
    time.sleep(1.5)  # not an assertion on time: gives a wrong reload the chance to happen
    assert request(gw.port, certs, "/protected/secret.html", cert="client1").status == 200
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: handshake_outcome(gw.port, certs, "1.3", "client1")[0]
                      == "alert", 15), gw.stderr()
