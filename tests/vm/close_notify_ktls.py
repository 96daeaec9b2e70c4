# SPDX-License-Identifier: MIT
"""close_notify on every close of a kTLS connection, in the VM (run by
test_close_notify_ktls.sh).

On kTLS libmicrohttpd owns the client's TCP socket; the gateway sends a
close_notify alert through the kernel before the FIN, whoever decided the
close. For TLS 1.2 and 1.3 (ktls = on; each connection must add one kernel
TX and one RX context, and its access-log line must say data_path "ktls"):
  - a request with "Connection: close", read until EOF with Python ssl
    (ragged EOFs not suppressed, helpers.receive_until_closed): the
    response, then a clean TLS close, never a bare EOF;
  - the same request through `openssl s_client -ign_eof`: the response,
    and no "unexpected eof";
  - a request the gateway refuses with "Connection: close" (two
    Content-Length values: 400), an HTTP/1.0 request, and a keep-alive
    request followed by a "Connection: close" one on the same connection
    (the first must not end it): a clean close too;
  - closes libmicrohttpd decides on an idle keep-alive connection, with no
    callback before its own close: its idle timeout (request_timeout = 2s
    on a second gateway), a TLS 1.3 KeyUpdate and a TLS 1.2 renegotiation
    attempt between requests (s_client's "k" / "R" commands; s_client
    must end by itself, print "closed" and no "unexpected eof");
  - a KeyUpdate in the middle of a request body: the close is clean (no
    response was under way), the access-log line has note "client key
    update" and mtlsgw_ktls_key_update_closes_total counts it;
  - drain: an idle keep-alive connection when the gateway gets SIGTERM is
    closed with a close_notify.

Prints "VMTEST: PASS name" / "VMTEST: FAIL name: why" lines.
"""
import array
import fcntl
import os
import re
import select
import shutil
import signal
import ssl
import subprocess
import sys
import termios
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

import gateway_ktls as g  # noqa: E402
from helpers import Certs, connect_tls, receive_until_closed  # noqa: E402

WORK = Path(os.environ.get("VM_WORK", "/tmp/vmtest")) / "closenotify"
IO_TIMEOUT = 30
CLOSE_REQ = (b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n"
             b"Connection: close\r\n\r\n")
BAD_REQ = (b"POST /index.html HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab")
KEEP_REQ = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
HTTP10_REQ = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n"
BODY = b"hello\n"
# A body announced but never finished: the request is in progress when the
# KeyUpdate arrives (the first byte must not be an s_client command).
UPLOAD_HEAD = (b"POST /index.html HTTP/1.1\r\nHost: localhost\r\n"
               b"Content-Length: 100000\r\n\r\n" + b"u" * 1000)
KU_METRIC = "mtlsgw_ktls_key_update_closes_total"


def connect(certs, port, version):
    # A TCP EOF without close_notify must read as "eof", not as a close.
    return connect_tls(port, Certs(Path(certs)), version, timeout=IO_TIMEOUT,
                       strict_eof=True)


def read_to_end(s):
    """(bytes, how it ended): "close_notify", or what happened instead."""
    got = receive_until_closed(s, IO_TIMEOUT)
    return got.data, got.end


def read_response(s):
    """A keep-alive answer: bytes up to the end of BODY."""
    data = b""
    s.settimeout(IO_TIMEOUT)
    while not data.endswith(BODY):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


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
                first = read_response(s)
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
    return s_client_verdict(tag, out, why)


def idle_timeout(gw, certs, version):
    """An idle keep-alive connection closed by libmicrohttpd's own
    timeout (request_timeout = 2s): close_notify first."""
    tag = "closenotify-tls%s-idle-timeout-clean" % version
    with g.Delta() as d:
        try:
            s = connect(certs, gw.port, version)
            s.sendall(KEEP_REQ)
            first = read_response(s)
            data, end = read_to_end(s)
            s.close()
        except (ssl.SSLError, OSError) as e:
            return g.result(tag, False, "%s: %s" % (type(e).__name__, e))
    why = check_ktls(gw, d, 1)
    if not first.startswith(b"HTTP/1.1 200"):
        why.append("keep-alive response %r" % first[:120])
    if data:
        why.append("bytes after the response: %r" % data[:120])
    if end != "close_notify":
        why.append(end)
    return g.result(tag, not why, "; ".join(why))


def pipe_pending(f):
    n = array.array("i", [0])
    fcntl.ioctl(f.fileno(), termios.FIONREAD, n)
    return n[0]


