# SPDX-License-Identifier: MIT
"""Access log: one JSON line per request with time, client, method, path,
status, bytes, duration_ms, tls_version, cipher, verify, fingerprint,
subject and data_path. For client1 the fingerprint is the sha256 of its
DER and the subject names CN=client1; without a certificate both are
empty; data_path is "userspace" on a kernel without kTLS."""

import pytest

from helpers import ktls_available, request, wait_until

FIELDS = ["time", "client", "method", "path", "status", "bytes", "duration_ms",
          "tls_version", "cipher", "verify", "fingerprint", "subject", "data_path"]


def _entry(gw, path):
    def find():
        for e in gw.access():
            if e.get("path") == path:
                return e
        return None
    e = wait_until(find, 5)
    assert e, f"no access log line for {path}; log: {gw.access_log.read_text()[-2000:]}"
    return e


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_access_line_with_client1(gateway_factory, certs, version):
    gw = gateway_factory()
    r = request(gw.port, certs, "/protected/secret.html", version=version, cert="client1")
    assert r.status == 200
    e = _entry(gw, "/protected/secret.html")
    missing = [f for f in FIELDS if f not in e]
    assert not missing, f"missing fields {missing} in {e}"
    assert e["method"] == "GET"
    assert e["status"] == 200
    assert int(e["bytes"]) == len(r.body)
    assert float(e["duration_ms"]) >= 0
    assert e["client"] == f"127.0.0.1:{r.local_port}"
    assert e["tls_version"] == f"TLSv{version}"
    assert "GCM" in e["cipher"] or "CHACHA20" in e["cipher"], e["cipher"]
    assert e["fingerprint"] == certs.fingerprint("client1")
    assert "CN=client1" in e["subject"]
    assert str(e["verify"]).upper() in ("SUCCESS", "OK", "TRUE", "VERIFIED"), e["verify"]
    expected_path = ("userspace", "ktls") if ktls_available() else ("userspace",)
    assert e["data_path"] in expected_path
    assert e["time"]


def test_access_line_without_cert(gateway_factory, certs):
    gw = gateway_factory()
    r = request(gw.port, certs, "/protected/")
    assert r.status == 403
    e = _entry(gw, "/protected/")
    assert e["status"] == 403
    assert not e["fingerprint"]
    assert not e["subject"]
    assert str(e["verify"]).upper() not in ("SUCCESS", "OK", "TRUE", "VERIFIED")


def test_access_line_escapes_hostile_path(gateway_factory, certs):
    """A path with quotes and control characters cannot break the JSON line
    (every line of the file must parse)."""
    gw = gateway_factory()
    request(gw.port, certs, None, raw_target=b'/a"b\\c%22%0a\x01.html')
    request(gw.port, certs, "/main.html")
    wait_until(lambda: any(e.get("path") == "/main.html" for e in gw.access()), 5)
    entries = gw.access()  # raises if a line is not JSON
    assert len(entries) >= 2
