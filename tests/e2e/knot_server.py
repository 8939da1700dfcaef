"""A real authoritative DNS server for tests and benchmarks: Knot (knotd
from Debian's package) on a free loopback port, one zone, a TSIG key that
may update and transfer it. Started and stopped by the caller; nothing
listens beyond 127.0.0.1."""

import base64
import os
import shutil
import socket
import subprocess
import time

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KnotServer:
    def __init__(self, directory, zone="preview.test", key_name="prevue-key", allow_transfer=True, journal_mode="robust"):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)
        self.zone = zone
        self.key_name = key_name
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.port = free_port()
        self.process = None
        actions = "[update, transfer]" if allow_transfer else "[update]"
        with open(os.path.join(self.dir, zone + ".zone"), "w", encoding="utf-8") as f:
            f.write(f"$ORIGIN {zone}.\n$TTL 60\n"
                    f"@ SOA ns.{zone}. admin.{zone}. 1 3600 600 86400 60\n"
                    f"@ NS ns.{zone}.\nns A 127.0.0.1\n"
                    f"elsewhere A 192.0.2.10\n")
        self.config = os.path.join(self.dir, "knot.conf")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(f"""server:
    rundir: "{self.dir}"
    listen: 127.0.0.1@{self.port}
    tcp-max-clients: 100
database:
    storage: "{self.dir}"
    journal-db-mode: {journal_mode}
log:
  - target: "{os.path.join(self.dir, 'knot.log')}"
    any: info
key:
  - id: {key_name}
    algorithm: hmac-sha256
    secret: {self.secret}
acl:
  - id: prevue
    key: {key_name}
    action: {actions}
template:
  - id: default
    storage: "{self.dir}"
    zonefile-sync: -1
    journal-content: changes
zone:
  - domain: {zone}
    file: {zone}.zone
    acl: prevue
""")
        self.key_file = os.path.join(self.dir, "tsig.key")
        with open(self.key_file, "w", encoding="utf-8") as f:
            f.write(f'key "{key_name}" {{\n\talgorithm hmac-sha256;\n\tsecret "{self.secret}";\n}};\n')

    def start(self):
        self.process = subprocess.Popen([KNOTD, "-c", self.config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("knotd exited: " + self.log())
            if self.dig("ns." + self.zone) == ["127.0.0.1"]:
                return self
            time.sleep(0.05)
        raise RuntimeError("knotd did not answer: " + self.log())

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "knot.log"), encoding="utf-8") as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def dig(self, name, rtype="A"):
        """The records the server answers for `name`, as kdig prints them (+short)."""
        out = subprocess.run(["kdig", "@127.0.0.1", "-p", str(self.port), "+short", "+norecurse", "+time=2", "+retry=0",
                              name, rtype], capture_output=True, text=True, timeout=20)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]

    def nsupdate(self, commands):
        """Changes behind prevue's back, with knsupdate and the same key."""
        script = f"server 127.0.0.1 {self.port}\nzone {self.zone}.\n" + "".join(c + "\n" for c in commands) + "send\nquit\n"
        subprocess.run(["knsupdate", "-y", f"hmac-sha256:{self.key_name}:{self.secret}"], input=script, text=True,
                       check=True, capture_output=True, timeout=20)
