# SPDX-License-Identifier: MIT
"""`user = nobody`: the daemon binds, loads certificates and keys as root,
then runs as nobody (real and effective uid and gid, no supplementary
groups) and keeps serving; the start-up log warns that the root-only key
will not be readable for a SIGHUP reload, and such a reload is refused
with the old configuration still serving."""

import os
import pwd
import signal
import tempfile
from pathlib import Path

import pytest

from helpers import request, wait_until


@pytest.fixture
def open_site():
    d = Path(tempfile.mkdtemp(prefix="mtlsgw-open-site-"))
    d.chmod(0o755)
    (d / "open").mkdir(mode=0o755)
    (d / "open" / "index.html").write_text("<p>served as nobody</p>\n")
    (d / "open" / "index.html").chmod(0o644)
    yield d
    (d / "open" / "index.html").unlink()
    (d / "open").rmdir()
    d.rmdir()


def test_runs_as_nobody(gateway_factory, certs, open_site):
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: dropping privileges must be tested")
        pytest.skip("needs root to drop privileges")
    nobody = pwd.getpwnam("nobody")
    gw = gateway_factory(server={"user": "nobody"},
                         locations=[("/open", {"root": str(open_site)})])
    status = Path(f"/proc/{gw.proc.pid}/status").read_text()
    uids = next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1:]
    gids = next(l for l in status.splitlines() if l.startswith("Gid:")).split()[1:]
    groups = next(l for l in status.splitlines() if l.startswith("Groups:")).split()[1:]
    assert set(uids) == {str(nobody.pw_uid)}, uids
    assert set(gids) == {str(nobody.pw_gid)}, gids
    assert groups == []
    assert request(gw.port, certs, "/health").status == 200
    # root + full path: open_site/open/index.html, readable by nobody
    r = request(gw.port, certs, "/open/")
    assert r.status == 200 and b"served as nobody" in r.body
    assert "server.key is not readable by user nobody" in gw.stderr() or \
        os.access(certs.dir / "server.key", os.R_OK)

    before = len(gw.stderr())
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload of" in gw.stderr()[before:], 5)
    assert "still serving" in gw.stderr()[before:]
    # still on the old configuration, still verifying clients
    assert request(gw.port, certs, "/open/", cert="client1").status == 200
    assert request(gw.port, certs, "/health").status == 200
