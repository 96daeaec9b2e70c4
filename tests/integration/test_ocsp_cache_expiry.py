# SPDX-License-Identifier: MIT
"""A cached `good` lasts until the answer's nextUpdate, not longer: with
answers valid one minute (`openssl ocsp -nmin 1`, the shortest it gives)
and the responder stopped after the first handshake, client1 is served
from the cache, then refused once nextUpdate has passed (ocsp_fail =
closed). About a minute of waiting, nearly no CPU."""

from helpers import handshake_outcome, request, wait_until
from ocsp_responder import OcspResponder


def test_cached_good_expires_at_next_update(gateway_factory, certs, tmp_path):
    resp = OcspResponder(certs, tmp_path, next_update_min=1).start()
    try:
        gw = gateway_factory(server={"workers": 1},
                             tls={"ocsp": "leaf", "ocsp_responder": resp.url})
        assert request(gw.port, certs, "/protected/secret.html", cert="client1").status == 200
    finally:
        resp.stop()
    assert request(gw.port, certs, "/protected/secret.html", cert="client1").status == 200
    assert wait_until(lambda: handshake_outcome(gw.port, certs, "1.2", "client1")[0] != "open",
                      150, interval=2), "a cached answer outlived its nextUpdate"
    assert "OCSP status unavailable" in gw.stderr(), gw.stderr()
