# SPDX-License-Identifier: MIT
"""The real gateway on kTLS, in the VM (run by test_gateway_ktls.sh).

Starts build/mtlsgw with `ktls = on` (certificates from gen-certs.sh, a
served root with 1 KB, 1 MB and 50 MB files, and a /echo location proxied
to tests/integration/upstream_server.py, which answers with the sha256 of
the body it received: the 5 MB POST that exercises the gateway's RX path).

For TLS 1.2 and 1.3, each with AES-128-GCM, AES-256-GCM and
ChaCha20-Poly1305 (curl picks the cipher; the gateway offers all three):
  - keep-alive: one connection downloads 1 KB, 1 MB, 50 MB (byte-exact by
    sha256) and /protected with a client certificate (200)
  - a 5 MB POST through the RX path, byte-exact at the upstream
  - /protected without a client certificate: 403
and for each connection: /proc/net/tls_stat shows one new TX and one new
RX software context, and the access log says data_path "ktls" with the
TLS version and cipher asked for. Then a resumed session per version (same
identity, still kTLS), a client that sends close_notify, a TLS 1.3
KeyUpdate (ends that connection only), and the same transfers with
`ktls = off` on the userspace relay with no kernel contexts.

Prints "VMTEST: PASS name" / "VMTEST: FAIL name: why" lines.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / os.environ.get("VMTEST_BUILD", "build")
BIN = Path(os.environ.get("MTLSGW_BIN", BUILD / "mtlsgw"))
WORK = Path(os.environ.get("VM_WORK", "/tmp/vmtest")) / "gateway"
PYTHON = "/usr/bin/python3"
MB = 1 << 20

TLS12 = {"AES128-GCM": "ECDHE-ECDSA-AES128-GCM-SHA256",
         "AES256-GCM": "ECDHE-ECDSA-AES256-GCM-SHA384",
         "CHACHA20": "ECDHE-ECDSA-CHACHA20-POLY1305"}
TLS13 = {"AES128-GCM": "TLS_AES_128_GCM_SHA256",
         "AES256-GCM": "TLS_AES_256_GCM_SHA384",
         "CHACHA20": "TLS_CHACHA20_POLY1305_SHA256"}

failures = 0


def result(name, ok, why=""):
    global failures
    if ok:
        print("VMTEST: PASS %s" % name, flush=True)
    else:
        failures += 1
        print("VMTEST: FAIL %s: %s" % (name, why), flush=True)
    return ok


def note(msg):
    print("  " + msg, flush=True)


def tls_snap():
    stat = {}
    try:
        with open("/proc/net/tls_stat") as f:
            for line in f:
                k, v = line.split()
                stat[k] = int(v)
    except OSError:
        pass
    return stat.get("TlsTxSw", 0), stat.get("TlsRxSw", 0)


class Delta:
    """TX/RX software kTLS contexts created while the block ran."""

    def __enter__(self):
        self.before = tls_snap()
        return self

    def __exit__(self, *exc):
        after = tls_snap()
        self.tx = after[0] - self.before[0]
        self.rx = after[1] - self.before[1]
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Under emulation coreutils' sha256sum is several times faster than
# hashlib (OpenSSL's SHA extensions are emulated instruction by instruction).
def sha_file(path):
    p = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True,
                       timeout=300)
    return p.stdout.split()[0] if p.returncode == 0 else "sha256sum failed"


def random_file(path, size):
    with open(path, "wb") as f:
        subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=f,
                       check=True, timeout=300)
    return sha_file(path)


class Gateway:
    def __init__(self, name, port, text):
        self.dir = WORK / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.conf = self.dir / "mtlsgw.conf"
        self.conf.write_text(text)
        self.access_log = self.dir / "access.log"
        self.err_path = self.dir / "stderr.log"
        self.proc = None
        self.seen = 0  # access-log lines already looked at

    def start(self):
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([str(BIN), "-c", str(self.conf)],
                                     stdout=self.err, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mtlsgw exited %d at start:\n%s"
                                   % (self.proc.returncode, self.stderr()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("mtlsgw not listening:\n" + self.stderr())
        # The probe connection above counts as a (failed) handshake; let it
        # finish before tests measure anything.
        time.sleep(0.5)
        return self

    def started(self, tag):
        """start(); False, reported as failed result TAG, if it did not."""
        try:
            self.start()
        except RuntimeError as e:
            result(tag, False, str(e)[-800:])
            return False
        return True

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def new_access(self):
        """Access-log entries written since the last call."""
        try:
            lines = self.access_log.read_text().splitlines()
        except OSError:
            return []
        out = [json.loads(x) for x in lines[self.seen:] if x.strip()]
        self.seen = len(lines)
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode if self.proc else None


def wait_listening(port, timeout=60.0):
    """The upstream is a Python process: under TCG it can take seconds to
    listen, and the first proxied request must not race it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("upstream on port %d never listened" % port)


