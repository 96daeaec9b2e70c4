# SPDX-License-Identifier: MIT
"""Strict HTTP/1.1 framing (RFC 9110, RFC 9112): each malformed request
below is answered 400 (501 for a transfer coding other than "chunked")
with "Connection: close", the connection is closed, a second request
pipelined behind the bad one is never answered, and the access log names
the rule in its "note". Over TLS with a raw ssl socket, so every byte is
sent exactly as written (libmicrohttpd 0.9.75 itself accepts all of them)."""

import time

import pytest

from helpers import IO_TIMEOUT, connect_tls, parse_response, receive_until_closed, wait_until

# Behind every bad request: a valid one that must never be answered.
PIPELINED = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def exchange(port, certs, raw, version=None, timeout=IO_TIMEOUT):
    """Send RAW (bad request + PIPELINED) at once; return what the gateway
    sent and how the connection ended (helpers.Received). Also used by
    tests/vm/http_framing_ktls.py over kTLS."""
    s = connect_tls(port, certs, version, timeout=timeout)
    try:
        s.sendall(raw + PIPELINED)
        return receive_until_closed(s, timeout)
    finally:
        s.close()


def note_for(gw, path):
    def find():
        return [e for e in gw.access() if e.get("path") == path]
    return wait_until(find, 5)


def h(*lines, body=b""):
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


