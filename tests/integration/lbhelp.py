# SPDX-License-Identifier: MIT
"""Load-balancer helpers for the test_lb_* tests: a real HAProxy (Debian's
haproxy 2.6) started on loopback with conf/haproxy-example.cfg itself (its
site-specific values are environment variables), its stats socket, and
gateways with a proxy_protocol listener behind it."""

import csv
import io
import os
import shutil
import socket
import subprocess
import time

from helpers import HOST, REPO, free_port

EXAMPLE = REPO / "conf" / "haproxy-example.cfg"
START_TIMEOUT = 15.0


def haproxy_bin():
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


def example_env(ca_dir, stats=None, bind=None, gw1=None, gw2=None, name="localhost"):
    env = dict(os.environ)
    env["MTLSGW_CA_DIR"] = str(ca_dir)
    env["MTLSGW_GW_NAME"] = name
    for key, value in (("MTLSGW_LB_STATS", stats), ("MTLSGW_LB_BIND", bind),
                       ("MTLSGW_GW1", gw1), ("MTLSGW_GW2", gw2)):
        if value is not None:
            env[key] = str(value)
    return env


def check_example(ca_dir):
    """haproxy -c on the example, as shipped; (returncode, output)."""
    p = subprocess.run([haproxy_bin(), "-c", "-f", str(EXAMPLE)], env=example_env(ca_dir),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout + p.stderr


class HAProxy:
    """conf/haproxy-example.cfg in the foreground (-db) on a free loopback
    port, in front of the gateways' proxy_protocol listeners."""

    def __init__(self, workdir, ca_dir, gw1, gw2):
        self.workdir = workdir
        self.stats = workdir / "haproxy.sock"
        self.log = workdir / "haproxy.log"
        self.port = free_port()
        self.env = example_env(ca_dir, stats=self.stats, bind=f"{HOST}:{self.port}",
                               gw1=gw1, gw2=gw2)
        self.proc = None

    def start(self):
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen([haproxy_bin(), "-db", "-f", str(EXAMPLE)], env=self.env,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    pass
                if self.stats.exists():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"haproxy not listening on {self.port}:\n{self.output()}")

    def output(self):
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def command(self, cmd):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(cmd.encode() + b"\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data.decode(errors="replace")
                data += chunk

    def servers(self):
        """{server name: row of `show stat`} of the gateways backend."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {r["svname"]: r for r in rows
                if r["pxname"] == "gateways" and r["svname"] not in ("FRONTEND", "BACKEND")}

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc is not None:
            self._out.close()


def connect_from(source, port, timeout=10):
    """A TCP connection to HOST:PORT from loopback address SOURCE."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect((HOST, port))
        return s
    except BaseException:
        s.close()
        raise
