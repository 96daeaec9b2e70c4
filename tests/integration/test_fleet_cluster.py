# SPDX-License-Identifier: MIT
"""The fleet on a real Redis Cluster (`[fleet] cluster = yes`): three
redis-server primaries in cluster mode on loopback, with the slots laid
out so that client1's keys and client2's keys live on two different
nodes (checked on the nodes themselves). Gateways seeded with different
nodes then:
- hold fleet_max_conns for both identities across gateways (a gateway
  that never saw them refuses them), and fleet_req_rate within the bound
  of README "Fleet"; `mtlsgw-stat --fleet` shows both identities' totals,
  read from the two nodes;
- block and unblock through `mtlsgw-ctl` against the cluster: every
  gateway answers 403 and closes the open connection, then 200 again;
- keep syncing while client1's slot migrates to another node: during the
  migration (slot MIGRATING/IMPORTING, keys moved) they follow ASK, after
  it (SETSLOT NODE) MOVED; sync errors stop growing and the fleet limit
  still holds, now counted on the new node; the block list's slot moves
  too, mtlsgw-ctl blocks mid-migration (following ASK) and unblocks
  after it, both reach the gateways, with no outage logged;
- lose the node of client2's keys: client2 alone falls back to
  fleet_fail after the hold time, client1 keeps the fleet view; both are
  synced again when it returns;
- lose the node serving {blocks}: "Redis unreachable", warned once
  however many reconnects fail, synced again when it returns.
`mtlsgw -t` refuses cluster with sentinel_master or a unix: seed."""

import json
import math
import subprocess
import time

import pytest

from helpers import (HOST, REPO, KeepAlive, build_request, connect_tls,
                     free_port, keepalive_closed, request, wait_until)
from redishelp import (METRICS_LOC, Redis, ctl, fleet_config_check, hammer,
                       metrics, wait_synced, wait_time)

SLOTS = 16384
DEADLINE = 5.0  # pass/fail deadline on a loaded machine (target: < 1 s)


