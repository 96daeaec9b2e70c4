# SPDX-License-Identifier: MIT
"""allow_san: a location allowing client1's SPIFFE URI SAN, and one
allowing its DNS SAN, serve client1 and answer 403 to client2 and to a
client without a certificate."""

import pytest

from helpers import request


@pytest.fixture(scope="module")
def gw(module_gateway_factory, certs, site):
    f = module_gateway_factory
    return f(locations=[
        ("/allow-san-uri", {"client_cert": "require", "root": site.root,
                            "allow_san": "spiffe://mtlsgw.test/client1"}),
        ("/allow-san-dns", {"client_cert": "require", "root": site.root,
                            "allow_san": "client1.mtlsgw.test"}),
    ])


@pytest.mark.parametrize("path", ["/allow-san-uri/", "/allow-san-dns/"])
@pytest.mark.parametrize("cert,status", [("client1", 200), ("client2", 403), (None, 403)])
def test_allow_san(gw, certs, path, cert, status):
    r = request(gw.port, certs, path, cert=cert)
    assert r.status == status, r