def config(certs, root, port, upstream_port, ktls, access_log):
    return f"""[server]
listen = 127.0.0.1:{port}
workers = 2
access_log = {access_log}
max_body_size = 16m

[tls]
cert = {certs}/server.crt
key = {certs}/server.key
client_ca = {certs}/client-ca.pem
crl = {certs}/crl.pem
verify_depth = 2
min_version = 1.2
ktls = {ktls}

[location /]
root = {root}

[location /protected]
client_cert = require
root = {root}

[location /health]
return = 200 ok

[location /metrics]
metrics = yes

[location /echo]
proxy_pass = http://127.0.0.1:{upstream_port}/

; eBPF limits are another suite's subject; keep this one about kTLS.
[bpf]
mode = off
"""


class Curl:
    def __init__(self, certs, port):
        self.certs = certs
        self.port = port

    def args(self, version, cipher, cert=True):
        a = ["curl", "-sS", "--cacert", f"{self.certs}/ca.crt",
             "--max-time", "300"]
        if cert:
            a += ["--cert", f"{self.certs}/client1.crt",
                  "--key", f"{self.certs}/client1.key"]
        if version == "1.2":
            a += ["--tlsv1.2", "--tls-max", "1.2", "--ciphers", TLS12[cipher]]
        else:
            a += ["--tlsv1.3", "--tls-max", "1.3", "--tls13-ciphers", TLS13[cipher]]
        return a

    def url(self, path):
        return f"https://localhost:{self.port}{path}"

    def run(self, args, timeout=320):
        p = subprocess.run(args, capture_output=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def check_access(name, entries, n, version, cipher_name, path="ktls"):
    """N entries, each on PATH, with the version and cipher asked for."""
    want_v = "TLSv" + version
    bad = [e for e in entries
           if e.get("data_path") != path or e.get("tls_version") != want_v
           or (cipher_name and e.get("cipher") != cipher_name)]
    if len(entries) != n or bad:
        return result(name, False, "want %d entries on %s %s %s, got %s"
                      % (n, path, want_v, cipher_name,
                         json.dumps(entries)[:600]))
    return result(name, True)


def check_delta(name, d, tx, rx):
    return result(name, d.tx == tx and d.rx == rx,
                  "TlsTxSw +%d, TlsRxSw +%d; want +%d, +%d" % (d.tx, d.rx, tx, rx))


def matrix(gw, curl, files, root, post_file, post_sha):
    # VMTEST_GW_MATRIX="1.3-AES128-GCM ..." runs a subset (development).
    only = os.environ.get("VMTEST_GW_MATRIX", "").split()
    for version in ("1.2", "1.3"):
        for cipher in ("AES128-GCM", "AES256-GCM", "CHACHA20"):
            if only and "%s-%s" % (version, cipher) not in only:
                continue
            cname = (TLS12 if version == "1.2" else TLS13)[cipher]
            tag = "gw-tls%s-%s" % (version, cipher)
            t0 = time.monotonic()
            # keep-alive: four requests on one connection
            outs = [WORK / ("dl-" + n) for n in ("1k", "1m", "50m", "prot")]
            args = curl.args(version, cipher) + [
                "-w", "%{http_code} %{num_connects}\\n"]
            for n, out in zip(("f1k", "f1m", "f50m"), outs):
                args += ["-o", str(out), curl.url("/" + n)]
            args += ["-o", str(outs[3]), curl.url("/protected/secret.txt")]
            with Delta() as d:
                rc, so, se = curl.run(args)
            lines = so.decode().split()
            codes, conns = lines[0::2], [int(x) for x in lines[1::2]]
            result(tag + "-keepalive-one-connection",
                   rc == 0 and codes == ["200"] * 4 and sum(conns) == 1,
                   "curl rc %d, codes %s, connects %s: %s" % (rc, codes, conns, se[-300:]))
            for (n, size), out in zip((("f1k", "1KB"), ("f1m", "1MB"), ("f50m", "50MB")), outs):
                got = sha_file(out) if out.exists() else "missing"
                result("%s-download-%s-byte-exact" % (tag, size), got == files[n],
                       "sha256 %s, want %s" % (got, files[n]))
            prot = outs[3].read_bytes() if outs[3].exists() else b""
            result(tag + "-protected-200-with-cert", prot == (root / "protected" / "secret.txt").read_bytes(),
                   "body %r" % prot[:80])
            for out in outs:
                if out.exists():
                    out.unlink()
            check_delta(tag + "-keepalive-tls_stat", d, 1, 1)
            check_access(tag + "-keepalive-access-log-ktls", gw.new_access(), 4, version, cname)

            # 5 MB POST: the gateway reads it from the kTLS socket (RX).
            with Delta() as d:
                rc, so, se = curl.run(curl.args(version, cipher) + [
                    "-H", "Content-Type: application/octet-stream",
                    "--data-binary", "@" + str(post_file), curl.url("/echo/upload")])
            try:
                echo = json.loads(so)
            except ValueError:
                echo = {}
            result(tag + "-post-5MB-byte-exact",
                   rc == 0 and echo.get("body_sha256") == post_sha and echo.get("body_len") == 5 * MB,
                   "curl rc %d, upstream saw %s bytes sha %s: %s"
                   % (rc, echo.get("body_len"), echo.get("body_sha256"),
                      (so[:200] + se[-200:].encode())) + "\n" + gw.stderr()[-800:])
            check_delta(tag + "-post-tls_stat", d, 1, 1)
            entries = gw.new_access()
            check_access(tag + "-post-access-log-ktls", entries, 1, version, cname)

            # /protected without a certificate: 403, still on kTLS.
            with Delta() as d:
                rc, so, se = curl.run(curl.args(version, cipher, cert=False) + [
                    "-o", "/dev/null", "-w", "%{http_code}", curl.url("/protected/secret.txt")])
            result(tag + "-protected-403-without-cert", rc == 0 and so == b"403",
                   "curl rc %d, status %r: %s" % (rc, so, se[-200:]))
            check_delta(tag + "-403-tls_stat", d, 1, 1)
            check_access(tag + "-403-access-log-ktls", gw.new_access(), 1, version, cname)
            note("%s: %.1fs" % (tag, time.monotonic() - t0))


def s_client(certs, port, version, request, sess_in=None, sess_out=None, timeout=60):
    args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-servername", "localhost", "-CAfile", f"{certs}/ca.crt",
            "-cert", f"{certs}/client1.crt", "-key", f"{certs}/client1.key",
            "-tls1_3" if version == "1.3" else "-tls1_2", "-ign_eof"]
    if sess_in:
        args += ["-sess_in", str(sess_in)]
    if sess_out:
        args += ["-sess_out", str(sess_out)]
    p = subprocess.run(args, input=request, capture_output=True, timeout=timeout)
    return p.stdout.decode(errors="replace")