class Cluster:
    """Three primaries; node 0 serves client1's slot, node 1 client2's
    (or the other way round), node 2 the slots between."""

    def __init__(self, tmp_path_factory):
        self.nodes, self.bus = [], []
        for _ in range(3):
            d = tmp_path_factory.mktemp("rcluster")
            self.bus.append(free_port())
            self.nodes.append(Redis(d, args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(d / "nodes.conf"),
                # not port + 10000: that may be taken, or past 65535
                "--cluster-port", str(self.bus[-1]),
                "--cluster-node-timeout", "5000",
                # the others keep serving their slots while one is down
                "--cluster-require-full-coverage", "no"]))

    def start(self, slots):
        """SLOTS: the two slots that must be on different nodes."""
        for n in self.nodes:
            if n.proc is None:
                n.start()
        lo, hi = sorted(slots)
        assert lo != hi, "client1 and client2 share a slot: regenerate the certs"
        if hi - lo >= 2:
            ranges = [(0, lo), (hi, SLOTS - 1), (lo + 1, hi - 1)]
        elif lo >= 1:
            ranges = [(lo, lo), (hi, SLOTS - 1), (0, lo - 1)]
        else:
            ranges = [(0, 0), (1, 1), (2, SLOTS - 1)]
        for i, (n, (a, b)) in enumerate(zip(self.nodes, ranges)):
            assert "OK" in n.cli("CLUSTER", "SET-CONFIG-EPOCH", str(i + 1))
            assert "OK" in n.cli("CLUSTER", "ADDSLOTSRANGE", str(a), str(b))
        for n, bus in zip(self.nodes[1:], self.bus[1:]):
            assert "OK" in self.nodes[0].cli("CLUSTER", "MEET", HOST, str(n.port),
                                             str(bus))
        assert wait_until(self.ready, timeout=30), \
            [n.cli("CLUSTER", "NODES") for n in self.nodes]
        self.ids = [n.cli("CLUSTER", "MYID").strip() for n in self.nodes]
        return self

    def ready(self):
        return all("cluster_state:ok" in n.cli("CLUSTER", "INFO") and
                   n.cli("CLUSTER", "SLOTS").count(str(HOST)) >= 3
                   for n in self.nodes)

    def node_of_slot(self, slot, asked=None):
        out = (asked or self.nodes[0]).cli("CLUSTER", "NODES")
        for line in out.splitlines():
            f = line.split()
            if "master" not in f[2]:
                continue
            for r in f[8:]:
                if r.startswith("["):
                    continue
                a, _, b = r.partition("-")
                if int(a) <= slot <= int(b or a):
                    return self.ids.index(f[0])
        return None

    def migrate(self, slot, src, dst):
        """Move SLOT from node SRC to node DST, keys and all."""
        a, b = self.nodes[src], self.nodes[dst]
        assert "OK" in b.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", self.ids[src])
        assert "OK" in a.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", self.ids[dst])
        self.migrate_keys(slot, src, dst)
        self.finish(slot, src, dst)

    def migrate_keys(self, slot, src, dst):
        a, b = self.nodes[src], self.nodes[dst]
        for _ in range(10):
            keys = a.cli("CLUSTER", "GETKEYSINSLOT", str(slot), "100").split()
            if not keys:
                return
            out = a.cli("MIGRATE", HOST, str(b.port), "", "0", "5000", "KEYS", *keys)
            assert "OK" in out or "NOKEY" in out, out
        raise AssertionError(f"slot {slot} keeps keys on node {src}")

    def finish(self, slot, src, dst):
        for i in (dst, src, 3 - src - dst):
            assert "OK" in self.nodes[i].cli("CLUSTER", "SETSLOT", str(slot), "NODE",
                                             self.ids[dst])
        assert wait_until(lambda: all(self.node_of_slot(slot, n) == dst
                                      for n in self.nodes), timeout=30)

    def stop(self):
        for n in self.nodes:
            n.stop()


def slot_of(node, key):
    return int(node.cli("CLUSTER", "KEYSLOT", key).strip())


def keys_on(node, key):
    """Whether NODE holds KEY (ASKING: also in a slot it imports)."""
    p = subprocess.run(["redis-cli", "-h", HOST, "-p", str(node.port)],
                       input=f"ASKING\nEXISTS {key}\n", capture_output=True,
                       text=True, timeout=10)
    return p.stdout.split()[-1] == "1"


def hosts_on(node, key):
    p = subprocess.run(["redis-cli", "-h", HOST, "-p", str(node.port)],
                       input=f"ASKING\nHKEYS {key}\n", capture_output=True,
                       text=True, timeout=10)
    return set(p.stdout.split()[1:])


@pytest.fixture
def cluster(tmp_path_factory, certs):
    c = Cluster(tmp_path_factory)
    try:
        # KEYSLOT needs no formed cluster; start one node to ask it.
        c.nodes[0].start()
        fps = [certs.fingerprint("client1"), certs.fingerprint("client2")]
        slots = [slot_of(c.nodes[0], f"mtlsgw:{{{fp}}}:win") for fp in fps]
        c.start(slots)
        c.fps, c.slots = fps, slots
        yield c
    finally:
        c.stop()


def cluster_extra(seeds, host_id, limits=None):
    out = "\n[fleet]\ncluster = yes\nsync_interval = 50ms\n"
    out += "".join(f"redis = {HOST}:{s.port}\n" for s in seeds)
    out += f"host_id = {host_id}\n"
    if limits:
        out += "\n[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items())
    return out


def start_gws(gateway_factory, cluster, n, limits=None):
    # Each gateway knows a different part of the cluster to start from.
    seeds = [[cluster.nodes[0]], [cluster.nodes[1], cluster.nodes[2]], cluster.nodes]
    return [gateway_factory(locations=[METRICS_LOC],
                            extra=cluster_extra(seeds[i], f"gw{i}", limits))
            for i in range(n)]


