# SPDX-License-Identifier: MIT
"""With error_log = FILE, a SIGHUP with a broken config writes every
problem to that file as "reload: FILE:LINE: message", then the refusal
(the old configuration keeps serving); nothing of it goes to stderr.
A reload that changes settings only a restart applies (log targets and
level, max_connections, max_header_size, request_timeout, pid_file) names
each of them in a warning, and the rest of the new file applies."""

import signal

from helpers import request, wait_until


def _hup(gw, log, expect):
    before = len(log.read_text()) if log.exists() else 0
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: expect in log.read_text()[before:], 5), log.read_text()[before:]
    return log.read_text()[before:]


def test_broken_config_errors_in_error_log(gateway_factory, certs, tmp_path):
    err = tmp_path / "error.log"
    gw = gateway_factory(server={"error_log": str(err), "log_level": "info"})
    good = gw.conf.read_text()
    lines = good.splitlines()
    lines.append("[server]")
    lines.append("bogus_key = 1")
    bogus = len(lines)
    lines.append("[tls]")
    lines.append("verify_depth = 0")
    depth0 = len(lines)
    gw.conf.write_text("\n".join(lines) + "\n")
    stderr_before = len(gw.stderr())
    log = _hup(gw, err, "reload of")
    # every problem, with FILE:LINE, in the error log, before the verdict
    assert f"{gw.conf}:{bogus}: " in log and "bogus_key" in log, log
    assert f"{gw.conf}:{depth0}: " in log and "verify_depth" in log, log
    assert "still serving configuration 1" in log, log
    assert log.index("bogus_key") < log.index("reload of"), log
    for line in log.splitlines():
        if "bogus_key" in line or "verify_depth" in line:
            assert "error" in line.lower() and "reload: " in line, line
    assert "errors above" not in log
    assert "bogus_key" not in gw.stderr()[stderr_before:], gw.stderr()
    assert request(gw.port, certs, "/main.html").status == 200
    # the good file reloads as configuration 2
    gw.conf.write_text(good)
    _hup(gw, err, "configuration 2")


def test_fixed_settings_named(gateway_factory, certs, tmp_path):
    err = tmp_path / "error.log"
    gw = gateway_factory(server={"error_log": str(err), "log_level": "info",
                                 "max_connections": 100, "max_header_size": 8192,
                                 "request_timeout": "30s"})
    text = gw.conf.read_text()
    access_before = str(gw.access_log)
    changed = (text.replace("max_connections = 100", "max_connections = 50")
               .replace("max_header_size = 8192", "max_header_size = 16384")
               .replace("request_timeout = 30s", "request_timeout = 20s")
               .replace("log_level = info", "log_level = debug")
               .replace(f"access_log = {access_before}", f"access_log = {tmp_path / 'new.log'}")
               .replace("[location /health]\n", "[location /health]\nreturn = 200 ok\n"
                        "[location /extra]\n", 1))
    assert changed.count("[location /extra]") == 1
    gw.conf.write_text(changed)
    log = _hup(gw, err, "reloaded")
    warns = [l for l in log.splitlines() if "warn" in l.lower() and "restart" in l]
    for key in ("max_connections", "max_header_size", "request_timeout", "log_level",
                "access_log"):
        assert any(key in l for l in warns), f"no restart warning naming {key}:\n{log}"
    assert not any("error_log" in l for l in warns), log  # unchanged: not named
    assert any("max_connections changed (100 -> 50)" in l for l in warns), log
    # the rest of the file applied: /extra (return 200) is new
    assert request(gw.port, certs, "/extra").status == 200
    # a reload with nothing changed warns about nothing
    log = _hup(gw, err, "configuration 3")
    assert "needs a restart" not in log and "until a restart" not in log, log