class SClient:
    """openssl s_client with its stdin kept open (its EOF would end the
    session). Its commands ("k" KeyUpdate, "R" renegotiate) act only when
    a read from stdin starts with them, and it reads stdin again only once
    the previous read went out: type() waits until the pipe is empty."""

    def __init__(self, certs, port, version):
        args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-servername", "localhost", "-CAfile", f"{certs}/ca.crt",
                "-tls1_3" if version == "1.3" else "-tls1_2"]
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.out = b""
        self.deadline = time.monotonic() + 2 * IO_TIMEOUT

    def read(self, wait):
        """More output (b"" once s_client is gone), or None."""
        r, _, _ = select.select([self.p.stdout], [], [], wait)
        if not r:
            return None
        chunk = os.read(self.p.stdout.fileno(), 65536)
        self.out += chunk
        return chunk

    def type(self, data):
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
        except OSError:
            return False
        while pipe_pending(self.p.stdin):
            if time.monotonic() > self.deadline or self.read(0.05) == b"":
                return False
        return True

    def wait_for(self, marker):
        while marker not in self.out:
            if time.monotonic() > self.deadline or self.read(0.5) == b"":
                return False
        return True

    def wait_exit(self):
        """Until s_client ends by itself (the server closed)."""
        while self.read(0.5) != b"":
            if time.monotonic() > self.deadline:
                return False
        return self.p.wait(30) is not None

    def close(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.p.stdout.close()
        return self.out.decode(errors="replace")


def s_client_clean_end(out, why):
    if "unexpected eof" in out.lower():
        why.append("s_client: unexpected eof")
    if not re.search(r"^closed\r?$", out, re.M):
        why.append('s_client did not print "closed" (no close_notify)')


def key_update_counted(gw, certs, before, why):
    """The KeyUpdate close metric went up by exactly one from BEFORE."""
    after = g.metric(gw.port, certs, KU_METRIC)
    gw.new_access()  # the metrics request's own line
    if before is None or after != before + 1:
        why.append("%s %s -> %s" % (KU_METRIC, before, after))


def s_client_verdict(tag, out, why):
    """Result TAG: passed if WHY is empty, else failed, with the end of
    s_client's output as a note."""
    if why:
        g.note("s_client output: " + out[-1000:].replace("\n", "\n    "))
    return g.result(tag, not why, "; ".join(why))


def idle_client_close(gw, certs, version, cmd, tag, key_update):
    """CMD typed into s_client after one keep-alive request was answered:
    the connection ends, with a close_notify."""
    before = g.metric(gw.port, certs, KU_METRIC) if key_update else None
    gw.new_access()
    with g.Delta() as d:
        c = SClient(certs, gw.port, version)
        try:
            answered = c.type(KEEP_REQ) and c.wait_for(BODY)
            ended = answered and c.type(cmd) and c.wait_exit()
        finally:
            out = c.close()
    why = check_ktls(gw, d, 1)
    if not answered:
        why.append("no answer to the keep-alive request")
    elif not ended:
        why.append("s_client did not end after %r" % cmd)
    if out.count("HTTP/1.1 200") != 1:
        why.append("%d answers, want 1" % out.count("HTTP/1.1 200"))
    s_client_clean_end(out, why)
    if key_update:
        key_update_counted(gw, certs, before, why)
    return s_client_verdict(tag, out, why)


def keyupdate_mid_body(gw, certs):
    """A TLS 1.3 KeyUpdate while a request body is being read: the request
    ends with note "client key update", counted once, and the close is
    clean (no response was under way)."""
    tag = "closenotify-tls1.3-keyupdate-mid-body"
    before = g.metric(gw.port, certs, KU_METRIC)
    gw.new_access()
    with g.Delta() as d:
        c = SClient(certs, gw.port, "1.3")
        try:
            ended = c.type(UPLOAD_HEAD) and c.type(b"k\n") and c.wait_exit()
        finally:
            out = c.close()
    why = []
    if d.tx != 1 or d.rx != 1:
        why.append("kernel contexts TX %d RX %d, want 1 each" % (d.tx, d.rx))
    time.sleep(0.3)
    entries = gw.new_access()
    if len(entries) != 1 or entries[0].get("note") != "client key update" or \
            entries[0].get("data_path") != "ktls" or entries[0].get("method") != "POST":
        why.append("access log %s" % entries)
    if not ended:
        why.append("s_client did not end after the KeyUpdate")
    if "HTTP/1." in out:
        why.append("an answer to the cut request")
    s_client_clean_end(out, why)
    key_update_counted(gw, certs, before, why)
    return s_client_verdict(tag, out, why)


def drain(gw, certs):
    """SIGTERM with an idle keep-alive per version: each gets close_notify."""
    socks = {}
    with g.Delta() as d:
        for version in ("1.2", "1.3"):
            try:
                s = connect(certs, gw.port, version)
                s.sendall(KEEP_REQ)
                socks[version] = (s, read_response(s))
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
        if not gw.started("closenotify-gw-starts"):
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
        idle_client_close(gw, certs, "1.3", b"k\n",
                          "closenotify-tls1.3-keyupdate-between-requests-clean", True)
        idle_client_close(gw, certs, "1.2", b"R\n",
                          "closenotify-tls1.2-renegotiation-between-requests-clean", False)
        keyupdate_mid_body(gw, certs)
        drain(gw, certs)
    finally:
        gw.stop()
    # libmicrohttpd's own idle timeout, on a gateway that times out soon.
    port = g.free_port()
    text = g.config(certs, root, port, g.free_port(), "on", WORK / "idle" / "access.log")
    gw = g.Gateway("idle", port, text.replace("[server]\n", "[server]\nrequest_timeout = 2s\n", 1))
    try:
        if not gw.started("closenotify-idle-gw-starts"):
            return 0
        gw.new_access()
        for version in ("1.2", "1.3"):
            idle_timeout(gw, certs, version)
    finally:
        gw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
