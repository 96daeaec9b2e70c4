# SPDX-License-Identifier: MIT
"""Strict HTTP framing on the kTLS path, in the VM (run by
test_http_framing_ktls.sh). On kTLS libmicrohttpd reads the client's TCP
socket itself, so this is the other data path than the relay that
tests/integration/test_http_framing.py covers: the same cases (imported
from there), over TLS 1.2 (kernel TX and RX) and TLS 1.3 (kernel TX, RX key
installed by the gateway). Each bad request is answered with its status
and "Connection: close", the connection closes, the request pipelined
behind it is never answered, and the access log has one line with the
rule's note and data_path "ktls".

Prints "VMTEST: PASS name" / "VMTEST: FAIL name: why" lines.
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

import gateway_ktls as g  # noqa: E402
from helpers import Certs, parse_response  # noqa: E402
from test_http_framing import CASES, exchange  # noqa: E402

WORK = Path(os.environ.get("VM_WORK", "/tmp/vmtest")) / "framing"
IO_TIMEOUT = 30


def check(gw, certs, version, name, raw, status, note):
    tag = "framing-tls%s-%s" % (version, name)
    try:
        got = exchange(gw.port, Certs(Path(certs)), raw, version, IO_TIMEOUT)
        data = got.data
        resp, rest = parse_response(data)
    except Exception as e:  # noqa: BLE001 -- any failure is this case's
        return g.result(tag, False, "%s: %s" % (type(e).__name__, e))
    why = []
    if resp.status != status:
        why.append("status %d, want %d" % (resp.status, status))
    if (resp.header("Connection") or "").lower() != "close":
        why.append("no Connection: close")
    if not got.closed:
        why.append("connection not closed (%s)" % got.end)
    if b"HTTP/1." in rest:
        why.append("pipelined request answered")
    time.sleep(0.2)
    line = raw.split(b"\r\n")[0]
    path = line[line.index(b" ") + 1: line.rindex(b" ")].decode("latin-1")
    entries = [e for e in gw.new_access() if e.get("path") == path]
    if note is None:
        if entries:
            why.append("unexpected access-log line %s" % entries)
    elif len(entries) != 1 or entries[0].get("note") != note or \
            entries[0].get("data_path") != "ktls" or entries[0].get("status") != status:
        why.append("access log %s" % entries)
    return g.result(tag, not why, "; ".join(why) + " %r" % data[:200])


def main():
    if not g.BIN.exists():
        g.result("framing-binary", False, "%s missing" % g.BIN)
        return 0
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    g.WORK = WORK
    certs = Path(os.environ.get("VMTEST_CERTS", WORK / "certs"))
    if not (certs / "client1.crt").exists():
        p = subprocess.run([str(g.REPO / "scripts" / "gen-certs.sh"), str(certs)],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            g.result("framing-certs", False, p.stdout[-300:] + p.stderr[-300:])
            return 0
    root = WORK / "root"
    root.mkdir(parents=True)
    (root / "index.html").write_text("hello\n")
    port = g.free_port()
    gw = g.Gateway("on", port, g.config(certs, root, port, g.free_port(), "on",
                                        WORK / "on" / "access.log"))
    try:
        if not gw.started("framing-gw-starts"):
            return 0
        gw.new_access()
        for version in ("1.2", "1.3"):
            for name, raw, status, note in CASES:
                check(gw, certs, version, name, raw, status, note)
        g.result("framing-gw-alive-and-exits-0", gw.stop() == 0,
                 "exit code not 0:\n" + gw.stderr()[-500:])
    finally:
        gw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