@pytest.mark.timeout(180)
def test_cluster_limits_and_stat(gateway_factory, cluster):
    nodes, fps = cluster.nodes, cluster.fps
    owner = [cluster.node_of_slot(s) for s in cluster.slots]
    assert None not in owner and owner[0] != owner[1], owner
    gws = start_gws(gateway_factory, cluster, 3, {"fleet_max_conns": 2})
    held = []
    for g in gws[:2]:
        for cert in ("client1", "client2"):
            c = KeepAlive(g, cert)
            assert c.get().status == 200
            held.append(c)
    wait_synced(gws, n=3)
    for g in gws:
        assert metrics(g)["mtlsgw_fleet_connected"] == 1, g.stderr()[-2000:]
    # The two identities' keys are on two different nodes, nowhere else.
    for fp, o in zip(fps, owner):
        for i, n in enumerate(nodes):
            assert keys_on(n, f"mtlsgw:{{{fp}}}:hosts") == (i == o), (fp, i, o)
        assert hosts_on(nodes[o], f"mtlsgw:{{{fp}}}:hosts") == {"gw0", "gw1"}
    # The third gateway never saw them: the fleet is at its limit for both.
    for cert in ("client1", "client2"):
        r = request(gws[2].port, gws[2].certs, "/health", cert=cert)
        assert r.status == 429, (cert, r)
        assert request(gws[0].port, gws[0].certs, "/health",
                       cert=cert).status == 429
    st = subprocess.run([str(REPO / "build" / "mtlsgw-stat"), "--fleet", "-c",
                         str(gws[2].conf), "--json"], capture_output=True,
                        text=True, timeout=30)
    assert st.returncode == 0, st.stderr
    rows = {r["fingerprint"]: r for r in json.loads(st.stdout)["fleet"]}
    for fp in fps:
        assert rows[fp]["conns_active"] == 2, st.stdout
        # (gw2 pushes its 0 since it refused them)
        assert {h: v["conns_active"] for h, v in rows[fp]["hosts"].items()
                if v["conns_active"]} == {"gw0": 1, "gw1": 1}, st.stdout
    # Closing one of client2's makes room for it, not for client1.
    held.pop().close()
    wait_synced(gws, n=3)
    c = KeepAlive(gws[2], "client2")
    assert c.get().status == 200
    held.append(c)
    assert request(gws[2].port, gws[2].certs, "/health",
                   cert="client1").status == 429
    for c in held:
        c.close()


@pytest.mark.timeout(120)
def test_cluster_req_rate(gateway_factory, cluster):
    rate, sync_s = 10, 0.05
    gws = start_gws(gateway_factory, cluster, 2, {"fleet_req_rate": f"{rate}/s"})
    wait_synced(gws)
    certs_of = ["client1", "client2"] * len(gws)
    conns = [KeepAlive(g, cert) for g in gws for cert in ("client1", "client2")]
    got, elapsed = hammer(conns, 2.0)
    codes = {cert: [s for i, s, _, _ in got if certs_of[i] == cert]
             for cert in ("client1", "client2")}
    for c in conns:
        c.close()
    windows = math.ceil(elapsed) + 1
    for cert, got in codes.items():
        ok, sent = got.count(200), len(got)
        bound = windows * rate + sent * sync_s * 2
        local_only = 2 * rate * windows
        print(f"cluster fleet req rate {cert}: {ok} of {sent} admitted in "
              f"{elapsed:.2f} s, bound {bound:.0f}, local-only {local_only}")
        assert set(got) <= {200, 429}, got
        assert sent > local_only, "client too slow to test the fleet rate"
        assert rate <= ok <= bound, (cert, ok, bound)
        assert ok < local_only, (cert, ok, local_only)


