# SPDX-License-Identifier: MIT
"""Large static files arrive byte-exact over TLS 1.2 and 1.3: a 1 MB and
a 100 MB random file fetched with curl have the sha256 of the originals,
with and without a client certificate."""

import pytest

from helpers import curl, sha256_file

TLS = {"1.2": ["--tlsv1.2", "--tls-max", "1.2"], "1.3": ["--tlsv1.3"]}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("version", list(TLS))
@pytest.mark.parametrize("name", ["1mb.bin", "100mb.bin"])
def test_download_exact(gateway, certs, site, tmp_path, name, version):
    out = tmp_path / name
    rc, code, err, _ = curl(gateway.port, certs, f"/data/{name}", *TLS[version], out=out,
                            timeout=120)
    assert (rc, code) == (0, "200"), (rc, code, err)
    assert out.stat().st_size == site.size[name]
    assert sha256_file(out) == site.sha256[name]


@pytest.mark.timeout(60)
def test_download_with_client_cert(gateway, certs, site, tmp_path):
    out = tmp_path / "1mb.bin"
    rc, code, err, _ = curl(gateway.port, certs, "/data/1mb.bin", cert="client1", out=out)
    assert (rc, code) == (0, "200"), (rc, code, err)
    assert sha256_file(out) == site.sha256["1mb.bin"]
