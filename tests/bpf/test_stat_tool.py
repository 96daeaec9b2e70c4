# SPDX-License-Identifier: MIT
"""mtlsgw-stat reads the pinned maps: JSON with full fingerprints and
counters, a table sorted by activity with the subject, and exit 1 with a
clear message when the instance's maps do not exist."""

import json
import subprocess

import pytest

from bpfhelp import REPO, STAT

FP1 = "8d" * 32
FP2 = "9e" * 32


@pytest.fixture(scope="module")
def stat_bin(bpf_ok):
    r = subprocess.run(["make", "-s", str(STAT.relative_to(REPO))], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return STAT


def test_stat_json_and_table(instance, start_probe, stat_bin):
    p = start_probe(instance)
    busy = [p.connect(FP1, "client1") for _ in range(2)]
    with p.connect(FP2, "client2") as idle:
        assert idle.admitted
    for _ in range(3):
        assert busy[0].request() == "OK"

    r = subprocess.run([str(stat_bin), "--instance", instance, "--json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = {x["fingerprint"]: x for x in doc["identities"]}
    assert rows[FP1]["subject"] == "client1"
    assert rows[FP1]["conns_active"] == 2 and rows[FP1]["requests"] == 3
    assert rows[FP2]["conns_total"] == 1
    assert doc["identities"][0]["fingerprint"] == FP1  # most active first

    r = subprocess.run([str(stat_bin), "--instance", instance],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "FINGERPRINT" in lines[1] and "SUBJECT" in lines[1]
    assert lines[2].startswith(FP1[:16]) and "client1" in lines[2]
    assert lines[3].startswith(FP2[:16]) and "client2" in lines[3]

    for c in busy:
        c.close()


def test_stat_watch_streams(instance, start_probe, stat_bin):
    p = start_probe(instance)
    with p.connect(FP1, "client1") as c:
        assert c.admitted
        proc = subprocess.Popen([str(stat_bin), "--instance", instance,
                                 "--json", "--watch", "0.2"],
                                stdout=subprocess.PIPE, text=True)
        try:
            docs = [json.loads(proc.stdout.readline()) for _ in range(3)]
        finally:
            proc.kill()
            proc.wait()
    assert all(d["identities"][0]["fingerprint"] == FP1 for d in docs)


def test_stat_missing_instance(stat_bin):
    r = subprocess.run([str(stat_bin), "--instance", "no-such-instance-xyz"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "no-such-instance-xyz" in r.stderr and "no such map" in r.stderr
