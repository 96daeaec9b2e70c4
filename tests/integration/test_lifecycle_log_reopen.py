# SPDX-License-Identifier: MIT
"""SIGUSR1 reopens file log targets (logrotate's "move, then signal"):
after the access and error logs are renamed away, new lines go to fresh
files at the configured paths, lines written before stay in the moved
files, and no line is lost or split across them."""

import signal

from helpers import read_jsonl, request, wait_until


def test_usr1_reopens(gateway_factory, certs, tmp_path):
    err = tmp_path / "error.log"
    gw = gateway_factory(server={"error_log": str(err), "log_level": "info"})
    for _ in range(3):
        assert request(gw.port, certs, "/main.html").status == 200
    assert wait_until(lambda: len(gw.access()) == 3)
    gw.access_log.rename(str(gw.access_log) + ".1")
    err.rename(str(err) + ".1")
    gw.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: err.exists() and "reopened" in err.read_text(), 5)
    for _ in range(2):
        assert request(gw.port, certs, "/health").status == 200
    assert wait_until(lambda: len(gw.access()) == 2)
    assert [l["path"] for l in gw.access()] == ["/health", "/health"]
    old = read_jsonl(str(gw.access_log) + ".1")
    assert [l["path"] for l in old] == ["/main.html"] * 3
    assert "listening on" in (tmp_path / "error.log.1").read_text()
