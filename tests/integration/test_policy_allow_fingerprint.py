# SPDX-License-Identifier: MIT
"""allow_fingerprint: a location allowing the SHA-256 of client1's DER
(lowercase hex, and written as uppercase colon-separated pairs with a
"sha256:" prefix, as an operator may paste it) serves client1 and answers
403 to client2 and to a client without a certificate."""

import pytest

from helpers import request


@pytest.fixture(scope="module")
def gw(module_gateway_factory, certs, site):
    f = module_gateway_factory
    fp = certs.fingerprint("client1")
    colons = "sha256:" + ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
    return f(locations=[
        ("/allow-fp", {"client_cert": "require", "root": site.root,
                       "allow_fingerprint": fp}),
        ("/allow-fp-colons", {"client_cert": "require", "root": site.root,
                              "allow_fingerprint": colons}),
    ])


@pytest.mark.parametrize("path", ["/allow-fp/", "/allow-fp-colons/"])
@pytest.mark.parametrize("cert,status", [("client1", 200), ("client2", 403), (None, 403)])
def test_allow_fingerprint(gw, certs, path, cert, status):
    r = request(gw.port, certs, path, cert=cert)
    assert r.status == status, r