@pytest.mark.timeout(120)
def test_cluster_block_unblock(gateway_factory, cluster, certs):
    gws = start_gws(gateway_factory, cluster, 3)
    fp = cluster.fps[0]

    def status(g, cert="client1"):
        return request(g.port, certs, "/main.html", cert=cert).status

    socks = []
    for g in gws:
        s = connect_tls(g.port, certs, cert="client1")
        s.sendall(build_request("GET", "/main.html", close=False))
        s.settimeout(10)
        assert b"200 OK" in s.recv(65536)
        socks.append(s)
    wait_synced(gws)
    p = ctl(gws[1], "block", f"sha256:{fp}", "--reason", "cluster test")
    assert p.returncode == 0, p.stderr
    t0 = time.monotonic()
    for g in gws:
        assert wait_time(lambda: status(g) == 403, DEADLINE) is not None, \
            g.stderr()[-2000:]
    for s in socks:
        assert wait_time(lambda: keepalive_closed(s), DEADLINE) is not None
        s.close()
    print(f"cluster: blocked on 3 gateways in {time.monotonic() - t0:.3f} s")
    assert all(status(g, "client2") == 200 for g in gws)
    lst = ctl(gws[0], "list")
    assert lst.returncode == 0 and fp in lst.stdout and "cluster test" in lst.stdout
    blocks = "mtlsgw:{blocks}:list"
    owner = cluster.node_of_slot(slot_of(cluster.nodes[0], blocks))
    assert keys_on(cluster.nodes[owner], blocks)
    assert ctl(gws[2], "unblock", f"sha256:{fp}").returncode == 0
    for g in gws:
        assert wait_time(lambda: status(g) == 200, DEADLINE) is not None


def errors(gw):
    return metrics(gw).get("mtlsgw_fleet_sync_errors_total", 0)


def hosts_fresh(node, fp):
    """gw0 and gw1's entries in NODE's P{FP}:hosts, with their UNTIL
    (entries are "ACTIVE CONNS REQS UNTIL [BYTES]")."""
    p = subprocess.run(["redis-cli", "-h", HOST, "-p", str(node.port)],
                       input=f"ASKING\nHGETALL mtlsgw:{{{fp}}}:hosts\n",
                       capture_output=True, text=True, timeout=10)
    f = p.stdout.split("\n")[1:]
    return {f[i]: int(f[i + 1].split()[3]) for i in range(0, len(f) - 1, 2)
            if len(f[i + 1].split()) in (4, 5)}


