# SPDX-License-Identifier: MIT
"""Debian's `openssl ocsp` as the OCSP responder of the intermediate CA,
for the revocation tests: its own copy of the intermediate's index (so a
test can revoke without touching the shared PKI), signed by the delegated
responder certificate ocsp.crt (EKU OCSPSigning) from gen-certs.sh, on a
free port. `openssl ocsp -port` takes a port number only and listens on
every address; the gateway is pointed at 127.0.0.1."""

import re
import subprocess
import time

from helpers import HOST, free_port

START_TIMEOUT = 10.0


def _serial(certs, name):
    out = subprocess.run(["openssl", "x509", "-in", str(certs.crt(name)), "-noout", "-serial"],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    return out.strip().split("=")[1].upper()


def write_index(certs, path, revoked=()):
    """The intermediate's openssl-ca index with the certificates named in
    REVOKED marked revoked (at a fixed past date)."""
    serials = {_serial(certs, n) for n in revoked}
    lines = []
    for line in (certs.dir / ".ca" / "intermediate" / "index.txt").read_text().splitlines():
        f = line.split("\t")
        if f[0] == "V" and f[3].upper() in serials:
            f[0], f[2] = "R", "260101000000Z"
        lines.append("\t".join(f))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


class OcspResponder:
    def __init__(self, certs, workdir, revoked=("client2",), next_update_min=5, signer="ocsp"):
        self.certs = certs
        self.signer = signer
        self.dir = workdir
        self.index = workdir / "ocsp-index.txt"
        self.log = workdir / "ocsp-responder.log"
        self.next_update_min = next_update_min
        self.proc = None
        self.port = None
        write_index(certs, self.index, revoked)

    @property
    def url(self):
        return f"http://{HOST}:{self.port}/"

    def revoke(self, *names):
        write_index(self.certs, self.index, names)

    def requests(self):
        """POSTs the responder received so far."""
        try:
            return len(re.findall(r"Received request", self.log.read_text(errors="replace")))
        except FileNotFoundError:
            return 0

    def start(self, port=None):
        for _ in range(3):
            self.port = port or free_port()
            cmd = ["openssl", "ocsp", "-index", str(self.index), "-port", str(self.port),
                   "-rsigner", str(self.certs.crt(self.signer)),
                   "-rkey", str(self.certs.key(self.signer)),
                   "-CA", str(self.certs.dir / "intermediate.crt"), "-ignore_err"]
            if self.next_update_min:
                cmd += ["-nmin", str(self.next_update_min)]
            self._out = open(self.log, "ab")
            self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + START_TIMEOUT
            # No probe connection: one that closes without a request
            # wedges openssl ocsp (3.0) for good. Its log says when it
            # listens.
            while time.monotonic() < deadline and self.proc.poll() is None:
                if re.search(rf"ACCEPT \S*:{self.port} PID={self.proc.pid}",
                             self.log.read_text(errors="replace")):
                    return self
                time.sleep(0.05)
            self.stop()
            if port:
                break
        raise RuntimeError(f"openssl ocsp did not start: {self.log.read_text(errors='replace')}")

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
            self._out.close()
