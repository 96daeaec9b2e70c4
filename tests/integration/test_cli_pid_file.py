# SPDX-License-Identifier: MIT
"""`pid_file` names the running daemon (its pid, one line) and is removed
when the daemon stops cleanly."""

import signal

from helpers import wait_until


def test_pid_file(gateway_factory, tmp_path):
    pid_file = tmp_path / "mtlsgw.pid"
    gw = gateway_factory(server={"pid_file": str(pid_file)})
    assert pid_file.read_text() == f"{gw.proc.pid}\n"
    assert gw.stop(signal.SIGTERM) == 0
    assert wait_until(lambda: not pid_file.exists(), 5)
