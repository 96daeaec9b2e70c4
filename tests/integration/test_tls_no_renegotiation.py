# SPDX-License-Identifier: MIT
"""No renegotiation: a TLS 1.2 client that asks to renegotiate (s_client's
"R") is refused (no_renegotiation alert) or disconnected, and the server
never runs a second handshake (exactly one ServerHello on the wire)."""

import re
import subprocess
import time

from helpers import HOST, SNI


def test_client_renegotiation_refused(gateway, certs):
    cmd = ["openssl", "s_client", "-connect", f"{HOST}:{gateway.port}", "-servername", SNI,
           "-CAfile", str(certs.ca), "-tls1_2", "-msg",
           "-cert", str(certs.crt("client1")), "-key", str(certs.key("client1"))]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        time.sleep(1.0)  # handshake done
        try:
            p.stdin.write(b"R\n")
            p.stdin.flush()
        except BrokenPipeError:
            pass
        time.sleep(1.5)  # renegotiation attempted; then stdin EOF ends s_client
        out, _ = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = out.decode("utf-8", "replace")
    assert "New, TLSv1.2, Cipher is" in text, text
    assert "RENEGOTIATING" in text, "the client did not try to renegotiate:\n" + text
    hellos = [l for l in text.splitlines() if re.search(r", ServerHello\s*$", l)]
    assert len(hellos) == 1, f"server answered a renegotiation ({len(hellos)} ServerHello):\n{text}"
    # The gateway is still alive and well.
    assert gateway.alive()


def test_renegotiation_leaves_others_alone(gateway, certs):
    """After the refused renegotiation, other clients are served."""
    from helpers import request
    r = request(gateway.port, certs, "/main.html", version="1.2")
    assert r.status == 200
