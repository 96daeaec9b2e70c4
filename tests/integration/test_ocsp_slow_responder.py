# SPDX-License-Identifier: MIT
"""A responder that accepts connections and never answers delays only the
handshakes that wait for it: with workers = 1, while client1's handshake
is paused on OCSP, other connections on the same worker (no certificate,
and a second client1 handshake that joins the same request rather than
sending another) are served or queued without blocking; when the
responder goes away the paused handshakes end (ocsp_fail = closed)."""

import signal
import socket
import threading

from helpers import HOST, connect_tls, request, wait_until


def test_slow_responder_blocks_nobody_else(gateway_factory, certs):
    # A listener that never accepts: connects succeed (backlog), nothing
    # is ever read or answered.
    lst = socket.socket()
    lst.bind((HOST, 0))
    lst.listen(16)
    port = lst.getsockname()[1]
    gw = gateway_factory(
        server={"workers": 1},
        tls={"ocsp": "leaf", "ocsp_responder": f"http://{HOST}:{port}/",
             "ocsp_timeout": "60s", "handshake_timeout": "60s"},
        locations=[("/metrics", {"metrics": "yes"})])
    outcome = {}

    def paused_client(name):
        try:
            s = connect_tls(gw.port, certs, "1.2", "client1", timeout=90)
            outcome[name] = "handshake done"
            s.close()
        except OSError as e:
            outcome[name] = f"refused: {e}"

    threads = [threading.Thread(target=paused_client, args=(n,)) for n in ("a", "b")]
    try:
        for t in threads:
            t.start()
        # Both handshakes are paused on the one request to the responder.
        def paused():
            body = request(gw.port, certs, "/metrics").body.decode()
            return ("mtlsgw_ocsp_requests_total 1\n" in body
                    and "mtlsgw_ocsp_coalesced_total 1\n" in body)
        assert wait_until(paused, 20), request(gw.port, certs, "/metrics").body.decode()
        # Meanwhile the same worker serves other connections, repeatedly.
        for _ in range(5):
            assert request(gw.port, certs, "/main.html").status == 200
        assert not outcome, f"a paused handshake finished before the responder answered: {outcome}"
        assert all(t.is_alive() for t in threads)
    finally:
        lst.close()  # the pending connection is reset: no answer ever
    for t in threads:
        t.join(90)
    assert set(outcome) == {"a", "b"}
    assert all(v.startswith("refused") for v in outcome.values()), outcome
    assert "ocsp" in gw.stderr()


def test_paused_handshake_deadline_and_stop(gateway_factory, certs):
    """handshake_timeout still ends a handshake paused on OCSP, and a stop
    with a handshake paused exits cleanly (the paused job is finished on
    its worker, exit code 0)."""
    lst = socket.socket()
    lst.bind((HOST, 0))
    lst.listen(16)
    port = lst.getsockname()[1]
    try:
        gw = gateway_factory(
            server={"workers": 1},
            tls={"ocsp": "leaf", "ocsp_responder": f"http://{HOST}:{port}/",
                 "ocsp_timeout": "60s", "handshake_timeout": "1s"},
            locations=[("/metrics", {"metrics": "yes"})])
        try:
            connect_tls(gw.port, certs, "1.2", "client1", timeout=30).close()
            raise AssertionError("handshake paused on a silent responder succeeded")
        except OSError:
            pass
        assert wait_until(lambda: "handshake timed out" in gw.stderr(), 10), gw.stderr()
        # The request the first handshake started is still under way (no
        # answer yet): a second handshake joins it and pauses; stop then.
        gw.conf.write_text(gw.conf.read_text().replace('handshake_timeout = 1s',
                                                       'handshake_timeout = 60s'))
        gw.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "configuration 2" in gw.stderr(), 10), gw.stderr()
        t = threading.Thread(target=lambda: _try_handshake(gw.port, certs))
        t.start()
        assert wait_until(lambda: "mtlsgw_ocsp_coalesced_total 1\n" in
                          request(gw.port, certs, "/metrics").body.decode(), 10)
        assert gw.stop() == 0, gw.stderr()[-3000:]
        t.join(30)
    finally:
        lst.close()


def _try_handshake(port, certs):
    try:
        connect_tls(port, certs, "1.3", "client1", timeout=30).close()
    except OSError:
        pass
