# SPDX-License-Identifier: MIT
"""A small threaded HTTP/1.1 upstream for the reverse-proxy tests, on
loopback. It keeps connections alive, counts the TCP connections it
accepted, and does what the request's query asks:

  (nothing)            echo: JSON with the request line, the headers as
                       received (in order, names as sent) and the body
                       (length, sha256, framing, and the bytes themselves
                       up to 1 MiB as latin-1)
  stream=N             N bytes of pattern() as the body
    te=length|chunked|close   framing (default length)
    chunk=K            write size (and chunk size) in bytes
    truncate=M         send only M body bytes, then close (no final chunk)
  stall=S              read the request, wait S seconds before answering
                       (a test's read_timeout is shorter), then close
  status=CODE          answer CODE with the echo body
  linger_close=1       say keep-alive, then close the connection
  drain=0              with status: answer without reading the body
  (Upgrade: websocket) 101, then echo WebSocket frames; a text frame
                       "hello" is sent in the same write as the 101 head

Used in-process by the tests (Upstream(...).start()) and as a script by
scripts/bench-proxy.sh: upstream_server.py PORT.
"""

import base64
import hashlib
import json
import socket
import socketserver
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

PERIOD = 251  # a prime: any shifted or dropped byte shows in the sha256
_BLOCK = bytes(i % PERIOD for i in range(PERIOD * 4200))  # ~1 MiB
WRITE = 256 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pattern(offset, n):
    """N bytes of the stream the upstream sends, from OFFSET on."""
    out = bytearray()
    while n:
        start = offset % PERIOD
        take = min(n, len(_BLOCK) - start)
        out += _BLOCK[start:start + take]
        offset += take
        n -= take
    return bytes(out)


def pattern_sha256(n):
    h = hashlib.sha256()
    off = 0
    while off < n:
        take = min(WRITE, n - off)
        h.update(pattern(off, take))
        off += take
    return h.hexdigest()


class _Closed(Exception):
    pass


class _Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(1 << 18)
        if not data:
            raise _Closed()
        self.buf += data

    def line(self, limit=65536):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self.fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def some(self, n):
        if not self.buf:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


