# SPDX-License-Identifier: MIT
"""fleet_bandwidth_out over three gateways (BPF mode, one instance each)
sharing one Redis:
- the fleet's bytes per certificate are the bytes the BPF programs count
  (cert_stats bytes_out of every gateway, summed): `mtlsgw-stat --fleet`
  shows exactly that sum, which is the downloaded bodies plus the
  response overhead README "Fleet" defines (HTTP headers, TLS records,
  TCP/IP headers);
- a client spreading downloads over the three gets at most the fleet
  limit per 1 s window plus the documented overshoot, well under the
  three times the limit the gateways would allow alone; refusals are 429
  with Retry-After, counted as reason="bandwidth_out", and the connection
  stays usable;
- once the window rolls, the certificate is served again."""

import json
import math
import os
import signal
import subprocess
import time

import pytest

from bpfhelp import STAT, cleanup_instance, limits_config, stats_of, unique_instance
from helpers import KeepAlive, wait_until
from redishelp import (METRICS_LOC, fleet_extra, hammer, metrics,  # noqa: F401
                       redis_factory, retry_after_ok, wait_synced)

SYNC_S = 0.05
FILE = "/data/fleet-256k.bin"
FILE_SIZE = 256 << 10


@pytest.fixture
def three_instances(bpf_ok):
    names = [unique_instance() for _ in range(3)]
    for n in names:
        cleanup_instance(n)
    yield names
    for n in names:
        cleanup_instance(n)


@pytest.fixture
def big_file(site):
    path = site.root / FILE.lstrip("/")
    if not path.exists():
        path.write_bytes(os.urandom(FILE_SIZE))
    return FILE


def start_three(gateway_factory, redis, instances, limits):
    return [gateway_factory(locations=[METRICS_LOC],
                            extra=limits_config(inst)
                            + fleet_extra(redis.port, f"gw{i}", sync="50ms",
                                          limits=limits))
            for i, inst in enumerate(instances)]


def fleet_row(gw, fp):
    st = subprocess.run([str(STAT), "--fleet", "-c", str(gw.conf), "--json"],
                        capture_output=True, text=True, timeout=30)
    assert st.returncode == 0, st.stderr
    rows = [r for r in json.loads(st.stdout)["fleet"] if r["fingerprint"] == fp]
    return rows[0] if rows else None


@pytest.mark.timeout(180)
def test_fleet_bytes_match_bpf(three_instances, gateway_factory, redis_factory,
                               big_file):
    redis = redis_factory()
    gws = start_three(gateway_factory, redis, three_instances,
                      {"fleet_bandwidth_out": "1G"})
    fp = gws[0].certs.fingerprint("client2")
    body = reqs = 0
    for g, n in zip(gws, (3, 1, 2)):
        c = KeepAlive(g, "client2")
        for _ in range(n):
            r = c.get(big_file)
            assert r.status == 200 and len(r.body) == FILE_SIZE, r.status
            body += len(r.body)
            reqs += 1
        c.close()
    # Closed: the last bytes are counted; two syncs push them.
    time.sleep(0.2)
    wait_synced(gws, n=3)
    bpf = sum(stats_of(i, fp)["bytes_out"] for i in three_instances)
    row = fleet_row(gws[1], fp)
    assert row is not None
    print(f"fleet bytes_out {row['bytes_out']}, cert_stats sum {bpf}, bodies "
          f"{body} in {reqs} responses: overhead "
          f"{(row['bytes_out'] - body) / body * 100:.2f}%")
    assert row["bytes_out"] == bpf, row
    assert sorted(row["hosts"]) == ["gw0", "gw1", "gw2"], row
    assert sum(h["bytes_out"] for h in row["hosts"].values()) == bpf
    # README "Fleet": bodies + at most 3% + 2 KiB per response.
    assert body <= row["bytes_out"] <= body * 1.03 + 2048 * reqs, (row, body)


def run_load(conns, path, seconds):
    """Every connection downloads PATH in a loop for SECONDS: returns
    [(status, body bytes)], the elapsed time and whether every 429 had a
    Retry-After of at least 1."""
    got, elapsed = hammer(conns, seconds, path)
    return [(s, n) for _, s, n, _ in got], elapsed, retry_after_ok(got)


def reload(gw, limit, old="1G"):
    text = gw.conf.read_text().replace(f"fleet_bandwidth_out = {old}",
                                       f"fleet_bandwidth_out = {limit}")
    assert text != gw.conf.read_text()
    gw.conf.write_text(text)
    before = len(gw.stderr())
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reloaded" in gw.stderr()[before:], 5), \
        gw.stderr()[before:]