# (id, raw request, status, note). Each path is unique to find its log line.
CASES = [
    ("cl_and_te",
     h(b"POST /f/cl-te HTTP/1.1", b"Host: localhost", b"Content-Length: 5",
       b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
     400, "content-length with transfer-encoding"),
    ("two_content_lengths",
     h(b"POST /f/cl-cl HTTP/1.1", b"Host: localhost", b"Content-Length: 5",
       b"Content-Length: 10", body=b"hello"),
     400, "duplicate content-length"),
    ("same_content_length_twice",
     h(b"POST /f/cl-same HTTP/1.1", b"Host: localhost", b"Content-Length: 5",
       b"Content-Length: 5", body=b"hello"),
     400, "duplicate content-length"),
    # libmicrohttpd refuses these itself, before the access handler (so
    # they have no access-log line): the client sees the same 400 + close.
    ("content_length_not_digits",
     h(b"POST /f/cl-bad HTTP/1.1", b"Host: localhost", b"Content-Length: +5",
       body=b"hello"),
     400, None),
    ("header_line_without_colon",
     h(b"GET /f/no-colon HTTP/1.1", b"Host: localhost", b"X-No-Colon"),
     400, None),
    ("content_length_list",
     h(b"POST /f/cl-list HTTP/1.1", b"Host: localhost", b"Content-Length: 5, 5",
       body=b"hello"),
     400, None),
    ("space_before_colon",
     h(b"POST /f/ws-colon HTTP/1.1", b"Host: localhost",
       b"Transfer-Encoding : chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
     400, "header name not a token"),
    ("obs_fold",
     h(b"GET /f/obs-fold HTTP/1.1", b"Host: localhost", b"X-Folded: a",
       b" continued"),
     400, "obs-fold"),
    ("obs_fold_tab_framing_header",
     h(b"POST /f/obs-fold-te HTTP/1.1", b"Host: localhost", b"Content-Length: 5",
       b"Transfer-Encoding:", b"\tchunked", body=b"hello"),
     400, "obs-fold"),
    ("missing_host",
     h(b"GET /f/no-host HTTP/1.1"),
     400, "missing host"),
    ("two_hosts",
     h(b"GET /f/two-hosts HTTP/1.1", b"Host: localhost", b"Host: evil.example"),
     400, "duplicate host"),
    ("bare_cr_in_value",
     h(b"GET /f/bare-cr HTTP/1.1", b"Host: localhost", b"X-Smuggle: a\rb"),
     400, "control character in header value"),
    ("nul_in_value",
     h(b"GET /f/nul HTTP/1.1", b"Host: localhost", b"X-Smuggle: a\x00b"),
     400, "control character in header value"),
    ("nul_ends_value",
     h(b"GET /f/nul-end HTTP/1.1", b"X-Smuggle: a\x00", b"Host: localhost"),
     400, "control character in header value"),
    ("nul_starts_last_value",
     h(b"GET /f/nul-start HTTP/1.1", b"Host: localhost", b"X-Smuggle:\x00evil"),
     400, "control character in header value"),
    ("space_in_target",
     h(b"GET /f/sp ace HTTP/1.1", b"Host: localhost"),
     400, "space or control character in target"),
    ("control_byte_in_target",
     h(b"GET /f/ctl\x01 HTTP/1.1", b"Host: localhost"),
     400, "space or control character in target"),
    ("control_byte_method",
     h(b"G\x01T /f/method-ctl HTTP/1.1", b"Host: localhost"),
     400, "method not a token"),
    ("non_token_method",
     h(b"GE@T /f/method-at HTTP/1.1", b"Host: localhost"),
     400, "method not a token"),
    ("unknown_coding",
     h(b"POST /f/xchunked HTTP/1.1", b"Host: localhost",
       b"Transfer-Encoding: xchunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
     501, "transfer coding not supported"),
    ("stacked_codings",
     h(b"POST /f/stacked HTTP/1.1", b"Host: localhost",
       b"Transfer-Encoding: chunked, identity", body=b"5\r\nhello\r\n0\r\n\r\n"),
     501, "transfer coding not supported"),
    ("two_te_headers",
     h(b"POST /f/two-te HTTP/1.1", b"Host: localhost", b"Transfer-Encoding: chunked",
       b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"),
     501, "transfer coding not supported"),
    ("te_in_http10",
     h(b"POST /f/te-10 HTTP/1.0", b"Host: localhost", b"Transfer-Encoding: chunked",
       body=b"5\r\nhello\r\n0\r\n\r\n"),
     400, "transfer-encoding in HTTP/1.0"),
]


@pytest.mark.parametrize("raw,status,note", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_and_closed(gateway, certs, raw, status, note):
    got = exchange(gateway.port, certs, raw)
    data = got.data
    assert data, f"no answer at all to {raw!r}"
    resp, rest = parse_response(data)
    assert resp.status == status, (resp, data[:400])
    assert (resp.header("Connection") or "").lower() == "close", resp.headers
    assert got.closed, f"connection not closed after {status} ({got.end}): {data[:400]!r}"
    assert b"HTTP/1." not in rest, f"the pipelined request was answered: {rest[:300]!r}"
    assert gateway.alive()
    line = raw.split(b"\r\n")[0]
    path = line[line.index(b" ") + 1 : line.rindex(b" ")].decode("latin-1")
    if note is None:
        time.sleep(0.5)  # no line expected: give a wrong one time to appear
        assert note_for(gateway, path) == [] or note_for(gateway, path) is None
        return
    entries = note_for(gateway, path)
    assert len(entries) == 1, f"want one access-log line for {path}: {entries}"
    assert entries[0]["status"] == status, entries
    assert entries[0].get("note") == note, entries


def test_pipelined_valid_requests_still_served(gateway, certs):
    """The control: two valid pipelined requests are both answered."""
    data = exchange(gateway.port, certs,
                    b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").data
    first, rest = parse_response(data)
    second, _ = parse_response(rest, eof=True)
    assert first.status == second.status == 200, data


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"OPTIONS"])
def test_return_location_only_get_head(gateway, certs, method):
    """A `return` location answers GET and HEAD only: 405 with Allow, as
    static files do."""
    data = exchange(gateway.port, certs,
                    method + b" /health HTTP/1.1\r\nHost: localhost\r\n"
                    b"Content-Length: 0\r\n\r\n").data
    resp, rest = parse_response(data)
    assert resp.status == 405, data[:300]
    allow = {m.strip().upper() for m in (resp.header("Allow") or "").split(",")}
    assert allow == {"GET", "HEAD"}, resp.headers
    # Not a framing error: the connection stays usable.
    second, _ = parse_response(rest, eof=True)
    assert second.status == 200 and second.body == b"ok\n", rest[:300]


def test_return_location_head(gateway, certs):
    data = exchange(gateway.port, certs,
                    b"HEAD /health HTTP/1.1\r\nHost: localhost\r\n\r\n").data
    resp, rest = parse_response(data, method="HEAD")
    assert resp.status == 200, data[:300]
    assert parse_response(rest, eof=True)[0].status == 200
