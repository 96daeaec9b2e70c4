# SPDX-License-Identifier: MIT
"""allow_subject: a location that names CN=client1 (or client1's full RFC
2253 DN) serves client1 and answers 403 to client2 (verified, but not
listed) and to a client without a certificate; repeated keys are OR-ed."""

import pytest

from helpers import request

LOCS = [
    ("/allow-cn", {"client_cert": "require", "root": None, "allow_subject": "CN=client1"}),
    ("/allow-dn", {"client_cert": "require", "root": None,
                   "allow_subject": "CN=client1,O=mtlsgw demo"}),
    ("/allow-or", {"client_cert": "require", "root": None,
                   "allow_subject": ["CN=nobody", "CN=client2"]}),
    # client_cert left at "optional": the allow list alone requires a cert.
    ("/allow-opt", {"root": None, "allow_subject": "CN=client1"}),
]


@pytest.fixture(scope="module")
def gw(module_gateway_factory, certs, site):
    f = module_gateway_factory
    locs = [(p, {**k, "root": site.root}) for p, k in LOCS]
    return f(locations=locs)


@pytest.mark.parametrize("path,cert,status", [
    ("/allow-cn/", "client1", 200), ("/allow-cn/", "client2", 403), ("/allow-cn/", None, 403),
    ("/allow-dn/", "client1", 200), ("/allow-dn/", "client2", 403),
    ("/allow-or/", "client2", 200), ("/allow-or/", "client1", 403),
    ("/allow-opt/", "client1", 200), ("/allow-opt/", "client2", 403),
    ("/allow-opt/", None, 403),
])
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_allow_subject(gw, certs, path, cert, status, version):
    r = request(gw.port, certs, path, version=version, cert=cert)
    assert r.status == status, r
    if status == 403:
        assert b" ok" not in r.body
    else:
        assert r.body.strip().endswith(b"ok</p>")