@pytest.mark.timeout(180)
def test_fleet_bandwidth_limit(three_instances, gateway_factory, redis_factory,
                               big_file):
    redis = redis_factory()
    gws = start_three(gateway_factory, redis, three_instances,
                      {"fleet_bandwidth_out": "1G"})
    per_gw = 2
    conns = [KeepAlive(g, "client1") for g in gws for _ in range(per_gw)]
    # What this client draws from the three with no limit in the way
    # (this machine's speed varies): the limit is set from it, so that the
    # client always offers five times the fleet limit.
    got, el, _ = run_load(conns, big_file, 1.0)
    assert {s for s, _ in got} == {200}
    rate = sum(n for _, n in got) / el
    limit = max(int(rate / 5), 4 * FILE_SIZE)
    for g in gws:
        reload(g, limit)

    got, elapsed, retry_ok = run_load(conns, big_file, 3.0)
    codes = [s for s, _ in got]
    assert set(codes) <= {200, 429}, set(codes)
    assert retry_ok
    ok_bytes = sum(n for s, n in got if s == 200)
    windows = math.ceil(elapsed) + 1
    # README "Fleet": per window the limit, plus what the gateways send
    # before they see it (2 x sync_interval x the fleet's byte rate), plus
    # the responses under way (one per connection).
    bound = windows * (limit + len(conns) * FILE_SIZE + 2 * SYNC_S * rate)
    local_only = 3 * limit * windows
    print(f"fleet bandwidth: unlimited {rate / 1e6:.1f} MB/s; limit {limit}/s: "
          f"{ok_bytes} bytes in {elapsed:.2f} s ({windows} windows) = "
          f"{ok_bytes / elapsed / limit:.2f}x the limit per second, bound "
          f"{bound:.0f}, local-only {local_only}")
    assert ok_bytes <= bound, (ok_bytes, bound)
    assert ok_bytes < local_only, (ok_bytes, local_only)
    assert ok_bytes >= limit  # the limit, not a refusal of everything
    assert sum(metrics(g)['mtlsgw_fleet_refused_total{reason="bandwidth_out"}']
               for g in gws) >= 1
    # Refused, then served again when a later window starts.
    first_429 = codes.index(429)
    assert 200 in codes[first_429:], "never relaxed after the window rolled"

    # The window rolls: served again, on every gateway.
    for c in conns[::per_gw]:
        assert wait_until(lambda: c.get(big_file).status == 200, timeout=5)
    for c in conns:
        c.close()


def until_refused(conn, path, seconds):
    """Download PATH until a 429 (returned), or None after SECONDS."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r = conn.get(path)
        if r.status == 429:
            return r
        assert r.status == 200, r.status
    return None


def gateway_redis_gone(instance, gateway_factory, redis_factory):
    """A gateway with fleet_bandwidth_out = 1M and fleet_fail = static,
    synced once; then its Redis is killed, and the hold time is over."""
    redis = redis_factory()
    gw = gateway_factory(locations=[METRICS_LOC],
                         extra=limits_config(instance)
                         + fleet_extra(redis.port, "gws", sync="50ms",
                                       limits={"fleet_bandwidth_out": "1M",
                                               "fleet_fail": "static"}))
    wait_synced([gw])
    redis.kill()
    assert wait_until(lambda: "unreachable for more than" in gw.stderr(), 15), \
        gw.stderr()[-2000:]
    return gw


@pytest.mark.timeout(120)
def test_fleet_bandwidth_redis_gone(instance, gateway_factory, redis_factory,
                                    big_file):
    """Redis gone past the hold time: fleet_fail = static keeps a share of
    fleet_bandwidth_out on each gateway (bytes read from cert_stats go on
    without Redis); fleet_fail = local drops it."""
    gw = gateway_redis_gone(instance, gateway_factory, redis_factory)
    c = KeepAlive(gw, "client1")
    r = until_refused(c, big_file, 15)
    assert r is not None, "static fallback never refused"
    assert int(r.header("Retry-After", "0")) >= 1
    assert metrics(gw)['mtlsgw_fleet_refused_total{reason="bandwidth_out"}'] >= 1
    # Served again once the window rolls.
    assert wait_until(lambda: c.get(big_file).status == 200, timeout=5)
    reload(gw, "1M\nfleet_fail = local", old="1M\nfleet_fail = static")
    before = metrics(gw)['mtlsgw_fleet_refused_total{reason="bandwidth_out"}']
    assert until_refused(c, big_file, 3) is None
    assert metrics(gw)['mtlsgw_fleet_refused_total{reason="bandwidth_out"}'] == before
    c.close()


@pytest.mark.timeout(120)
def test_fleet_bandwidth_static_share_long_outage(instance, gateway_factory,
                                                  redis_factory, big_file):
    """Redis gone for long (its reconnect back-off at its 5 s maximum):
    the static share is still metered per 1 s window. A client that stays
    well under its share (two downloads per second at most, half of it) is
    never refused; if the bytes were read only at each reconnect attempt,
    five seconds of them would land in one window."""
    gw = gateway_redis_gone(instance, gateway_factory, redis_factory)
    time.sleep(7.0)  # back-off 0.1 + 0.2 + ... + 3.2 s, then 5 s steps
    c = KeepAlive(gw, "client1")
    statuses = []
    start = time.monotonic()
    for i in range(14):  # one 256 KiB download every 0.8 s, 11 s
        time.sleep(max(0.0, start + 0.8 * i - time.monotonic()))
        statuses.append(c.get(big_file).status)
    c.close()
    assert statuses == [200] * len(statuses), statuses
    assert metrics(gw)['mtlsgw_fleet_refused_total{reason="bandwidth_out"}'] == 0
