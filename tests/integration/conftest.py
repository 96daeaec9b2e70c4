# SPDX-License-Identifier: MIT
"""Fixtures for the integration tests: certificates from gen-certs.sh, a
served tree with known files, and the real daemon on a free loopback port.

- certs (session): scripts/gen-certs.sh into a temporary folder, once.
- site (session): the served root (the demo pages of conf/www plus test
  files: 1 MB and 100 MB random files with known sha256, a symlink pointing
  outside root) and a secret file OUTSIDE root for traversal tests.
- mtlsgw_bin (session): a private copy of build/mtlsgw (or $MTLSGW_BIN).
- gateway_factory: f(server={...}, tls={...}, locations=[(prefix, {...})],
  replace_locations=False, extra="") writes a config (the defaults of
  default_sections() updated with those; a list value repeats a key, None
  drops it, "@PORT@" is the port), starts that binary in the foreground,
  waits until it completes a TLS handshake and returns a Gateway (port,
  conf, access_log, stderr_path, access(), stderr()). Each one is stopped
  with SIGTERM at the end of the test and must exit 0; one that exited by
  itself during the test is a failure too.
- module_gateway_factory: the same, shared by a test file.
- gateway (module): one daemon with the default (demo-like) config.

A test that runs longer than its timeout (default 120 s, or
@pytest.mark.timeout(N)) fails with a TimeoutError.

Under CI=true a skipped test is a failure (this conftest's hooks serve the
BPF suite too). A daemon whose stderr holds an AddressSanitizer,
LeakSanitizer or UndefinedBehaviorSanitizer report (the build-asan binary,
through MTLSGW_BIN) fails the test that started it.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from helpers import (HOST, REPO, SNI, Certs, client_context, free_port,
                     read_jsonl)

BIN = Path(os.environ.get("MTLSGW_BIN", REPO / "build" / "mtlsgw"))
BIN_COPY_TIMEOUT = 60.0
DEFAULT_TEST_TIMEOUT = 120
START_TIMEOUT = 15.0
STOP_TIMEOUT = 20.0  # the default drain deadline is 10 s


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "timeout(seconds): fail the test after that many seconds")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    m = item.get_closest_marker("timeout")
    secs = int(m.args[0]) if m else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError(f"test took more than {secs} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def in_ci():
    return os.environ.get("CI") == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skip is a failure: a test that does not run in CI
    proves nothing there."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and in_ci() and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI=true, which is a failure: {reason}"


# A sanitizer's report on the daemon's stderr: ASan/LSan "==PID==ERROR:
# AddressSanitizer: ...", UBSan "FILE:LINE:COL: runtime error: ...".
SANITIZER_REPORT = re.compile(
    r"ERROR: (Address|Leak)Sanitizer|^\S+:\d+:\d+: runtime error: "
    r"|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer", re.M)


def sanitizer_report(text):
    """The sanitizer report in TEXT (from its first line), or None."""
    m = SANITIZER_REPORT.search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    return text[start:start + 6000]


# --- the binary under test

@pytest.fixture(scope="session")
def mtlsgw_bin(tmp_path_factory):
    """A private copy of the daemon, taken once: a rebuild of build/mtlsgw
    while the suite runs (other work in the same tree) cannot swap binaries
    between tests or catch one half-written. The copy must run --version."""
    if not BIN.exists():
        pytest.fail(f"{BIN} not built (make build/mtlsgw)", pytrace=False)
    dst = tmp_path_factory.mktemp("bin") / "mtlsgw"
    deadline = time.monotonic() + BIN_COPY_TIMEOUT
    while True:
        try:
            shutil.copy2(BIN, dst)
            p = subprocess.run([str(dst), "--version"], capture_output=True, timeout=10)
            if p.returncode == 0:
                return dst
            why = p.stderr.decode(errors="replace")
        except OSError as e:
            why = str(e)
        if time.monotonic() > deadline:
            pytest.fail(f"{BIN} does not run --version: {why}", pytrace=False)
        time.sleep(1)


# --- certificates and files

@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    p = subprocess.run([str(REPO / "scripts" / "gen-certs.sh"), str(d)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"gen-certs.sh failed:\n{p.stdout}\n{p.stderr}"
    return Certs(d)


class Site:
    """The served tree. root/ is what the gateway serves; secret and
    outside/secret are not under it and must never be served."""

    def __init__(self, base):
        self.base = base
        self.root = base / "root"
        self.secret = base / "secret"
        self.marker = b"OUTSIDE-ROOT-MARKER-" + os.urandom(8).hex().encode()
        self.sha256 = {}
        self.size = {}


def _random_file(path, size):
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            b = os.urandom(min(left, 1 << 20))
            f.write(b)
            h.update(b)
            left -= len(b)
    return h.hexdigest()


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("site"))
    shutil.copytree(REPO / "conf" / "www", s.root)
    data = s.root / "data"
    data.mkdir()
    for name, size in (("1mb.bin", 1 << 20), ("100mb.bin", 100 << 20)):
        s.sha256[name] = _random_file(data / name, size)
        s.size[name] = size
    (data / "hello.txt").write_text("hello, world\n")
    (data / "style.css").write_text("body { color: black; }\n")
    # "/protectedx" is not under "/protected".
    (s.root / "protectedx").mkdir()
    (s.root / "protectedx" / "index.html").write_text("<p>protectedx is open</p>\n")
    # One folder per allow-list location (root semantics: root + full path).
    for d in ("allow-cn", "allow-dn", "allow-or", "allow-san-uri", "allow-san-dns",
              "allow-fp", "allow-fp-colons", "allow-opt"):
        (s.root / d).mkdir()
        (s.root / d / "index.html").write_text(f"<p>{d} ok</p>\n")
    # Outside root: the secret, and a folder a symlink in root points to.
    s.secret.write_bytes(s.marker + b"\n")
    (s.base / "outside").mkdir()
    (s.base / "outside" / "secret").write_bytes(s.marker + b"\n")
    (s.root / "link-out").symlink_to(s.base / "outside")
    (s.root / "link-secret").symlink_to(s.secret)
    (s.root / "link-rel").symlink_to(Path("..") / "secret")
    return s


# --- the daemon

def render_config(sections):
    """SECTIONS: list of (header, dict). A value that is a list repeats the
    key; None drops it."""
    out = []
    for header, keys in sections:
        out.append(f"[{header}]")
        for k, v in keys.items():
            if v is None:
                continue
            for item in (v if isinstance(v, (list, tuple)) else [v]):
                out.append(f"{k} = {item}")
        out.append("")
    return "\n".join(out)


class Gateway:
    def __init__(self, workdir, certs, site, port, config_text, binary=BIN):
        self.binary = binary
        self.workdir = workdir
        self.certs = certs
        self.site = site
        self.port = port
        self.conf = workdir / "mtlsgw.conf"
        self.access_log = workdir / "access.log"
        self.stderr_path = workdir / "stderr.log"
        self.conf.write_text(config_text)
        self.proc = None
        self.returncode = None

    def start(self, timeout=START_TIMEOUT):
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([str(self.binary), "-c", str(self.conf)], stdout=self._err,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.workdir)
        deadline = time.monotonic() + timeout
        ctx = client_context(self.certs)
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise RuntimeError(
                    f"mtlsgw exited with {self.proc.returncode} during start-up; "
                    f"config:\n{self.conf.read_text()}\nstderr:\n{self.stderr()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as raw:
                    with ctx.wrap_socket(raw, server_hostname=SNI):
                        return self
            except (OSError, ssl.SSLError) as e:
                last = e
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mtlsgw not accepting TLS on {self.port} after {timeout} s "
                           f"({last}); stderr:\n{self.stderr()}")

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access(self):
        return read_jsonl(self.access_log)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the daemon and wait; returns its exit code, or None if it
        had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            rc = self.wait(timeout)
            if rc is None:
                self.kill()
                return None
        self.returncode = self.proc.returncode
        self._err.close()
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def default_sections(certs, site, port, workdir):
    return [
        ("server", {"listen": f"{HOST}:{port}", "workers": 2,
                    "access_log": str(workdir / "access.log")}),
        ("tls", {"cert": certs.dir / "server.crt", "key": certs.dir / "server.key",
                 "client_ca": certs.dir / "client-ca.pem", "crl": certs.dir / "crl.pem",
                 "verify_depth": 2, "min_version": "1.2", "handshake_timeout": "10s"}),
        ("location /", {"root": site.root}),
        ("location /protected", {"client_cert": "require", "root": site.root}),
        ("location /health", {"return": "200 ok"}),
        # The plain run: BPF has its own suite (tests/bpf); here no test
        # daemon attaches programs or leaves pins behind.
        ("bpf", {"mode": "off"}),
    ]


class GatewayFactory:
    def __init__(self, tmp_path_factory, certs, site, binary=BIN):
        self.binary = binary
        self.tmp = tmp_path_factory
        self.certs = certs
        self.site = site
        self.started = []

    def config(self, port, workdir, server=None, tls=None, locations=None,
               replace_locations=False, extra=""):
        """The test config: defaults updated with SERVER / TLS dicts;
        LOCATIONS (list of (prefix, dict)) added after the default ones, or
        instead of them with REPLACE_LOCATIONS; EXTRA text appended."""
        secs = default_sections(self.certs, self.site, port, workdir)
        secs[0][1].update(server or {})
        secs[1][1].update(tls or {})
        if replace_locations:
            secs = [s for s in secs if not s[0].startswith("location ")]
        if "[bpf]" in extra:
            secs = [s for s in secs if s[0] != "bpf"]  # the test's own wins
        for prefix, keys in locations or []:
            secs.append((f"location {prefix}", keys))
        # "@PORT@" in a value stands for the port the gateway is checked on.
        return (render_config(secs) + extra).replace("@PORT@", str(port))

    @staticmethod
    def _stop_one(gw):
        if gw.returncode is not None and gw.proc.poll() is not None:
            return []  # the test stopped it and checked the code itself
        if gw.proc.poll() is not None:
            problem = (f"mtlsgw on port {gw.port} exited by itself during the "
                       f"tests (exit {gw.proc.returncode}); stderr tail:\n"
                       f"{gw.stderr()[-3000:]}")
            gw.stop()
            return [problem]
        rc = gw.stop()
        if rc != 0:
            return [f"mtlsgw on port {gw.port} did not exit 0 on SIGTERM "
                    f"(exit {rc}); stderr tail:\n{gw.stderr()[-3000:]}"]
        return []

    def __call__(self, **opts):
        workdir = self.tmp.mktemp("gw")
        for attempt in range(3):
            port = free_port()
            gw = Gateway(workdir, self.certs, self.site, port,
                         self.config(port, workdir, **opts), self.binary)
            try:
                gw.start()
            except RuntimeError as e:
                # Someone took the port between free_port() and bind().
                if "in use" in str(e).lower() and attempt < 2:
                    continue
                raise
            self.started.append(gw)
            return gw
        raise AssertionError("unreachable")

    def stop_all(self):
        problems = []
        for gw in self.started:
            problems += self._stop_one(gw)
            report = sanitizer_report(gw.stderr())
            if report:
                problems.append(f"mtlsgw on port {gw.port}: sanitizer report on its "
                                f"stderr:\n{report}")
        self.started = []
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def gateway_factory(tmp_path_factory, certs, site, mtlsgw_bin):
    f = GatewayFactory(tmp_path_factory, certs, site, mtlsgw_bin)
    yield f
    f.stop_all()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, certs, site, mtlsgw_bin):
    """One daemon with the default config, shared by a test file."""
    f = GatewayFactory(tmp_path_factory, certs, site, mtlsgw_bin)
    gw = f()
    yield gw
    f.stop_all()


@pytest.fixture(scope="module")
def module_gateway_factory(tmp_path_factory, certs, site, mtlsgw_bin):
    """Like gateway_factory, for daemons shared by a whole test file."""
    f = GatewayFactory(tmp_path_factory, certs, site, mtlsgw_bin)
    yield f
    f.stop_all()
