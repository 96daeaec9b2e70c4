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


_copies = {}


def world_readable_copy(path):
    """PATH copied into a fresh 0755 folder under /tmp (once per run), for
    a process that runs as another user; removed at exit."""
    if path not in _copies:
        import atexit
        import tempfile
        d = Path(tempfile.mkdtemp(prefix="mtlsgw-bin-"))
        d.chmod(0o755)
        dst = d / path.name
        shutil.copy2(path, dst)
        dst.chmod(0o755)
        atexit.register(shutil.rmtree, d, True)
        _copies[path] = dst
    return _copies[path]


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
        probe = str(PROBE)
        pass_fds = ()
        preexec = None
        if self.user is not None:
            # The checkout's parent folders may be closed to other users
            # (a clone under /root or mktemp -d): run a copy of the probe
            # from a folder the user can search.
            probe = str(world_readable_copy(PROBE))
            # The unprivileged probe cannot open a file in pytest's 0700
            # tmp dir: hand it an open descriptor instead.
            lfd = os.open(limits_path, os.O_RDONLY)
            pass_fds = (lfd,)
            limits_path = f"/dev/fd/{lfd}"
            uid, gid = self.user

            def preexec():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
        args = [probe, "--instance", self.instance, "--mode", self.mode,
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

    def connect(self, fp="-", cn="-", host=None, source=None):
        if host is None:
            host = "::1" if self.addr == "::1" else "127.0.0.1"
        return ProbeConn(host, self.port, fp, cn, source)

    def control(self, line, timeout=300):
        """One control line (BULK, DROP, GC, GCSTATS: see limits_probe.c);
        the answer's key=value pairs as ints."""
        host = "::1" if self.addr == "::1" else "127.0.0.1"
        with socket.create_connection((host, self.port),
                                      timeout=timeout) as s:
            s.sendall(line.encode() + b"\n")
            answer = s.makefile("rb").readline().decode().strip()
        assert answer, f"no answer to {line!r}:\n{self.log()}"
        return {k: int(v) for k, v in
                (p.split("=") for p in answer.split()[1:])}


class ProbeConn:
    def __init__(self, host, port, fp, cn, source=None):
        self.sock = socket.create_connection(
            (host, port), timeout=IO_TIMEOUT,
            source_address=(source, 0) if source else None)
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


def start_check_settled(instance):
    """Wait until the fixture's start-up check (one anonymous TLS
    connection from 127.0.0.1) is bound and closed in the gateway's maps.
    The client's TLS 1.3 handshake ends before the server's: the gateway
    binds that identity a moment after the fixture returns, so a test that
    reads or empties the maps at once would race with it."""
    def settled():
        st = dump_stats(instance).get("127.0.0.1")
        return st is not None and st["conns_total"] >= 1 and \
            st["conns_active"] == 0
    assert wait_for(settled), (
        f"the start-up check never showed in {instance}'s cert_stats: "
        f"{dump_stats(instance)}")


def start_gateway(factory, instance, mode="required", **limits):
    gw = factory(extra=limits_config(instance, mode=mode, **limits))
    if mode != "off":
        start_check_settled(instance)
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


def map_lookup(path, key, value_size):
    """bpf_map_lookup_elem of KEY (bytes) in the pinned map PATH: the
    value's bytes, or None if there is no such key."""
    import ctypes
    p = ctypes.create_string_buffer(str(path).encode())
    fd = _bpf(7, struct.pack("<QII", ctypes.addressof(p), 0, 0))  # OBJ_GET
    try:
        kb = ctypes.create_string_buffer(key, len(key))
        vb = ctypes.create_string_buffer(value_size)
        try:
            _bpf(1, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(kb),
                                ctypes.addressof(vb), 0))  # LOOKUP_ELEM
        except OSError as e:
            if e.errno == 2:
                return None
            raise
        return vb.raw
    finally:
        os.close(fd)


STATS_FIELDS = ("conns_total", "conns_active", "conns_rejected", "requests",
                "requests_rejected", "bytes_in", "bytes_out", "last_seen")


def stats_of(instance, name):
    """One cert_stats entry as a dict of its counters, or None."""
    raw = map_lookup(PIN_ROOT / instance / "cert_stats",
                     name.encode().ljust(ID_LEN, b"\0"), 200)
    if raw is None:
        return None
    return dict(zip(STATS_FIELDS, struct.unpack_from("<8Q", raw, 136)))


def map_keys(path, key_size=ID_LEN):
    """Every key of the pinned map PATH (bpf_map_get_next_key)."""
    import ctypes
    p = ctypes.create_string_buffer(str(path).encode())
    fd = _bpf(7, struct.pack("<QII", ctypes.addressof(p), 0, 0))  # OBJ_GET
    keys = []
    try:
        prev = None
        nxt = ctypes.create_string_buffer(key_size)
        while True:
            pk = ctypes.create_string_buffer(prev, key_size) if prev else None
            try:
                _bpf(4, struct.pack("<IIQQQ", fd, 0,
                                    ctypes.addressof(pk) if pk else 0,
                                    ctypes.addressof(nxt), 0))  # GET_NEXT_KEY
            except OSError as e:
                if e.errno == 2:
                    return keys
                raise
            prev = nxt.raw
            keys.append(prev)
    finally:
        os.close(fd)


def map_delete(path, key):
    import ctypes
    p = ctypes.create_string_buffer(str(path).encode())
    fd = _bpf(7, struct.pack("<QII", ctypes.addressof(p), 0, 0))  # OBJ_GET
    try:
        kb = ctypes.create_string_buffer(key, len(key))
        _bpf(3, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(kb), 0, 0))
    finally:
        os.close(fd)


def busy_state(key):
    """A cert_buckets value (struct mtlsgw_state) for KEY with one open
    connection: never reclaimable."""
    return (struct.pack("<II", 0, 1) + bytes(64) + key +
            struct.pack("<II", 0, 0))


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
