# SPDX-License-Identifier: MIT
"""200 concurrent clients, each with its own full TLS handshake (client
certificate, no session resumption) and a GET of a protected page, all get
200 with the right bytes, within a bounded time."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import REPO, request

N = 200


@pytest.mark.timeout(120)
def test_200_concurrent_clients(gateway, certs):
    expected = (REPO / "conf" / "www" / "protected" / "secret.html").read_bytes()
    barrier = threading.Barrier(N, timeout=30)

    def one(i):
        barrier.wait()
        version = "1.3" if i % 2 else "1.2"
        try:
            r = request(gateway.port, certs, "/protected/secret.html", version=version,
                        cert="client1", timeout=60)
        except Exception as e:  # noqa: BLE001 - reported below
            return f"{type(e).__name__}: {e}"
        if r.status != 200 or r.body != expected:
            return f"status {r.status}, {len(r.body)} bytes"
        return None

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=N) as pool:
        results = list(pool.map(one, range(N)))
    elapsed = time.monotonic() - t0
    failures = [r for r in results if r]
    assert not failures, f"{len(failures)}/{N} failed, e.g. {failures[:5]}"
    assert elapsed < 60, f"{N} clients took {elapsed:.1f} s"
    assert gateway.alive()
