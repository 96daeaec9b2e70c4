# SPDX-License-Identifier: MIT
"""Out of file descriptors (accept4 fails with EMFILE): the worker pauses
that listener instead of spinning on it, logs one warning at most per
second with the number of failures, and accepts again as soon as a
connection closes. The gateway's descriptor limit is lowered at run time
(prlimit) to what it uses plus a few, then plain TCP connections that
never start TLS hold the rest."""

import os
import resource
import socket
import time

import pytest

from helpers import HOST, request, wait_until

SPARE = 6     # descriptors left to the gateway beyond what it uses
HELD = 16     # connections opened: more than SPARE, the rest wait in the backlog
HOLD_S = 3.0  # how long the descriptors stay exhausted


def _open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_emfile_pauses_accept(gateway_factory, certs):
    gw = gateway_factory(server={"workers": 1}, tls={"handshake_timeout": "30s"})
    pid = gw.proc.pid
    assert request(gw.port, certs, "/health").status == 200
    used = _open_fds(pid)
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    # the soft limit only: raising it back needs no privilege
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + SPARE, hard))
    held = []
    try:
        for _ in range(HELD):
            held.append(socket.create_connection((HOST, gw.port), timeout=5))
        assert wait_until(lambda: "Too many open files" in gw.stderr(), 10), gw.stderr()[-2000:]
        time.sleep(HOLD_S)  # exhausted for a while: a spinning worker logs per turn
        warnings = [l for l in gw.stderr().splitlines() if "Too many open files" in l]
        # at most one a second (plus the first); a spin would log thousands
        assert 1 <= len(warnings) <= HOLD_S + 3, warnings[:5]
        assert "not accepting for up to" in warnings[0] and "failure(s)" in warnings[0]
    finally:
        for s in held:
            s.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    # the held connections closing resume accepting: a client is served
    assert wait_until(lambda: _served(gw, certs), 10), gw.stderr()[-2000:]


def _served(gw, certs):
    try:
        return request(gw.port, certs, "/health").status == 200
    except OSError:
        return False
