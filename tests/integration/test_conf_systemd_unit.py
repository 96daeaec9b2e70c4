# SPDX-License-Identifier: MIT
"""conf/mtlsgw.service is a valid systemd unit (systemd-analyze verify,
with the binary pointed at this build), checks the configuration before
starting and before reloading, reloads with SIGHUP and stops with SIGTERM
(the daemon's drain), with a stop timeout longer than the default
drain_timeout."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "conf" / "mtlsgw.service"


def test_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.fail("systemd-analyze missing (Debian's systemd package)")
    text = UNIT.read_text().replace("/usr/local/sbin/mtlsgw", str(REPO / "build" / "mtlsgw"))
    unit = tmp_path / "mtlsgw.service"
    unit.write_text(text)
    p = subprocess.run(["systemd-analyze", "verify", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stderr.strip(), p.stderr


def test_unit_semantics():
    text = UNIT.read_text()
    assert re.search(r"^ExecStartPre=\S+ -t -c ", text, re.M)
    assert re.search(r"^ExecReload=\S+ -t -c ", text, re.M)
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", text, re.M)
    assert re.search(r"^KillSignal=SIGTERM$", text, re.M)
    stop = int(re.search(r"^TimeoutStopSec=(\d+)s$", text, re.M).group(1))
    assert stop > 10  # CONFIG_DEFAULT_DRAIN_TIMEOUT_MS
