# SPDX-License-Identifier: MIT
"""Helpers for the BPF tests: unique instances, pinned-map reading and
writing with bpftool, cleanup of pins and cgroups, and the limits_probe
line-protocol client (tests/bpf/limits_probe.c)."""

import itertools
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BUILD", REPO / "build"))
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
PROBE = BUILD / "tests" / "bpf" / "limits_probe"
STAT = BUILD / "mtlsgw-stat"
PIN_ROOT = Path("/sys/fs/bpf/mtlsgw")
ID_LEN = 72
LIMIT_FIELDS = ("max_conns", "conn_rate", "conn_burst", "req_rate",
                "req_burst", "bandwidth_out", "bandwidth_in", "from_config")
IO_TIMEOUT = 15.0

_seq = itertools.count(1)


def unique_instance():
    return f"test-{os.getpid()}-{next(_seq)}"


def in_ci():
    return os.environ.get("CI") == "true"


def bpf_unavailable_reason():
    """Why BPF tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "BPF tests need root"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel without BTF"
    if shutil.which("bpftool") is None:
        return "bpftool missing"
    return None


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.startswith("cgroup2 "):
                return pre.split()[4]
    return None


def cleanup_instance(instance):
    """Remove what a gateway or probe of INSTANCE leaves behind on
    purpose: pinned maps and links (removing them detaches the programs)
    and the cgroup it made for itself."""
    pins = PIN_ROOT / instance
    if pins.exists():
        shutil.rmtree(pins, ignore_errors=True)
    mnt = cgroup2_mount()
    if mnt:
        cg = Path(mnt) / f"mtlsgw-{instance}"
        for _ in range(50):
            if not cg.exists():
                break
            try:
                cg.rmdir()
            except OSError:
                time.sleep(0.1)  # a process is still leaving it


def bpftool_json(*args):
    out = subprocess.run(["bpftool", "-j", *args], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return json.loads(out) if out.strip() else []


def dump_map(instance, name):
    """A pinned map as {identity: value dict}, read with bpftool alone
    (`bpftool -j map dump` puts the BTF view under "formatted")."""
    rows = bpftool_json("map", "dump", "pinned", str(PIN_ROOT / instance / name))
    return {r["formatted"]["key"]["name"]: r["formatted"]["value"] for r in rows}


def dump_stats(instance):
    return dump_map(instance, "cert_stats")


def dump_limits(instance):
    return dump_map(instance, "cert_limits")


def key_hex(name):
    raw = name.encode().ljust(ID_LEN, b"\0")
    return [f"{b:02x}" for b in raw]


def update_limit(instance, key, **fields):
    """bpftool map update of one cert_limits entry, as an operator does."""
    vals = [int(fields.get(f, 0)) for f in LIMIT_FIELDS]
    raw = struct.pack("<8Q", *vals)
    subprocess.run(["bpftool", "map", "update", "pinned",
                    str(PIN_ROOT / instance / "cert_limits"),
                    "key", "hex", *key_hex(key),
                    "value", "hex", *[f"{b:02x}" for b in raw]],
                   check=True, capture_output=True, text=True, timeout=30)


def wait_for(pred, timeout=5.0, step=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


class Probe:
    """A running limits_probe (daemon/limits.c on plain TCP)."""

    def __init__(self, instance, tmp_path, limits="", mode="auto", user=None,
                 addr="127.0.0.1"):
        self.instance = instance
        self.addr = addr
        self.limits_file = tmp_path / f"{instance}.limits"
        self.limits_file.write_text(limits)
        self.mode = mode
        self.user = user
        self.proc = None
        self.port = None
        self.ready_mode = None
        self.stderr_path = tmp_path / f"{instance}.stderr"

    def start(self):
        assert PROBE.exists(), f"{PROBE} missing: make {PROBE.relative_to(REPO)}"
        limits_path = str(self.limits_file)
        pass_fds = ()
        preexec = None
        exe = PROBE
        if self.user is not None:
            # The unprivileged probe cannot open a file in pytest's 0700
            # tmp dir: hand it an open descriptor instead.
            lfd = os.open(limits_path, os.O_RDONLY)
            pass_fds = (lfd,)
            limits_path = f"/dev/fd/{lfd}"
            uid, gid = self.user
            # Nor run a binary under a checkout whose parents only root
            # may enter (a clone under /root or mktemp -d): run a copy
            # from a folder of its own that anyone may enter.
            if not getattr(self, "public_dir", None):
                self.public_dir = tempfile.mkdtemp(prefix="mtlsgw-probe-")
                os.chmod(self.public_dir, 0o755)
            exe = os.path.join(self.public_dir, PROBE.name)
            if not os.path.exists(exe):
                shutil.copy2(PROBE, exe)
                os.chmod(exe, 0o755)

            def preexec():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
        args = [str(exe), "--instance", self.instance, "--mode", self.mode,
                "--limits", limits_path, "--addr", self.addr]
        if self.port:
            args += ["--port", str(self.port)]
        self.stderr = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                         stderr=self.stderr,
                                         preexec_fn=preexec, pass_fds=pass_fds)
        finally:
            for fd in pass_fds:
                os.close(fd)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY"):
            self.proc.wait(timeout=10)
            return False
        kv = dict(p.split("=") for p in line.split()[1:])
        self.port = int(kv["port"])
        self.ready_mode = kv["mode"]
        return True

    def log(self):
        return self.stderr_path.read_text(errors="replace")

    def reload(self, limits):
        self.limits_file.write_text(limits)
        self.proc.send_signal(signal.SIGHUP)
        # The probe applies a reload when accept() is interrupted.
        assert wait_for(lambda: "reloaded" in self.log()), self.log()

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def close(self):
        self.kill()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "stderr", None):
            self.stderr.close()
        if getattr(self, "public_dir", None):
            shutil.rmtree(self.public_dir, ignore_errors=True)
            self.public_dir = None

    def connect(self, fp="-", cn="-", host=None):
        if host is None:
            host = "::1" if self.addr == "::1" else "127.0.0.1"
        return ProbeConn(host, self.port, fp, cn)


class ProbeConn:
    def __init__(self, host, port, fp, cn):
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.file = self.sock.makefile("rb")
        self.sock.sendall(f"HELLO {fp} {cn}\n".encode())
        self.answer = self.file.readline().decode().strip()

    @property
    def admitted(self):
        return self.answer == "ADMIT"

    def retry_after(self):
        assert self.answer.startswith("REFUSED"), self.answer
        return int(self.answer.split()[1])

    def request(self):
        self.sock.sendall(b"REQ\n")
        return self.file.readline().decode().strip()

    def get(self, n):
        """Download N bytes; returns seconds taken."""
        t0 = time.monotonic()
        self.sock.sendall(f"GET {n}\n".encode())
        got = 0
        while got < n:
            chunk = self.file.read1(min(1 << 20, n - got))
            assert chunk, "connection closed during GET"
            got += len(chunk)
        return time.monotonic() - t0

    def put(self, n):
        t0 = time.monotonic()
        self.sock.sendall(f"PUT {n}\n".encode())
        buf = b"y" * 65536
        left = n
        while left:
            k = min(left, len(buf))
            self.sock.sendall(buf[:k])
            left -= k
        assert self.file.readline().strip() == b"GOT"
        return time.monotonic() - t0

    def close(self):
        try:
            self.file.close()
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- the real gateway (fixtures from tests/integration/conftest.py)

def limits_config(instance, default=None, anonymous=None, overrides=None,
                  mode="required"):
    """[limits...] and [bpf] sections for the gateway's config. DEFAULT and
    ANONYMOUS: dicts of limit keys; OVERRIDES: {fingerprint: dict}."""
    out = [""]
    for header, keys in (("limits", default), ("limits anonymous", anonymous)):
        if keys:
            out.append(f"[{header}]")
            out += [f"{k} = {v}" for k, v in keys.items()]
    for fp, keys in (overrides or {}).items():
        out.append(f"[limits sha256:{fp}]")
        out += [f"{k} = {v}" for k, v in keys.items()]
    out += ["[bpf]", f"mode = {mode}", f"instance = {instance}", ""]
    return "\n".join(out)


def start_gateway(factory, instance, mode="required", **limits):
    gw = factory(extra=limits_config(instance, mode=mode, **limits))
    return gw


class KeepAlive:
    """One TLS connection with a client certificate, for several requests."""

    def __init__(self, gw, cert=None, version=None):
        from helpers import connect_tls
        self.sock = connect_tls(gw.port, gw.certs, version, cert)
        self.last = None

    def get(self, path="/main.html", timeout=IO_TIMEOUT):
        from helpers import build_request, read_response
        try:
            self.sock.sendall(build_request("GET", path, close=False))
            r = read_response(self.sock, "GET", timeout)
        except (ConnectionError, OSError) as e:
            if self.last is not None and self.last.status == 429:
                raise AssertionError(
                    "the gateway closed the connection after a request-rate "
                    "429 (headers of that 429: "
                    f"{self.last.headers}); issue 4: the connection stays "
                    "usable") from e
            raise
        self.last = r
        return r

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get(gw, path="/main.html", cert=None, timeout=IO_TIMEOUT):
    """One request on a fresh connection."""
    from helpers import request
    return request(gw.port, gw.certs, path, cert=cert, timeout=timeout)


# --- raw bpf(2), for filling a map faster than bpftool can

def _bpf(cmd, attr):
    import ctypes
    import platform
    nr = {"x86_64": 321, "aarch64": 280}[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(nr, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), f"bpf({cmd})")
    return r


def map_fill(path, items):
    """bpf_map_update_elem for every (key bytes, value bytes) in ITEMS."""
    import ctypes
    p = ctypes.create_string_buffer(str(path).encode())
    fd = _bpf(7, struct.pack("<QII", ctypes.addressof(p), 0, 0))  # OBJ_GET
    try:
        for k, v in items:
            kb = ctypes.create_string_buffer(k, len(k))
            vb = ctypes.create_string_buffer(v, len(v))
            _bpf(2, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(kb),
                                ctypes.addressof(vb), 0))  # UPDATE_ELEM
    finally:
        os.close(fd)
