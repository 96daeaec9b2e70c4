# SPDX-License-Identifier: MIT
"""A 1 GB proxied download and a 1 GB chunked upload run with bounded
daemon memory (VmRSS from /proc/PID/status sampled during the transfer
stays under 200 MB) and arrive byte-exact: bodies are streamed both ways,
never buffered whole."""

import hashlib
import json
import os
import threading
import time

import pytest

from helpers import connect_tls, read_response
from upstream_server import gateway_opts, pattern_sha256, upstream  # noqa: F401

SIZE = 1 << 30
RSS_LIMIT_KB = 200 * 1024


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.timeout(400)
def test_1gb_download_bounded_rss(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr))
    pid = gw.proc.pid
    peak = [vm_rss_kb(pid)]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], vm_rss_kb(pid))
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    s = connect_tls(gw.port, certs, cert="client1", timeout=60)
    h = hashlib.sha256()
    got = 0
    try:
        s.sendall(f"GET /svc/big?stream={SIZE}&te=length&chunk=1048576 HTTP/1.1\r\n"
                  f"Host: localhost\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(65536)
            assert b, "closed before the response head"
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert f"Content-Length: {SIZE}".encode() in head
        h.update(rest)
        got = len(rest)
        while got < SIZE:
            b = s.recv(1 << 20)
            if not b:
                break
            h.update(b)
            got += len(b)
    finally:
        s.close()
        stop.set()
        th.join()
    print(f"1 GB proxied download: peak daemon VmRSS {peak[0]} kB")
    assert got == SIZE
    assert h.hexdigest() == pattern_sha256(SIZE)
    assert peak[0] < RSS_LIMIT_KB, f"peak VmRSS {peak[0]} kB"


@pytest.mark.timeout(400)
def test_1gb_chunked_upload_bounded_rss(gateway_factory, certs, upstream):
    gw = gateway_factory(**gateway_opts(upstream.addr, up={"read_timeout": "60s"}))
    pid = gw.proc.pid
    peak = [vm_rss_kb(pid)]
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    s = connect_tls(gw.port, certs, cert="client1", timeout=60)
    try:
        s.sendall(b"POST /svc/up HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(SIZE >> 20):
            s.sendall(b"100000\r\n" + block + b"\r\n")
            h.update(block)
            if i % 16 == 0:
                peak[0] = max(peak[0], vm_rss_kb(pid))
        s.sendall(b"0\r\n\r\n")
        r = read_response(s, timeout=60)
    finally:
        s.close()
    print(f"1 GB proxied chunked upload: peak daemon VmRSS {peak[0]} kB")
    assert r.status == 200, r.text()[:300]
    seen = json.loads(r.body)
    assert seen["body_len"] == SIZE and seen["body_framing"] == "chunked"
    assert seen["body_sha256"] == h.hexdigest()
    assert peak[0] < RSS_LIMIT_KB, f"peak VmRSS {peak[0]} kB"
