# SPDX-License-Identifier: MIT
"""close_notify on the gateway's own closes over kTLS, in the VM (run by
test_close_notify_ktls.sh).

On kTLS libmicrohttpd owns the client's TCP socket and closes it itself;
the gateway sends a close_notify alert through the kernel first. For TLS
1.2 and 1.3 (ktls = on; each connection must add one kernel TX and one RX
context, and its access-log line must say data_path "ktls"):
  - a request with "Connection: close", read until EOF with Python ssl
    (ragged EOFs not suppressed): the response, then a clean TLS close,
    never SSLEOFError;
  - the same request through `openssl s_client -ign_eof`: the response,
    and no "unexpected eof";
  - a request the gateway refuses with "Connection: close" (two
    Content-Length values: 400), an HTTP/1.0 request, and a keep-alive
    request followed by a "Connection: close" one on the same connection
    (the first must not end it): a clean close too;
  - drain: an idle keep-alive connection when the gateway gets SIGTERM is
    closed with a close_notify.

Prints "VMTEST: PASS name" / "VMTEST: FAIL name: why" lines.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gateway_ktls as g  # noqa: E402

WORK = Path(os.environ.get("VM_WORK", "/tmp/vmtest")) / "closenotify"
IO_TIMEOUT = 30
CLOSE_REQ = (b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n"
             b"Connection: close\r\n\r\n")
BAD_REQ = (b"POST /index.html HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab")
KEEP_REQ = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
HTTP10_REQ = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n"
BODY = b"hello\n"


def connect(certs, port, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=f"{certs}/ca.crt")
    v = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ctx.maximum_version = v
    # A TCP EOF without close_notify must raise SSLEOFError, not read as
    # b"": Python sets OP_IGNORE_UNEXPECTED_EOF by default, clear it.
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), IO_TIMEOUT),
                           server_hostname="localhost", suppress_ragged_eofs=False)


def read_to_end(s, data=b""):
    """(bytes, how it ended): "close_notify", or the error seen."""
    s.settimeout(IO_TIMEOUT)
    while True:
        try:
            chunk = s.recv(65536)
        except ssl.SSLEOFError as e:
            return data, "no close_notify (%s)" % e
        except (ssl.SSLError, OSError) as e:
            return data, "%s: %s" % (type(e).__name__, e)
        if not chunk:
            return data, "close_notify"
        data += chunk


def check_ktls(gw, d, n, conns=None):
    """N access-log lines on data_path ktls, one kernel TX and RX context
    per connection (CONNS, default N)."""
    why = []
    conns = n if conns is None else conns
    if d.tx != conns or d.rx != conns:
        why.append("kernel contexts TX %d RX %d, want %d each" % (d.tx, d.rx, conns))
    time.sleep(0.3)
    entries = gw.new_access()
    if len(entries) != n or any(e.get("data_path") != "ktls" for e in entries):
        why.append("access log %s" % entries)
    return why


def python_close(gw, certs, version, tag, req, want, keep_first=False):
    """REQ answered WANT, then a clean close. KEEP_FIRST: a keep-alive
    request before it on the same connection (no close_notify after it)."""
    first = b""
    with g.Delta() as d:
        try:
            s = connect(certs, gw.port, version)
            if keep_first:
                s.sendall(KEEP_REQ)
                s.settimeout(IO_TIMEOUT)
                while not first.endswith(BODY):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    first += chunk
            s.sendall(req)
            data, end = read_to_end(s)
            s.close()
        except (ssl.SSLError, OSError) as e:
            return g.result(tag, False, "%s: %s" % (type(e).__name__, e))
    why = check_ktls(gw, d, 1 + keep_first, 1)
    if keep_first and not first.startswith(b"HTTP/1.1 200"):
        why.append("keep-alive response %r" % first[:120])
    if not data.startswith(want):
        why.append("response %r" % data[:120])
    if end != "close_notify":
        why.append(end)
    return g.result(tag, not why, "; ".join(why))


def s_client_close(gw, certs, version, tag):
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % gw.port,
            "-servername", "localhost", "-CAfile", f"{certs}/ca.crt",
            "-tls1_3" if version == "1.3" else "-tls1_2", "-ign_eof"]
    with g.Delta() as d:
        try:
            p = subprocess.run(args, input=CLOSE_REQ, capture_output=True,
                               timeout=60)
            out = (p.stdout + p.stderr).decode(errors="replace")
        except subprocess.TimeoutExpired:
            return g.result(tag, False, "s_client did not end")
    why = check_ktls(gw, d, 1)
    if "HTTP/1.1 200" not in out or "hello" not in out:
        why.append("no response")
    if "unexpected eof" in out.lower():
        why.append("s_client: unexpected eof")
    if why:
        g.note("s_client output: " + out[-800:].replace("\n", "\n    "))
    return g.result(tag, not why, "; ".join(why))


def drain(gw, certs):
    """SIGTERM with an idle keep-alive per version: each gets close_notify."""
    socks = {}
    with g.Delta() as d:
        for version in ("1.2", "1.3"):
            try:
                s = connect(certs, gw.port, version)
                s.sendall(KEEP_REQ)
                s.settimeout(IO_TIMEOUT)
                data = b""
                while not data.endswith(BODY):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                socks[version] = (s, data)
            except (ssl.SSLError, OSError) as e:
                g.result("closenotify-drain-tls%s" % version, False,
                         "%s: %s" % (type(e).__name__, e))
        gw.proc.send_signal(signal.SIGTERM)
        ends = {v: read_to_end(s) for v, (s, _) in socks.items()}
    why_all = check_ktls(gw, d, len(socks))
    for version, (s, data) in socks.items():
        s.close()
        why = list(why_all)
        if not data.startswith(b"HTTP/1.1 200"):
            why.append("keep-alive response %r" % data[:120])
        if ends[version][1] != "close_notify":
            why.append(ends[version][1])
        g.result("closenotify-drain-tls%s-idle-keepalive-clean-close" % version,
                 not why, "; ".join(why))
    try:
        rc = gw.proc.wait(60)
    except subprocess.TimeoutExpired:
        rc = None
    g.result("closenotify-drain-exits-0", rc == 0, "exit %s:\n%s" % (rc, gw.stderr()[-500:]))


def main():
    if not g.BIN.exists():
        g.result("closenotify-binary", False, "%s missing" % g.BIN)
        return 0
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    g.WORK = WORK
    certs = Path(os.environ.get("VMTEST_CERTS", WORK / "certs"))
    if not (certs / "client1.crt").exists():
        p = subprocess.run([str(g.REPO / "scripts" / "gen-certs.sh"), str(certs)],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            g.result("closenotify-certs", False, p.stdout[-300:] + p.stderr[-300:])
            return 0
    root = WORK / "root"
    root.mkdir(parents=True)
    (root / "index.html").write_bytes(BODY)
    port = g.free_port()
    gw = g.Gateway("on", port, g.config(certs, root, port, g.free_port(), "on",
                                        WORK / "on" / "access.log"))
    try:
        try:
            gw.start()
        except RuntimeError as e:
            g.result("closenotify-gw-starts", False, str(e)[-800:])
            return 0
        gw.new_access()
        for version in ("1.2", "1.3"):
            tag = "closenotify-tls%s-" % version
            python_close(gw, certs, version, tag + "connection-close-clean",
                         CLOSE_REQ, b"HTTP/1.1 200")
            s_client_close(gw, certs, version, tag + "s_client-no-unexpected-eof")
            python_close(gw, certs, version, tag + "refusal-400-clean",
                         BAD_REQ, b"HTTP/1.1 400")
            python_close(gw, certs, version, tag + "keepalive-then-close-clean",
                         CLOSE_REQ, b"HTTP/1.1 200", keep_first=True)
            python_close(gw, certs, version, tag + "http1.0-clean",
                         HTTP10_REQ, b"HTTP/1.1 200")
        drain(gw, certs)
    finally:
        gw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