def resumption(gw, certs, port):
    req = (b"GET /protected/secret.txt HTTP/1.1\r\nHost: localhost\r\n"
           b"Connection: close\r\n\r\n")
    for version in ("1.2", "1.3"):
        tag = "gw-tls%s-resumed-session" % version
        sess = WORK / ("sess-%s.pem" % version)
        with Delta() as d:
            out1 = s_client(certs, port, version, req, sess_out=sess)
            out2 = s_client(certs, port, version, req, sess_in=sess)
        entries = gw.new_access()
        ok = ("HTTP/1.1 200" in out1 and "HTTP/1.1 200" in out2
              and "Reused," in out2 and len(entries) == 2
              and entries[1].get("tls_resumed") is True
              and all(e.get("data_path") == "ktls" for e in entries)
              and entries[1].get("fingerprint")
              and entries[1].get("fingerprint") == entries[0].get("fingerprint"))
        result(tag + "-keeps-identity-on-ktls", ok,
               "second connection reused=%s; access log %s"
               % ("Reused," in out2, json.dumps(entries)[:600]))
        check_delta(tag + "-tls_stat", d, 2, 2)


def metric(port, certs, name):
    p = subprocess.run(["curl", "-sS", "--cacert", f"{certs}/ca.crt",
                        "https://localhost:%d/metrics" % port],
                       capture_output=True, timeout=60)
    for line in p.stdout.decode(errors="replace").splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def close_notify_and_keyupdate(gw, certs, port):
    # curl ends its connection with close_notify: under kTLS RX that is a
    # non-data record (recv fails with EIO); the gateway must just close.
    tag = "gw-close-notify"
    rc = subprocess.run(["curl", "-sS", "--cacert", f"{certs}/ca.crt", "-o", "/dev/null",
                         "--tlsv1.3", "https://localhost:%d/health" % port],
                        capture_output=True, timeout=60).returncode
    time.sleep(0.5)
    alive = gw.proc.poll() is None
    rc2 = subprocess.run(["curl", "-sS", "--cacert", f"{certs}/ca.crt", "-o", "/dev/null",
                          "https://localhost:%d/health" % port],
                         capture_output=True, timeout=60).returncode
    result(tag + "-then-still-serving", rc == 0 and alive and rc2 == 0,
           "curl %d, alive %s, next curl %d" % (rc, alive, rc2))
    gw.new_access()

    # TLS 1.3 KeyUpdate from the client: the kernel cannot hand MHD the
    # new key, so the connection ends; the gateway keeps serving.
    tag = "gw-tls1.3-keyupdate"
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-servername", "localhost", "-CAfile", f"{certs}/ca.crt",
                          "-tls1_3"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    steps = [(4, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"),
             (3, b"k\n"),  # s_client: send a KeyUpdate (TLS 1.3)
             (3, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"),
             (3, None)]
    for wait, data in steps:
        time.sleep(wait)
        if data is None or p.poll() is not None:
            break
        try:
            p.stdin.write(data)
            p.stdin.flush()
        except OSError:
            break  # s_client is gone: the connection was closed
    try:
        out = p.communicate(timeout=30)[0].decode(errors="replace")
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        p.kill()
        out = "s_client: %s" % e
    answers = out.count("HTTP/1.1 200")
    if answers != 1:
        note("s_client output: " + out[-1500:].replace("\n", "\n    "))
    alive = gw.proc.poll() is None
    rc2 = subprocess.run(["curl", "-sS", "--cacert", f"{certs}/ca.crt", "-o", "/dev/null",
                          "https://localhost:%d/health" % port],
                         capture_output=True, timeout=60).returncode
    result(tag + "-ends-connection-only", answers == 1 and alive and rc2 == 0,
           "answers before/after KeyUpdate: %d (want 1), alive %s, next curl %d"
           % (answers, alive, rc2))
    logged = [x for x in gw.stderr().splitlines()
              if "[warn]" in x and "keyupdate" in x.lower()]
    result(tag + "-logged-warn", bool(logged), "no warning names the KeyUpdate")
    n = metric(port, certs, "mtlsgw_ktls_key_update_closes_total")
    result(tag + "-counted", n is not None and n >= 1,
           "mtlsgw_ktls_key_update_closes_total = %s" % n)
    gw.new_access()


def userspace(certs, root, files, post_file, post_sha, upstream_port):
    port = free_port()
    gw = Gateway("off", port, config(certs, root, port, upstream_port, "off",
                                     WORK / "off" / "access.log"))
    if not gw.started("gw-ktls-off-starts"):
        return
    curl = Curl(certs, port)
    for version in ("1.2", "1.3"):
        tag = "gw-ktls-off-tls%s" % version
        out = WORK / "dl-off"
        with Delta() as d:
            rc, so, se = curl.run(curl.args(version, "AES128-GCM") + [
                "-o", str(out), curl.url("/f1m")])
            rc2, so2, _ = curl.run(curl.args(version, "AES128-GCM") + [
                "--data-binary", "@" + str(post_file), curl.url("/echo/upload")])
            rc3, so3, _ = curl.run(curl.args(version, "AES128-GCM") + [
                "-o", "/dev/null", "-w", "%{http_code}", curl.url("/protected/secret.txt")])
            rc4, so4, _ = curl.run(curl.args(version, "AES128-GCM", cert=False) + [
                "-o", "/dev/null", "-w", "%{http_code}", curl.url("/protected/secret.txt")])
        try:
            echo = json.loads(so2)
        except ValueError:
            echo = {}
        got = sha_file(out) if out.exists() else "missing"
        ok = (rc == 0 and got == files["f1m"] and rc2 == 0
              and echo.get("body_sha256") == post_sha and so3 == b"200" and so4 == b"403")
        result(tag + "-relay-transfers", ok,
               "download sha ok %s, post sha ok %s, protected %r/%r"
               % (got == files["f1m"], echo.get("body_sha256") == post_sha, so3, so4))
        check_delta(tag + "-no-kernel-contexts", d, 0, 0)
        entries = gw.new_access()
        check_access(tag + "-access-log-userspace", entries, 4, version, None, path="userspace")
        if out.exists():
            out.unlink()
    line = [x for x in gw.stderr().splitlines() if "kTLS" in x or "ktls" in x]
    note("ktls = off start-up: %s" % (line[0] if line else "(no kTLS line)"))
    result("gw-ktls-off-exits-0", gw.stop() == 0, "exit code not 0:\n" + gw.stderr()[-500:])


def main():
    if not BIN.exists():
        result("gw-binary", False, "%s missing" % BIN)
        return 0
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    t0 = time.monotonic()
    # scripts/vm-test.sh makes them on the host (39 s here under emulation).
    certs = Path(os.environ.get("VMTEST_CERTS", WORK / "certs"))
    if not (certs / "client1.crt").exists():
        p = subprocess.run([str(REPO / "scripts" / "gen-certs.sh"), str(certs)],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            result("gw-certs", False, p.stdout[-300:] + p.stderr[-300:])
            return 0
    root = WORK / "root"
    (root / "protected").mkdir(parents=True)
    (root / "protected" / "secret.txt").write_text("protected content\n")
    files = {"f1k": random_file(root / "f1k", 1024),
             "f1m": random_file(root / "f1m", MB),
             "f50m": random_file(root / "f50m", 50 * MB)}
    post_file = WORK / "post5m"
    post_sha = random_file(post_file, 5 * MB)
    note("setup (certificates, files): %.1fs" % (time.monotonic() - t0))

    up_port = free_port()
    upstream = subprocess.Popen([PYTHON, str(REPO / "tests/integration/upstream_server.py"),
                                 str(up_port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    wait_listening(up_port)
    port = free_port()
    gw = Gateway("on", port, config(certs, root, port, up_port, "on", WORK / "on" / "access.log"))
    try:
        if not gw.started("gw-starts-with-ktls-on"):
            return 0
        line = [x for x in gw.stderr().splitlines() if "kTLS available" in x]
        result("gw-logs-ktls-available", bool(line) and "AES-128-GCM" in line[0]
               and "AES-256-GCM" in line[0],
               "start-up log:\n" + gw.stderr()[-500:])
        if line:
            note(line[0])
        gw.new_access()
        curl = Curl(certs, port)
        matrix(gw, curl, files, root, post_file, post_sha)
        resumption(gw, certs, port)
        close_notify_and_keyupdate(gw, certs, port)
        result("gw-ktls-on-exits-0", gw.stop() == 0, "exit code not 0:\n" + gw.stderr()[-500:])
        errors = [x for x in gw.stderr().splitlines() if " error" in x.lower()[:40]]
        if errors:
            note("error lines in the gateway log: %s" % errors[:5])
        userspace(certs, root, files, post_file, post_sha, up_port)
    finally:
        gw.stop()
        upstream.kill()
        upstream.wait()
    note("gateway tests: %.1fs" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
