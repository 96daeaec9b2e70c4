# SPDX-License-Identifier: MIT
"""Debian's redis-server for the fleet tests: started by the test on a
free loopback port with its own folder (persistence only when asked),
stopped at the end; plus what the tests read from the gateways
(/metrics) and run against Redis (mtlsgw-ctl, redis-cli)."""

import re
import shutil
import subprocess
import threading
import time

import pytest

from helpers import HOST, REPO, free_port, request, wait_until

CTL = REPO / "build" / "mtlsgw-ctl"


class Redis:
    def __init__(self, workdir, persist=False, args=()):
        self.dir = workdir
        self.persist = persist
        self.args = list(args)
        self.port = free_port()
        self.proc = None

    def start(self):
        args = ["redis-server", "--bind", HOST, "--port", str(self.port),
                "--dir", str(self.dir), "--daemonize", "no",
                "--logfile", str(self.dir / "redis.log"),
                "--save", "", "--appendonly", "yes" if self.persist else "no",
                "--protected-mode", "no", *self.args]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_until(lambda: self.ping(), timeout=15):
            self.stop()
            raise RuntimeError(f"redis-server did not start:\n{self.log()}")
        return self

    def ping(self):
        try:
            return self.cli("PING").strip() == "PONG"
        except subprocess.SubprocessError:
            return False

    def cli(self, *args):
        auth = []
        if "--requirepass" in self.args:
            auth = ["--no-auth-warning", "-a",
                    self.args[self.args.index("--requirepass") + 1]]
        p = subprocess.run(["redis-cli", "-h", HOST, "-p", str(self.port), *auth, *args],
                           capture_output=True, text=True, timeout=10)
        return p.stdout

    def log(self):
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self):
        """SIGTERM: Redis writes its append-only file and exits."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def redis_factory(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server missing (scripts/install-deps.sh)", pytrace=False)
    made = []

    def make(persist=False, args=()):
        r = Redis(tmp_path_factory.mktemp("redis"), persist, args).start()
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


def fleet_extra(redis_port, host_id, sync="50ms", limits=None, fleet=None):
    """Config text: [fleet] on REDIS_PORT plus [limits] LIMITS."""
    keys = {"redis": f"{HOST}:{redis_port}", "sync_interval": sync,
            "host_id": host_id}
    keys.update(fleet or {})
    out = "\n[fleet]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    if limits:
        out += "\n[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items())
    return out


FLEET_CHECK_BASE = """[tls]
cert = {d}/server.crt
key = {d}/server.key
client_ca = {d}/client-ca.pem
[location /]
return = 200 ok
"""


def fleet_config_check(tmp_path, certs, text, binary, name="f.conf"):
    """`mtlsgw -t` on a minimal config plus TEXT ([fleet], [limits]...),
    written to TMP_PATH/NAME: (exit code, stdout + stderr)."""
    conf = tmp_path / name
    conf.write_text(FLEET_CHECK_BASE.format(d=certs.dir) + text)
    p = subprocess.run([str(binary), "-t", "-c", str(conf)], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


METRICS_LOC = ("/metrics", {"metrics": "yes"})


def metrics(gw):
    text = request(gw.port, gw.certs, "/metrics").text()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def syncs(gw):
    return metrics(gw).get("mtlsgw_fleet_sync_duration_seconds_count", 0)


def wait_synced(gws, n=2, timeout=15):
    """Wait until every gateway in GWS completed N more syncs."""
    start = {id(g): syncs(g) for g in gws}
    for g in gws:
        assert wait_until(lambda: syncs(g) >= start[id(g)] + n, timeout=timeout), \
            f"gateway {g.port} does not sync:\n{g.stderr()[-2000:]}"


def ctl(gw, *args):
    return subprocess.run([str(CTL), "-c", str(gw.conf), *args],
                          capture_output=True, text=True, timeout=30)


def wait_time(pred, timeout):
    """Seconds until PRED() holds, or None."""
    t0 = time.monotonic()
    if wait_until(pred, timeout=timeout, interval=0.02):
        return time.monotonic() - t0
    return None


def hammer(conns, seconds, path="/health"):
    """Every keep-alive connection in CONNS (helpers.KeepAlive) sends GET
    PATH in a loop for SECONDS, all in parallel. Returns the answers in
    the order they came, as (connection index, status, body length,
    Retry-After of a 429 else None), and the elapsed time."""
    got = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i, c):
        while time.monotonic() < stop:
            r = c.get(path)
            retry = int(r.header("Retry-After", "0")) if r.status == 429 else None
            with lock:
                got.append((i, r.status, len(r.body), retry))

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i, c))
               for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got, time.monotonic() - t0


def retry_after_ok(got):
    """Every 429 among hammer()'s answers said Retry-After >= 1."""
    return all(retry >= 1 for _, status, _, retry in got if status == 429)
