# SPDX-License-Identifier: MIT
"""Clients for the integration tests: raw HTTP over Python's ssl module,
curl and openssl s_client, each with a timeout so that a hung daemon fails
a test instead of hanging the suite."""

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SNI = "localhost"
IO_TIMEOUT = 10.0

# Client certificates that must fail the handshake, with the alert the
# gateway must send (OpenSSL's mapping of the verify error) and words its
# error log must use to name the reason.
BAD_CERTS = {
    "unknown-ca": (("unknown ca",), ("unable to get local issuer", "unknown ca", "issuer")),
    "expired": (("certificate expired",), ("expired",)),
    "revoked": (("certificate revoked",), ("revoked",)),
    "server-eku": (("unsupported certificate",), ("purpose", "unsupported certificate")),
    # X509_V_ERR_CERT_CHAIN_TOO_LONG maps to unknown_ca in OpenSSL 3.0;
    # bad_certificate would be as fair.
    "deep": (("unknown ca", "bad certificate"), ("too long", "depth")),
}

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass
class Certs:
    dir: Path

    def crt(self, name):
        return self.dir / f"{name}.crt"

    def key(self, name):
        return self.dir / f"{name}.key"

    @property
    def ca(self):
        return self.dir / "ca.crt"

    def der(self, name):
        """DER of the first certificate in NAME.crt (the leaf)."""
        pem = self.crt(name).read_text()
        first = pem[: pem.index("-----END CERTIFICATE-----") + 25]
        return ssl.PEM_cert_to_DER_cert(first)

    def fingerprint(self, name):
        return hashlib.sha256(self.der(name)).hexdigest()


def client_context(certs, version=None, cert=None):
    """A client context that trusts the demo root, optionally pinned to one
    TLS version ("1.2"/"1.3") and presenting client certificate CERT."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(certs.ca))
    if version:
        ctx.minimum_version = ctx.maximum_version = TLS_VERSIONS[version]
    if cert:
        ctx.load_cert_chain(str(certs.crt(cert)), str(certs.key(cert)))
    return ctx


def connect_tls(port, certs, version=None, cert=None, timeout=IO_TIMEOUT, host=HOST,
                strict_eof=False):
    """TCP connect + full TLS handshake; returns the SSLSocket. STRICT_EOF:
    a TCP EOF without close_notify raises SSLEOFError instead of reading
    as b"" (Python ignores it by default), so receive_until_closed can
    tell a clean TLS close from a bare EOF."""
    ctx = client_context(certs, version, cert)
    if strict_eof:
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.socket(fam, socket.SOCK_STREAM)
    raw.settimeout(timeout)
    try:
        raw.connect((host, port))
        return ctx.wrap_socket(raw, server_hostname=SNI,
                               suppress_ragged_eofs=not strict_eof)
    except BaseException:
        raw.close()
        raise


@dataclass
class Response:
    status: int
    reason: str
    headers: list = field(default_factory=list)  # [(name, value)] as sent
    body: bytes = b""
    tls_version: str = ""
    local_port: int = 0

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def text(self):
        return self.body.decode("utf-8", "replace")


class IncompleteResponse(Exception):
    pass


def _dechunk(data):
    """(body, complete) for a chunked body."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        size = int(data[pos:eol].split(b";")[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            return bytes(out), data.find(b"\r\n", pos) >= 0
        if len(data) < pos + size + 2:
            return bytes(out), False
        out += data[pos : pos + size]
        pos += size + 2


