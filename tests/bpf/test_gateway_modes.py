# SPDX-License-Identifier: MIT
"""A plain run with [bpf] mode = off: everything is served, nothing is
counted or limited, nothing is pinned; and mtlsgw-stat reads a bpf-mode
gateway's counters."""

import json
import subprocess

from bpfhelp import PIN_ROOT, REPO, STAT, get, start_gateway


def test_bpf_off(instance, gateway_factory):
    gw = start_gateway(gateway_factory, instance, mode="off",
                       default={"max_conns": 1, "req_rate": 1, "req_burst": 1})
    assert "limits: off" in gw.stderr(), gw.stderr()
    assert all(get(gw, cert="client1").status == 200 for _ in range(5))
    assert get(gw, "/protected/", cert="client1").status == 200
    assert not (PIN_ROOT / instance).exists()


def test_stat_on_gateway(instance, gateway_factory, certs):
    r = subprocess.run(["make", "-s", str(STAT.relative_to(REPO))], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    gw = start_gateway(gateway_factory, instance)
    for _ in range(3):
        assert get(gw, cert="client1").status == 200
    r = subprocess.run([str(STAT), "--instance", instance, "--json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    rows = {x["fingerprint"]: x for x in json.loads(r.stdout)["identities"]}
    fp1 = certs.fingerprint("client1")
    assert rows[fp1]["conns_total"] == 3 and rows[fp1]["subject"] == "client1"
    r = subprocess.run([str(STAT), "--instance", instance],
                       capture_output=True, text=True, timeout=30)
    assert fp1[:16] in r.stdout and "client1" in r.stdout
