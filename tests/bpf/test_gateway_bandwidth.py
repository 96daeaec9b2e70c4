# SPDX-License-Identifier: MIT
"""bandwidth_out = 1 MB/s holds a 4 MB download near 1 MB/s (0.5-1.3),
far below the unlimited rate measured in the same test (client2 has an
override without a bandwidth limit)."""

import os
import time

from bpfhelp import KeepAlive, dump_stats, start_gateway

MB = 1_000_000


def test_bandwidth_out(instance, gateway_factory, certs, site):
    f = site.root / "data" / "4mb.bin"
    if not f.exists():
        f.write_bytes(os.urandom(4 * MB))
    fp2 = certs.fingerprint("client2")
    gw = start_gateway(gateway_factory, instance,
                       default={"bandwidth_out": MB},
                       overrides={fp2: {"bandwidth_out": 0}})
    rates = {}
    for cert in ("client2", "client1"):
        with KeepAlive(gw, cert) as c:
            t0 = time.monotonic()
            r = c.get("/data/4mb.bin", timeout=60)
            rates[cert] = 4 * MB / (time.monotonic() - t0)
            assert r.status == 200 and len(r.body) == 4 * MB
    print(f"limited {rates['client1'] / MB:.2f} MB/s, "
          f"unlimited {rates['client2'] / MB:.1f} MB/s")
    assert 0.5 * MB <= rates["client1"] <= 1.3 * MB
    assert rates["client2"] > 3 * rates["client1"]
    assert dump_stats(instance)[certs.fingerprint("client1")]["bytes_out"] > 4 * MB
