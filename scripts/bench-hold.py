#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Hold many idle keep-alive TLS connections open, for scripts/bench.sh.

    bench-hold.py HOST PORT CA CERT KEY PATH N1 [N2 ...]

Opens connections (TLS 1.3, client certificate; the first one does a full
handshake, the rest resume its ticket to keep the client's CPU low), sends
one GET for PATH on each and reads the whole response, then leaves the
connection idle. A connection that fails (a SYN dropped by a full accept
queue, a server timeout under load) is closed and replaced; more than
BENCH_HOLD_MAX_FAIL (default 1000) failures end the run. After reaching each count Nk it prints "held Nk" and
waits for a line on stdin before going on; at EOF it closes everything.
"""
import os
import selectors
import socket
import ssl
import sys

IN_FLIGHT = int(os.environ.get("BENCH_HOLD_INFLIGHT", "64"))
MAX_FAIL = int(os.environ.get("BENCH_HOLD_MAX_FAIL", "1000"))


def ctx_new(ca, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


class Conn:
    def __init__(self, ctx, addr, path, session):
        # Connected before wrapping: Python's wrap_socket of a socket
        # still connecting raises EAGAIN.
        raw = socket.create_connection(addr, timeout=30)
        raw.setblocking(False)
        self.s = ctx.wrap_socket(raw, do_handshake_on_connect=False,
                                 session=session)
        self.req = ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" %
                    path).encode()
        self.state = "hs"
        self.buf = b""
        self.want = selectors.EVENT_WRITE

    def step(self):
        """Advance; returns True when the response has been read."""
        try:
            if self.state == "hs":
                self.s.do_handshake()
                self.state = "send"
            if self.state == "send":
                self.s.send(self.req)
                self.state = "recv"
            while True:
                d = self.s.recv(65536)
                if not d:
                    raise ConnectionError("closed by server")
                self.buf += d
                if self.done():
                    return True
        except ssl.SSLWantReadError:
            self.want = selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            self.want = selectors.EVENT_WRITE
        except BlockingIOError:
            self.want = selectors.EVENT_READ
        return False

    def done(self):
        head, sep, body = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                return len(body) >= int(v)
        return False


def main():
    host, port, ca, cert, key, path = sys.argv[1:7]
    targets = [int(n) for n in sys.argv[7:]]
    addr = (host, int(port))
    ctx = ctx_new(ca, cert, key)
    sel = selectors.DefaultSelector()
    held = []
    session = None
    pending = {}
    failed = 0
    for target in targets:
        while len(held) < target:
            while len(pending) < IN_FLIGHT and \
                    len(held) + len(pending) < target and \
                    (session is not None or not pending):
                c = Conn(ctx, addr, path, session)
                pending[c.s.fileno()] = c
                sel.register(c.s, c.want, c)
            events = sel.select(timeout=30)
            if not events:
                sys.exit("bench-hold: no progress for 30 s at %d held"
                         % len(held))
            for key_, _ in events:
                c = key_.data
                try:
                    done = c.step()
                except (OSError, ssl.SSLError, ConnectionError) as e:
                    failed += 1
                    sel.unregister(c.s)
                    del pending[c.s.fileno()]
                    c.s.close()
                    if failed > MAX_FAIL:
                        sys.exit("bench-hold: %d failures, last: %s"
                                 % (failed, e))
                    continue
                if done:
                    sel.unregister(c.s)
                    del pending[c.s.fileno()]
                    held.append(c)
                    if session is None:
                        session = c.s.session
                else:
                    sel.modify(c.s, c.want, c)
        print("bench-hold: %d held, %d failed connections replaced"
              % (len(held), failed), file=sys.stderr, flush=True)
        print("held %d" % len(held), flush=True)
        if not sys.stdin.readline():
            break
    for c in held:
        c.s.close()


if __name__ == "__main__":
    main()
