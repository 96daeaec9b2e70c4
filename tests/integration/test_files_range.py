# SPDX-License-Identifier: MIT
"""Single byte ranges: "bytes=A-B", "A-" and "-N" answer 206 with the right
bytes and Content-Range; a range past the end answers 416 with
"Content-Range: bytes */SIZE"; a multi-range or other unit is ignored
(200, whole file)."""

import pytest

from helpers import request

SIZE = 1 << 20


@pytest.fixture(scope="module")
def data(site):
    return (site.root / "data" / "1mb.bin").read_bytes()


@pytest.mark.parametrize("rng,first,last", [
    ("bytes=0-99", 0, 99),
    ("bytes=1000-1999", 1000, 1999),
    ("bytes=1048000-", 1048000, SIZE - 1),
    ("bytes=-100", SIZE - 100, SIZE - 1),
    ("bytes=0-0", 0, 0),
    ("bytes=1048500-9999999", 1048500, SIZE - 1),
])
def test_range_206(gateway, certs, data, rng, first, last):
    r = request(gateway.port, certs, "/data/1mb.bin", headers={"Range": rng})
    assert r.status == 206, r
    assert r.header("Content-Range") == f"bytes {first}-{last}/{SIZE}"
    assert r.body == data[first:last + 1]
    assert int(r.header("Content-Length")) == last - first + 1


@pytest.mark.parametrize("rng", ["bytes=2000000-", "bytes=1048576-1048600"])
def test_range_416(gateway, certs, rng):
    r = request(gateway.port, certs, "/data/1mb.bin", headers={"Range": rng})
    assert r.status == 416, r
    assert r.header("Content-Range") == f"bytes */{SIZE}"


@pytest.mark.parametrize("rng", ["bytes=0-1,5-6", "items=0-10"])
def test_range_ignored(gateway, certs, data, rng):
    r = request(gateway.port, certs, "/data/1mb.bin", headers={"Range": rng})
    assert r.status == 200, r
    assert r.body == data


def test_range_over_tls12(gateway, certs, data):
    r = request(gateway.port, certs, "/data/1mb.bin", headers={"Range": "bytes=10-20"},
                version="1.2")
    assert r.status == 206 and r.body == data[10:21]