class _Body:
    """The request body, hashed as it comes; kept up to KEEP bytes."""
    KEEP = 1 << 20

    def __init__(self):
        self.sha = hashlib.sha256()
        self.len = 0
        self.data = bytearray()

    def add(self, b):
        self.sha.update(b)
        self.len += len(b)
        if len(self.data) < self.KEEP:
            self.data += b[: self.KEEP - len(self.data)]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        up = self.server.upstream
        with up.lock:
            up.connections += 1
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        r = _Reader(sock)
        try:
            while self.one(sock, r):
                pass
        except (_Closed, ConnectionError, OSError, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def read_head(self, r):
        line = r.line()
        while line == b"":  # tolerate stray CRLF between requests
            line = r.line()
        method, target, version = line.decode("latin-1").split(" ", 2)
        headers = []
        while True:
            h = r.line()
            if h == b"":
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers.append([k, v.strip()])
        return method, target, version, headers

    def read_body(self, r, headers):
        body = _Body()
        hmap = {k.lower(): v for k, v in headers}
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            while True:
                size = int(r.line().split(b";")[0].strip(), 16)
                if size == 0:
                    while r.line() != b"":  # trailers
                        pass
                    break
                left = size
                while left:
                    b = r.some(left)
                    body.add(b)
                    left -= len(b)
                if r.exact(2) != b"\r\n":
                    raise ValueError("bad chunk end")
            return body, "chunked"
        if "content-length" in hmap:
            left = int(hmap["content-length"])
            while left:
                b = r.some(min(left, 1 << 18))
                body.add(b)
                left -= len(b)
            return body, "length"
        return body, "none"

    def one(self, sock, r):
        up = self.server.upstream
        method, target, version, headers = self.read_head(r)
        q = {k: v[-1] for k, v in parse_qs(urlsplit(target).query,
                                            keep_blank_values=True).items()}
        hmap = {k.lower(): v for k, v in headers}
        status = int(q.get("status", "200"))
        framing = "none"
        body = _Body()
        if not (status != 200 and q.get("drain") == "0"):
            body, framing = self.read_body(r, headers)
        info = {"method": method, "target": target, "version": version,
                "headers": headers, "body_len": body.len,
                "body_sha256": body.sha.hexdigest(), "body_framing": framing,
                "body": bytes(body.data).decode("latin-1"),
                "connection": id(sock)}
        with up.lock:
            up.requests.append(info)
        if "websocket" in hmap.get("upgrade", "").lower():
            self.websocket(sock, r, hmap)
            return False
        if "stall" in q:
            time.sleep(float(q["stall"]))
            return False
        if "stream" in q:
            return self.stream(sock, method, q)
        out = json.dumps(info).encode()
        close = "close" in hmap.get("connection", "").lower() or status != 200
        head = (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(out)}\r\nX-Upstream: echo\r\n"
                f"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                f"Connection: {'close' if close else 'keep-alive'}\r\n"
                f"Keep-Alive: timeout=60\r\n\r\n")
        sock.sendall(head.encode() + (b"" if method == "HEAD" else out))
        # linger_close: announce keep-alive, then close anyway (as an
        # upstream whose idle timeout fires right after a response).
        return not close and q.get("linger_close") != "1"

    def stream(self, sock, method, q):
        n = int(q["stream"])
        te = q.get("te", "length")
        chunk = int(q.get("chunk", str(WRITE)))
        trunc = int(q["truncate"]) if "truncate" in q else None
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        if te == "chunked":
            head += "Transfer-Encoding: chunked\r\n"
        elif te == "length":
            head += f"Content-Length: {n}\r\n"
        else:
            head += "Connection: close\r\n"
        sock.sendall((head + "\r\n").encode())
        if method == "HEAD":
            return te != "close"
        limit = n if trunc is None else min(n, trunc)
        off = 0
        while off < limit:
            take = min(chunk, limit - off)
            data = pattern(off, take)
            if te == "chunked":
                data = f"{take:x}\r\n".encode() + data + b"\r\n"
            sock.sendall(data)
            off += take
        if trunc is not None or te == "close":
            sock.shutdown(socket.SHUT_WR)
            return False
        if te == "chunked":
            sock.sendall(b"0\r\nX-Trailer: t\r\n\r\n")
        return True

    def websocket(self, sock, r, hmap):
        key = hmap.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        head = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
        sock.sendall(head.encode() + ws_frame(b"hello", 1, mask=False))
        while True:
            op, payload = ws_read(r)
            if op == 8:
                sock.sendall(ws_frame(payload, 8, mask=False))
                return
            sock.sendall(ws_frame(payload, op, mask=False))


def ws_frame(payload, opcode=1, mask=True):
    """One final WebSocket frame (clients must mask)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = b"\x11\x22\x33\x44"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read(r):
    """(opcode, payload) of one frame from a _Reader or anything with
    exact(n)."""
    b0, b1 = r.exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(r.exact(2), "big")
    elif n == 127:
        n = int.from_bytes(r.exact(8), "big")
    key = r.exact(4) if b1 & 0x80 else None
    data = r.exact(n)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256


class Upstream:
    def __init__(self, host="127.0.0.1", port=0):
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []
        self.server = _Server((host, port), _Handler)
        self.server.upstream = self
        self.port = self.server.server_address[1]
        self.addr = f"{host}:{self.port}"
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def last(self):
        with self.lock:
            return self.requests[-1] if self.requests else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def gateway_opts(servers, location="/svc/", proxy_pass="http://backend/", loc=None,
                 up=None, server=None, name="backend"):
    """Options for conftest's gateway_factory: one proxied location and an
    [upstream NAME] section with SERVERS ("host:port" or a list)."""
    keys = {"server": servers if isinstance(servers, list) else [servers],
            "connect_timeout": "2s", "read_timeout": "10s", "keepalive": 8}
    keys.update(up or {})
    extra = [f"[upstream {name}]"]
    for k, v in keys.items():
        for item in (v if isinstance(v, list) else [v]):
            extra.append(f"{k} = {item}")
    opts = {"locations": [(location, {"proxy_pass": proxy_pass, **(loc or {})})],
            "extra": "\n" + "\n".join(extra) + "\n"}
    if server:
        opts["server"] = server
    return opts


def closed_port():
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


try:
    import pytest

    @pytest.fixture
    def upstream():
        """A fresh upstream for one test (import it into the test file)."""
        u = Upstream().start()
        yield u
        u.stop()
except ImportError:  # run as a script by the benchmark
    pass


if __name__ == "__main__":
    u = Upstream(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(u.port, flush=True)
    u.server.serve_forever()