@pytest.mark.timeout(180)
def test_cluster_reshard(gateway_factory, cluster):
    nodes, ids = cluster.nodes, cluster.ids
    fp, slot = cluster.fps[0], cluster.slots[0]
    src = cluster.node_of_slot(slot)
    dst = 2 if src != 2 else 0
    gws = start_gws(gateway_factory, cluster, 2, {"fleet_max_conns": 2})
    held = [KeepAlive(g, "client1") for g in gws]
    for c in held:
        assert c.get().status == 200
    wait_synced(gws, n=3)
    key = f"mtlsgw:{{{fp}}}:hosts"
    assert keys_on(nodes[src], key) and not keys_on(nodes[dst], key)

    # Migration under way: the slot is MIGRATING on src, IMPORTING on
    # dst, and its keys are moved: src answers ASK, the gateways follow.
    assert "OK" in nodes[dst].cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[src])
    assert "OK" in nodes[src].cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[dst])
    cluster.migrate_keys(slot, src, dst)
    assert not keys_on(nodes[src], key) and keys_on(nodes[dst], key)
    wait_synced(gws, n=3)
    before = [errors(g) for g in gws]
    until = hosts_fresh(nodes[dst], fp)
    wait_synced(gws, n=5)
    after = hosts_fresh(nodes[dst], fp)
    assert set(after) == {"gw0", "gw1"}, after
    assert all(after[h] > until.get(h, 0) for h in after), (until, after)
    assert [errors(g) for g in gws] == before, "ASK not followed"
    assert not keys_on(nodes[src], key)

    # Migration done: every node names dst; src answers MOVED.
    cluster.finish(slot, src, dst)
    wait_synced(gws, n=5)
    before = [errors(g) for g in gws]
    until = hosts_fresh(nodes[dst], fp)
    wait_synced(gws, n=5)
    assert [errors(g) for g in gws] == before, [g.stderr()[-2000:] for g in gws]
    after = hosts_fresh(nodes[dst], fp)
    assert all(after[h] > until.get(h, 0) for h in ("gw0", "gw1")), (until, after)
    assert not keys_on(nodes[src], key)
    # The fleet limit still holds, counted on the new node.
    for g in gws:
        r = request(g.port, g.certs, "/health", cert="client1")
        assert r.status == 429, r
        assert metrics(g)["mtlsgw_fleet_connected"] == 1

    # The block list's slot moves too. While it migrates, mtlsgw-ctl's
    # write gets ASK and follows it to the new node, and so do the
    # gateways reading the list; after it, they follow MOVED.
    bslot = slot_of(nodes[0], "mtlsgw:{blocks}:list")
    bsrc = cluster.node_of_slot(bslot)
    bdst = (bsrc + 1) % 3
    assert "OK" in nodes[bdst].cli("CLUSTER", "SETSLOT", str(bslot), "IMPORTING",
                                   ids[bsrc])
    assert "OK" in nodes[bsrc].cli("CLUSTER", "SETSLOT", str(bslot), "MIGRATING",
                                   ids[bdst])
    cluster.migrate_keys(bslot, bsrc, bdst)
    p = ctl(gws[0], "block", f"sha256:{cluster.fps[1]}")
    assert p.returncode == 0, p.stderr
    assert keys_on(nodes[bdst], "mtlsgw:{blocks}:list")
    assert not keys_on(nodes[bsrc], "mtlsgw:{blocks}:list")

    def client2(g):
        return request(g.port, g.certs, "/health", cert="client2").status

    for g in gws:
        assert wait_time(lambda: client2(g) == 403, DEADLINE) is not None, \
            g.stderr()[-3000:]
    cluster.finish(bslot, bsrc, bdst)
    p = ctl(gws[1], "unblock", f"sha256:{cluster.fps[1]}")
    assert p.returncode == 0, p.stderr
    for g in gws:
        assert wait_time(lambda: client2(g) == 200, DEADLINE) is not None, \
            g.stderr()[-3000:]
    wait_synced(gws, n=3)
    before = [errors(g) for g in gws]
    wait_synced(gws, n=5)
    assert [errors(g) for g in gws] == before
    # No outage at any point: redirections are followed, not failures.
    for g in gws:
        assert "unreachable" not in g.stderr(), g.stderr()[-3000:]
    for c in held:
        c.close()


def test_cluster_config(tmp_path, certs, mtlsgw_bin):
    def check(text):
        return fleet_config_check(tmp_path, certs, text, mtlsgw_bin, "c.conf")

    rc, out = check("[fleet]\ncluster = yes\nredis = 127.0.0.1:7000\n"
                    "redis = 127.0.0.1:7001\n")
    assert rc == 0, out
    rc, out = check("[fleet]\ncluster = yes\nredis = 127.0.0.1:7000\n"
                    "sentinel_master = m\n")
    assert rc == 1 and "exclude each other" in out, out
    rc, out = check("[fleet]\ncluster = yes\nredis = unix:/run/r.sock\n")
    assert rc == 1 and "c.conf:9: redis = unix:/run/r.sock: cluster = yes" in out, out
    rc, out = check("[fleet]\ncluster = maybe\nredis = 127.0.0.1:7000\n")
    assert rc == 1 and "c.conf:8" in out, out