def parse_response(raw, method="GET", eof=False):
    """Parse one HTTP/1.x response from RAW. Raises IncompleteResponse if
    more bytes are needed (unless EOF, when what is there is the body)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        raise IncompleteResponse(raw[:200])
    head = raw[:end].decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", head[0])
    if not m:
        raise ValueError(f"not an HTTP response: {head[0]!r}")
    headers = []
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    resp = Response(int(m.group(1)), m.group(2), headers)
    rest = raw[end + 4 :]
    if method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
        resp.body = b""
        return resp, rest
    te = (resp.header("Transfer-Encoding") or "").lower()
    cl = resp.header("Content-Length")
    if "chunked" in te:
        body, complete = _dechunk(rest)
        if not complete and not eof:
            raise IncompleteResponse(len(rest))
        resp.body = body
        return resp, b""
    if cl is not None:
        n = int(cl)
        if len(rest) < n and not eof:
            raise IncompleteResponse(len(rest))
        resp.body = rest[:n]
        return resp, rest[n:]
    if not eof:
        raise IncompleteResponse(len(rest))
    resp.body = rest
    return resp, b""


def read_response(sock, method="GET", timeout=IO_TIMEOUT):
    """Read one response from SOCK (stops as soon as it is complete)."""
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp, _ = parse_response(buf, method)
            return resp
        except IncompleteResponse:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete response within {timeout}s: {buf[:300]!r}")
        try:
            chunk = sock.recv(1 << 20)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionResetError):
            chunk = b""
        if not chunk:
            if not buf:
                raise ConnectionError("connection closed without a response")
            resp, _ = parse_response(buf, method, eof=True)
            return resp
        buf += chunk


def build_request(method, target, headers=None, body=b"", close=True):
    lines = [f"{method} {target} HTTP/1.1", f"Host: {SNI}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request(port, certs, path, method="GET", headers=None, body=b"", version=None,
            cert=None, timeout=IO_TIMEOUT, raw_target=None):
    """One request on a fresh TLS connection. RAW_TARGET (bytes) replaces
    the whole request line target, sent as is."""
    s = connect_tls(port, certs, version, cert, timeout)
    try:
        if raw_target is not None:
            req = (method.encode() + b" " + raw_target + b" HTTP/1.1\r\nHost: localhost\r\n"
                   b"Connection: close\r\n\r\n")
        else:
            req = build_request(method, path, headers, body)
        try:
            s.sendall(req)
        except OSError:
            pass  # the server may answer (431, 413) and close before reading it all
        resp = read_response(s, method, timeout)
        resp.tls_version = s.version()
        resp.local_port = s.getsockname()[1]
        return resp
    finally:
        s.close()


@dataclass
class Received:
    """Bytes a peer sent until it stopped sending, and how the stream
    ended (END):
      "close_notify"  a clean TLS close (only on a strict_eof socket);
      "closed"        EOF on a socket that cannot tell whether a
                      close_notify came first (not strict_eof);
      "eof"           TCP EOF without close_notify (strict_eof socket);
      "reset"         the connection was reset;
      "ssl error: ..."  any other TLS error (an alert, a bad record);
      "timeout"       still open after the timeout;
      "limit"         LIMIT bytes read, still open."""
    data: bytes
    end: str

    @property
    def closed(self):
        """The peer ended the connection (cleanly or not, no TLS error)."""
        return self.end in ("close_notify", "closed", "eof", "reset")


def receive_until_closed(sock, timeout=IO_TIMEOUT, limit=1 << 24):
    """Read SOCK until it closes (or TIMEOUT, or LIMIT bytes): a Received."""
    strict = (not sock.suppress_ragged_eofs
              and not sock.context.options & ssl.OP_IGNORE_UNEXPECTED_EOF)
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < limit:
        if time.monotonic() >= deadline:
            return Received(data, "timeout")
        try:
            chunk = sock.recv(65536)
        except ssl.SSLZeroReturnError:
            return Received(data, "close_notify" if strict else "closed")
        except ssl.SSLEOFError:
            return Received(data, "eof")
        except ssl.SSLError as e:
            # Python 3.11 raises a plain SSLError for OpenSSL 3's error.
            if e.reason == "UNEXPECTED_EOF_WHILE_READING":
                return Received(data, "eof")
            return Received(data, f"ssl error: {e}")
        except ConnectionResetError:
            return Received(data, "reset")
        except socket.timeout:
            return Received(data, "timeout")
        if not chunk:
            return Received(data, "close_notify" if strict else "closed")
        data += chunk
    return Received(data, "limit")


def read_all(sock, timeout=IO_TIMEOUT, limit=1 << 24):
    """Everything SOCK sends until it closes (or TIMEOUT, or LIMIT bytes)."""
    return receive_until_closed(sock, timeout, limit).data


class KeepAlive:
    """One keep-alive TLS connection for repeated GETs."""

    def __init__(self, gw, cert="client1"):
        self.sock = connect_tls(gw.port, gw.certs, cert=cert)

    def get(self, path="/health"):
        self.sock.sendall(build_request("GET", path, close=False))
        return read_response(self.sock, "GET")

    def close(self):
        self.sock.close()


def keepalive_closed(sock):
    """True once the server closed SOCK (EOF or reset)."""
    try:
        sock.settimeout(0.05)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def handshake_outcome(port, certs, version, cert, wait=3.0):
    """What a client presenting CERT sees. Returns ("alert", text) when the
    handshake (TLS 1.2) or the first read after it (TLS 1.3, where the
    server checks the client's certificate after the client finished) fails
    with an SSL error; ("closed", text) on a close without alert;
    ("open", "") when the server kept the connection (it accepted CERT)."""
    try:
        s = connect_tls(port, certs, version, cert, timeout=IO_TIMEOUT)
    except ssl.SSLError as e:
        return "alert", str(e)
    except (ConnectionError, OSError) as e:
        return "closed", f"{type(e).__name__}: {e}"
    # No request is sent: unread data would make the server's close a
    # reset, which can destroy the alert before the client reads it.
    try:
        s.settimeout(wait)
        data = s.recv(1)
        if data:
            return "open", f"data {data!r}"
        return "closed", "EOF"
    except ssl.SSLEOFError as e:
        return "closed", str(e)
    except ssl.SSLError as e:
        return "alert", str(e)
    except (socket.timeout, TimeoutError):
        return "open", ""
    except (ConnectionError, OSError) as e:
        return "closed", f"{type(e).__name__}: {e}"
    finally:
        s.close()


def curl(port, certs, path, *args, cert=None, out=None, timeout=60, host="localhost",
         scheme_host=None):
    """Run curl against the gateway. Returns (returncode, http_code, stderr,
    body). OUT: write the body to that file instead of returning it."""
    url = f"https://{host}:{port}{path}"
    cmd = ["curl", "-sS", "--max-time", str(timeout), "--cacert", str(certs.ca),
           "--resolve", f"localhost:{port}:{HOST}", "-w", "%{http_code}"]
    if cert:
        cmd += ["--cert", str(certs.crt(cert)), "--key", str(certs.key(cert))]
    tmp = None
    if out is None:
        tmp = Path(f"/tmp/mtlsgw-curl-{os.getpid()}-{time.monotonic_ns()}")
        out = tmp
    cmd += ["-o", str(out), *args, url]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        body = b""
        if tmp is not None and tmp.exists():
            body = tmp.read_bytes()
        return p.returncode, p.stdout.strip(), p.stderr, body
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


def s_client(port, certs, *args, stdin=b"", timeout=15):
    """openssl s_client; returns (returncode, combined output)."""
    cmd = ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", SNI,
           "-CAfile", str(certs.ca), *args]
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def wait_until(pred, timeout=5.0, interval=0.05):
    """Poll PRED until it returns something true; return that (or the last
    false value after TIMEOUT)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def read_jsonl(path):
    """Complete JSON lines of PATH (a partial last line is ignored); lines
    that are not JSON raise, since every access-log line must be JSON."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.split("\n")[:-1]:
        if line.strip():
            out.append(json.loads(line))
    return out


def free_port(host=HOST):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ktls_available():
    try:
        return "tls" in Path("/proc/sys/net/ipv4/tcp_available_ulp").read_text().split()
    except OSError:
        return False
