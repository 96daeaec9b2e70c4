# SPDX-License-Identifier: MIT
"""Client for tests/vm/ktls_server.c (run in the kTLS VM).

Connects with a client certificate, uploads random bytes (the server's RX
path), downloads the server's file (its TX path, sendfile under kTLS), and
checks both byte-exact by SHA-256. With --resume it reconnects with the
session ticket of the first connection and checks the session was resumed.
Prints one line per check, "ok ..." or "FAIL ...", and exits 1 on any FAIL.
"""
import argparse
import hashlib
import os
import socket
import ssl
import sys


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_line(s):
    buf = bytearray()
    while True:
        ch = s.recv(1)
        if not ch:
            raise EOFError("connection closed in a line")
        if ch == b"\n":
            return buf.decode()
        buf += ch


def session(ctx, args, sess, tag):
    """One connection: UP, DOWN, BYE. Returns (ok, session)."""
    ok = True
    raw = socket.create_connection(("127.0.0.1", args.port), timeout=120)
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=sess)
    print("%s: %s %s resumed=%s" % (tag, s.version(), s.cipher()[0], s.session_reused))
    if sess is not None and not s.session_reused:
        print("FAIL %s: session not resumed" % tag)
        ok = False
    data = os.urandom(args.up)
    s.sendall(b"UP %d\n" % len(data) + data)
    line = recv_line(s)
    want = "UP-SHA " + hashlib.sha256(data).hexdigest()
    if line != want:
        print("FAIL %s: upload: server says %r, want %r" % (tag, line, want))
        ok = False
    else:
        print("ok %s: upload %d bytes byte-exact" % (tag, len(data)))
    s.sendall(b"DOWN\n")
    line = recv_line(s)
    size = int(line.split()[1])
    got = hashlib.sha256(recv_exact(s, size)).hexdigest()
    if got != args.down_sha:
        print("FAIL %s: download sha256 %s, want %s" % (tag, got, args.down_sha))
        ok = False
    else:
        print("ok %s: download %d bytes byte-exact" % (tag, size))
    s.sendall(b"BYE\n")
    sess_out = s.session
    try:
        s.close()
    except OSError:
        pass
    return ok, sess_out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--version", choices=["1.2", "1.3"], required=True)
    ap.add_argument("--cipher", help="TLS 1.2 cipher (OpenSSL name)")
    ap.add_argument("--up", type=int, default=1 << 20)
    ap.add_argument("--down-sha", required=True)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    v = ssl.TLSVersion.TLSv1_3 if args.version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    if args.cipher:
        ctx.set_ciphers(args.cipher)

    ok, sess = session(ctx, args, None, "conn1")
    if args.resume:
        if sess is None:
            print("FAIL conn2: no session from conn1")
            ok = False
        else:
            ok2, _ = session(ctx, args, sess, "conn2")
            ok = ok and ok2
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