@pytest.mark.timeout(180)
def test_cluster_node_down(gateway_factory, cluster):
    """The node of client2's keys goes away: client2 alone falls back to
    fleet_fail = static after the hold time, client1 (another node) keeps
    the fleet's view; the node comes back and client2 is synced again.
    fleet_max_conns = 3 with one connection of each identity on each of
    two gateways: the fleet view admits a second one on gw0 (2 + 1 <= 3),
    the static share (3 / 2 gateways = 1) refuses it."""
    nodes = cluster.nodes
    victim = cluster.node_of_slot(cluster.slots[1])
    addr = f"{HOST}:{nodes[victim].port}"
    # The gateway needs the {blocks} and {index} nodes whole: keep them
    # off the node that goes away.
    for tag in ("blocks", "index"):
        s = slot_of(nodes[0], f"mtlsgw:{{{tag}}}:x")
        if cluster.node_of_slot(s) == victim:
            cluster.migrate(s, victim, cluster.node_of_slot(cluster.slots[0]))
    gws = start_gws(gateway_factory, cluster, 2,
                    {"fleet_max_conns": 3, "fleet_fail": "static"})
    held = [KeepAlive(g, cert) for g in gws for cert in ("client1", "client2")]
    for c in held:
        assert c.get().status == 200
    wait_synced(gws, n=3)

    def second(cert):
        """A second connection of CERT on gw0: its status."""
        c = KeepAlive(gws[0], cert)
        try:
            return c.get().status
        finally:
            c.close()

    assert second("client1") == 200 and second("client2") == 200

    nodes[victim].kill()
    assert wait_until(lambda: second("client2") == 429, timeout=20), \
        gws[0].stderr()[-2000:]
    # client1's node is up: it keeps the fleet's view, the fleet is connected.
    wait_synced(gws, n=3)
    assert second("client1") == 200
    for g in gws:
        assert metrics(g)["mtlsgw_fleet_connected"] == 1
        assert g.stderr().count(f"redis cluster node {addr} unreachable") == 1, \
            g.stderr()[-3000:]
    assert metrics(gws[0])["mtlsgw_fleet_sync_errors_total"] >= 1

    nodes[victim].start()
    assert wait_until(cluster.ready, timeout=60)
    for g in gws:
        assert wait_until(lambda: f"cluster node {addr} reachable again" in g.stderr(),
                          timeout=30), g.stderr()[-3000:]
    assert wait_until(lambda: set(hosts_fresh(nodes[victim], cluster.fps[1])) ==
                      {"gw0", "gw1"}, timeout=15)
    assert wait_until(lambda: second("client2") == 200, timeout=15)
    for c in held:
        c.close()


@pytest.mark.timeout(180)
def test_cluster_blocks_node_down(gateway_factory, cluster):
    """The node serving {blocks} goes away: that is "Redis unreachable"
    for the gateway (README), warned once however many reconnects fail;
    it syncs again when the node returns."""
    nodes = cluster.nodes
    b = cluster.node_of_slot(slot_of(nodes[0], "mtlsgw:{blocks}:list"))
    addr = f"{HOST}:{nodes[b].port}"
    gw = start_gws(gateway_factory, cluster, 3)[2]  # seeded with all three
    wait_synced([gw])
    assert metrics(gw)["mtlsgw_fleet_connected"] == 1
    nodes[b].kill()
    assert wait_until(lambda: metrics(gw)["mtlsgw_fleet_connected"] == 0, timeout=20)
    e0 = metrics(gw)["mtlsgw_fleet_sync_errors_total"]
    assert wait_until(lambda: metrics(gw)["mtlsgw_fleet_sync_errors_total"] >= e0 + 4,
                      timeout=30)  # several reconnects failed
    log = gw.stderr()
    assert log.count("fleet: redis unreachable (") == 1, log[-3000:]
    assert log.count(f"redis cluster node {addr} unreachable") <= 1, log[-3000:]
    assert request(gw.port, gw.certs, "/health", cert="client1").status == 200
    nodes[b].start()
    assert wait_until(cluster.ready, timeout=60)
    assert wait_until(lambda: metrics(gw)["mtlsgw_fleet_connected"] == 1, timeout=30), \
        gw.stderr()[-3000:]
    assert "reachable again" in gw.stderr()
