# SPDX-License-Identifier: MIT
"""Identity headers on proxied requests: for client1 the upstream gets
exactly X-Client-Verify, -Cert-Fingerprint, -Subject, -Issuer, -Serial,
-SAN-URI, -SAN-DNS with the certificate's values (and, with forward_cert,
the URL-encoded PEM plus RFC 9440 Client-Cert / Client-Cert-Chain); with no
certificate only "X-Client-Verify: NONE"; header_prefix renames them; and
X-Forwarded-For is appended, X-Forwarded-Proto/-Host set."""

import base64
import json
import ssl
import subprocess
from urllib.parse import quote

from helpers import HOST, SNI, build_request, read_response, request
from upstream_server import gateway_opts, upstream  # noqa: F401 (fixture)

import socket


def x509_field(path, *args):
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-nameopt",
                          "RFC2253", *args], capture_output=True, text=True,
                         check=True).stdout.strip()
    return out.split("=", 1)[1]


def identity_headers(seen, prefix="x-client-"):
    return [(k, v) for k, v in seen["headers"]
            if k.lower().startswith(prefix) or k.lower().startswith("client-cert")]


def expected_client1(certs, prefix="X-Client-"):
    crt = certs.crt("client1")
    return [
        (prefix + "Verify", "SUCCESS"),
        (prefix + "Cert-Fingerprint", certs.fingerprint("client1")),
        (prefix + "Subject", x509_field(crt, "-subject")),
        (prefix + "Issuer", x509_field(crt, "-issuer")),
        (prefix + "Serial", x509_field(crt, "-serial")),
        (prefix + "SAN-URI", "spiffe://mtlsgw.test/client1"),
        (prefix + "SAN-DNS", "client1.mtlsgw.test"),
    ]


def test_identity_client1_exact(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    r = request(gw.port, certs, "/svc/who", cert="client1",
                headers={"X-Forwarded-For": "10.9.8.7"})
    assert r.status == 200, r.text()
    seen = json.loads(r.body)
    assert identity_headers(seen) == expected_client1(certs)
    # Sanity of the expected values themselves.
    assert x509_field(certs.crt("client1"), "-subject").startswith("CN=client1")
    h = {k.lower(): v for k, v in seen["headers"]}
    assert h["x-forwarded-for"] == "10.9.8.7, 127.0.0.1"
    assert h["x-forwarded-proto"] == "https"
    assert h["x-forwarded-host"] == SNI
    assert h["host"] == SNI


def test_identity_no_certificate(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, loc={"forward_cert": "yes"}))
    r = request(gw.port, certs, "/svc/who")
    assert r.status == 200, r.text()
    seen = json.loads(r.body)
    assert identity_headers(seen) == [("X-Client-Verify", "NONE")]
    h = {k.lower(): v for k, v in seen["headers"]}
    assert h["x-forwarded-for"] == "127.0.0.1"


def test_identity_forward_cert_and_chain(gateway_factory, certs, upstream, tmp_path):
    gw = gateway_factory(**gateway_opts(upstream.addr, loc={"forward_cert": "yes"}))
    leaf = certs.der("client1")
    pem = ssl.DER_cert_to_PEM_cert(leaf)

    # Leaf only (client1.crt holds no intermediate): no Client-Cert-Chain.
    r = request(gw.port, certs, "/svc/who", cert="client1")
    assert r.status == 200, r.text()
    got = identity_headers(json.loads(r.body))
    assert got == expected_client1(certs) + [
        ("X-Client-Cert", quote(pem, safe="")),
        ("Client-Cert", ":" + base64.b64encode(leaf).decode() + ":"),
    ]

    # With the intermediate sent too: Client-Cert-Chain lists it.
    chain = tmp_path / "client1-chain.crt"
    chain.write_text(certs.crt("client1").read_text() +
                     (certs.dir / "intermediate.crt").read_text())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(certs.ca))
    ctx.load_cert_chain(str(chain), str(certs.key("client1")))
    inter = ssl.PEM_cert_to_DER_cert((certs.dir / "intermediate.crt").read_text())
    with socket.create_connection((HOST, gw.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=SNI) as s:
            s.sendall(build_request("GET", "/svc/who"))
            r = read_response(s)
    assert r.status == 200, r.text()
    got = dict(identity_headers(json.loads(r.body)))
    assert got["Client-Cert-Chain"] == ":" + base64.b64encode(inter).decode() + ":"
    assert got["Client-Cert"] == ":" + base64.b64encode(leaf).decode() + ":"


def test_identity_header_prefix(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, loc={"header_prefix": "X-Mtls-"}))
    r = request(gw.port, certs, "/svc/who", cert="client1",
                headers={"X-Mtls-Verify": "forged", "X-Mtls-Subject": "CN=admin"})
    assert r.status == 200, r.text()
    seen = json.loads(r.body)
    assert identity_headers(seen, "x-mtls-") == expected_client1(certs, "X-Mtls-")
    assert identity_headers(seen, "x-client-") == []
