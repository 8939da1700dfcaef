"""Helpers for end-to-end tests: they drive the built `prevue` binary the way
a user would, against real git repositories made here, real processes and
real HTTP. Nothing goes through a shell."""

import json
import os
import re
import signal
import socket
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

PREVUE = os.environ.get("PREVUE_BIN", "prevue")
PROVIDER_DIR = os.environ.get("PREVUE_PROVIDER_DIR", "")
TEMPLATE_DIR = os.environ["PREVUE_TEMPLATE_DIR"]
GIT_IDENTITY = ["-c", "user.name=prevue-e2e", "-c", "user.email=e2e@prevue.invalid", "-c", "commit.gpgsign=false"]


def git(repo, *args):
    out = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise AssertionError(f"git {args} failed: {out.stderr}")
    return out.stdout.strip()


def make_template_repo(parent):
    """A repository holding the reference application on branch main."""
    repo = os.path.join(parent, "app-repo")
    shutil.copytree(TEMPLATE_DIR, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "reference app")
    return repo


ECHO_UPSTREAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echo-upstream")


def make_echo_repo(parent):
    """A repository holding the echo upstream (echo-upstream/) on main, and a
    branch `pr` one commit ahead: its preview is PR 1."""
    repo = os.path.join(parent, "echo")
    shutil.copytree(ECHO_UPSTREAM, repo)
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "echo upstream")
    git(repo, "checkout", "-q", "-b", "pr")
    git(repo, "commit", "-q", "--allow-empty", "-m", "the pull request")
    git(repo, "checkout", "-q", "main")
    return repo


def edit(repo, rel, old, new):
    path = os.path.join(repo, rel)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert old in text, f"{old!r} not in {rel}"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))


def slow_web_start(repo, seconds=3):
    """Makes the reference app's web service wait before it listens, as real apps do (not committed)."""
    edit(repo, "web/server.py", "def main():\n", f"def main():\n    import time; time.sleep({seconds})\n")


def set_banner(repo, banner):
    """Changes what the reference app's page prints (only the web service's files)."""
    path = os.path.join(repo, "web", "server.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r'VERSION_BANNER = "[^"]*"', f'VERSION_BANNER = "{banner}"', text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write(repo, rel, content):
    path = os.path.join(repo, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)


def set_web_build(repo, argv):
    """The reference app's web service builds with `argv` (a build the test controls)."""
    path = os.path.join(repo, "prevue.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["services"]["web"]["build"] = argv
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)


def commit_all(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def http_get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rindex(")") + 2]
    return state not in ("Z", "X")


def processes_mentioning(text, cwd_under=None):
    """(pid, cmdline) of live processes whose command line mentions `text`,
    or whose working directory is under `cwd_under`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            cwd = os.readlink(f"/proc/{pid}/cwd") + "/" if cwd_under else ""
        except OSError:
            continue
        if (text in cmdline or (cwd_under and cwd.startswith(cwd_under))) and process_alive(int(pid)):
            found.append((int(pid), cmdline))
    return found


def local_record(env_dir):
    """The local provider's record of an environment: <state>/providers/local/<slug>/local.json."""
    state_dir = os.path.dirname(os.path.dirname(env_dir))
    return os.path.join(state_dir, "providers", "local", os.path.basename(env_dir), "local.json")


def service_pids(env_dir):
    """pid of each service, from the local provider's record."""
    with open(local_record(env_dir), encoding="utf-8") as f:
        record = json.load(f)
    return {name: s["pid"] for name, s in record["services"].items()}


def page_items(page):
    return re.findall(r"<li data-id='\d+'>([^<]*)</li>", page)


SEEDED_ITEMS = [
    "Snapshot row: Ada",
    "Snapshot row: Grace",
    "Snapshot row: Linus",
    "Seeded by SQL: Margaret",
    "Seeded by SQL: Barbara",
]


class PrevueTestCase(unittest.TestCase):
    """Each test gets a scratch directory with a state dir; whatever
    environments it leaves are torn down afterwards."""

    def setUp(self):
        self.scratch = tempfile.mkdtemp(prefix="prevue-e2e-")
        self.state_dir = os.path.join(self.scratch, "state")
        self.provider_dir = PROVIDER_DIR  # a test may point it at a directory with more providers

    def tearDown(self):
        if getattr(self, "daemon", None):  # a test's running daemon (self.daemon) stops first
            self.daemon.stop()
        # Every state directory the test used, its daemons' included:
        # environments outlive a stopped daemon by design.
        for directory, _, files in os.walk(self.scratch):
            if "prevue.db" not in files or "/envs/" in directory + "/":
                continue
            listing = self.prevue("ls", "--json", check=False, state_dir=directory)
            if listing.returncode == 0:
                for env in json.loads(listing.stdout):
                    self.prevue("down", env["slug"], check=False, state_dir=directory)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def prevue(self, *args, check=True, cwd=None, timeout=300, state_dir=None):
        cmd = [PREVUE, "--state-dir", state_dir or self.state_dir]
        provider_dir = getattr(self, "provider_dir", PROVIDER_DIR)
        if provider_dir:
            cmd += ["--provider-dir", provider_dir]
        out = subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=cwd or self.scratch,
                             timeout=timeout, check=False)
        if check and out.returncode != 0:
            raise AssertionError(f"prevue {args} exited {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}")
        return out

    def up(self, repo, pr, ref):
        out = self.prevue("up", "--repo", repo, "--pr", str(pr), "--ref", ref, "--json", check=False)
        return json.loads(out.stdout), out

    def environments(self, all_states=False):
        args = ["ls", "--json"] + (["--all"] if all_states else [])
        return {e["slug"]: e for e in json.loads(self.prevue(*args).stdout)}

    # For tests with a repository in self.repo.

    def repo_from_template(self, template, name):
        """self.repo: `template` (a directory of templates/) committed on main, as a team's
        repository, its lease grace 0s so that a merged preview goes at once."""
        self.repo = os.path.join(self.scratch, name)
        shutil.copytree(template, self.repo)
        self.set_manifest(lambda m: m["lease"].update({"grace": "0s"}))
        git(self.repo, "init", "-q", "-b", "main")
        commit_all(self.repo, os.path.basename(template))
        return self.repo

    def commit_on(self, branch, change, message, new_branch=True):
        """`change()` committed on `branch` (made from the current branch when new); back on main; the commit's id."""
        git(self.repo, "checkout", "-q", *(["-b", branch] if new_branch else [branch]))
        change()
        sha = commit_all(self.repo, message)
        git(self.repo, "checkout", "-q", "main")
        return sha

    def set_manifest(self, change):
        """prevue.json of self.repo rewritten by `change(manifest)` (not committed)."""
        path = os.path.join(self.repo, "prevue.json")
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
        change(manifest)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)


class Daemon:
    """A real `prevue serve` process with its own config and state."""

    def __init__(self, scratch, repos, lease=None, extra=None, name="daemon"):
        self.dir = os.path.join(scratch, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state_dir = os.path.join(self.dir, "state")
        self.token = "e2e-token"
        config = {
            "state_dir": self.state_dir,
            "api": {"listen": "127.0.0.1:0", "token": self.token},
            "proxy": {"listen": "127.0.0.1:0", "wake_timeout": "30s"},
            "repositories": [{"url": r, "base": "main", "poll_interval": "300ms"} for r in repos],
            "scheduler": {"reconcile_interval": "2s", "activity_flush": "300ms"},
            # Previews open as the public's (the default with a token is `login`);
            # the access control suites say otherwise in `extra`.
            "access": {"mode": "public"},
        }
        if PROVIDER_DIR:
            config["provider_dir"] = PROVIDER_DIR
        if lease:
            config["lease"] = lease
        if extra:
            config.update(extra)
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        self.process = None
        self.log_path = os.path.join(self.dir, "serve.log")
        self.descriptor_limit = None  # RLIMIT_NOFILE (soft and hard) for the daemon, when set
        self.serve_args = []  # more arguments for `prevue serve`

    def start(self):
        serve_json = os.path.join(self.state_dir, "serve.json")
        if os.path.exists(serve_json):
            os.remove(serve_json)
        self.log = open(self.log_path, "a", encoding="utf-8")
        limit = self.descriptor_limit

        def lower_descriptor_limit():
            import resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.process = subprocess.Popen([PREVUE, "serve", "--config", self.config_path, *self.serve_args], stdout=self.log, stderr=self.log,
                                        preexec_fn=lower_descriptor_limit if limit else None)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prevue serve exited {self.process.returncode}: {self.read_log()}")
            try:
                with open(serve_json, encoding="utf-8") as f:
                    info = json.load(f)
                if info.get("pid") == self.process.pid:
                    self.api = info["api"]
                    self.proxy_port = info["proxy_port"]
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("prevue serve did not start: " + self.read_log())

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        code = self.process.returncode if self.process else None
        self.process = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        # In a sanitized build a report (a leak found at exit, an error) is a failure, whatever the test checked.
        log = self.read_log()
        if "Sanitizer" in log and "ERROR:" in log[log.index("Sanitizer") - 200:]:
            raise AssertionError("prevue serve reported a sanitizer error:\n" + log[log.index("Sanitizer") - 200:][:6000])
        return code

    def read_log(self):
        try:
            with open(self.log_path, encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    def api_call(self, method, path, body=None, token=True):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api + path, data=data, method=method)
        if token:
            request.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                text = reply.read().decode()
                return reply.status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text.strip().startswith(("{", "[")) else text)

    def environments(self):
        status, envs = self.api_call("GET", "/api/v1/environments")
        assert status == 200, envs
        return envs

    def environment(self, slug):
        status, env = self.api_call("GET", "/api/v1/environments/" + slug)
        return env if status == 200 else None

    def wait_for(self, predicate, what, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last={last!r}\n--- daemon log ---\n{self.read_log()[-4000:]}")

    def wait_env(self, pr, state, commit=None, timeout=60, fail_fast=False):
        """With fail_fast, a build of `commit` that failed ends the wait at
        once (for slow builds, where waiting out the timeout tells nothing)."""
        def check():
            for env in self.environments():
                if env["pr"] == pr and env["state"] == state and (commit is None or env["deployed_commit"] == commit):
                    return env
                if fail_fast and env["pr"] == pr and env["state"] == "failed" and env["commit"] == commit:
                    raise AssertionError(f"PR {pr} failed at {commit}: {env.get('failed_step')}: {env.get('error')}")
            return None
        return self.wait_for(check, f"PR {pr} {state} at {commit}", timeout)

    def wait_gone(self, slug, timeout=60):
        return self.wait_for(lambda: all(e["slug"] != slug for e in self.environments()), f"{slug} destroyed", timeout)

    def get(self, host, path="/", timeout=30):
        """A request through the proxy, by Host header, as a browser would send it."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.proxy_port}{path}", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return reply.status, reply.read().decode("utf-8", "replace"), dict(reply.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)

    def hosts_file(self):
        try:
            with open(os.path.join(self.state_dir, "hosts"), encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""


def set_lease(repo, lease):
    """Rewrites the reference manifest's lease block and commits on the current branch."""
    path = os.path.join(repo, "prevue.json")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["lease"] = lease
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    return commit_all(repo, "lease for the test")


def primary_host(env):
    return env["url"].split("//", 1)[1].split(":", 1)[0]


WEBHOOK_FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "webhooks")


def webhook_fixture(name):
    """A webhook payload from tests/fixtures/webhooks (prevue's own, shaped as the host documents it), parsed."""
    with open(os.path.join(WEBHOOK_FIXTURES, name), encoding="utf-8") as f:
        return json.load(f)


def wait_until(predicate, what, timeout=60):
    """The predicate's first true value, polled every 0.1 s for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


class Registry:
    """Debian's docker-registry on a loopback port (a free one unless given), storing in the test's scratch directory."""

    def __init__(self, scratch, port=0):
        binary = shutil.which("docker-registry")
        if not binary:
            raise unittest.SkipTest("docker-registry is not installed (scripts/setup.sh installs it)")
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        root = os.path.join(scratch, "registry")
        os.makedirs(root)
        config = os.path.join(root, "config.yml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\nhttp:\n  addr: {self.address}\n")
        self.log = open(os.path.join(root, "registry.log"), "w", encoding="utf-8")
        self.process = subprocess.Popen([binary, "serve", config], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("docker-registry did not start: " + open(self.log.name, encoding="utf-8").read())
                time.sleep(0.05)

    def catalog(self):
        with urllib.request.urlopen(f"http://{self.address}/v2/_catalog", timeout=10) as reply:
            return json.load(reply)["repositories"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin():
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin), or None."""
    root = "/usr/lib/postgresql"
    versions = sorted((d for d in os.listdir(root) if d.isdigit()), key=int) if os.path.isdir(root) else []
    for version in reversed(versions):
        if os.path.exists(os.path.join(root, version, "bin", "initdb")):
            return os.path.join(root, version, "bin")
    return None


class PostgresServer:
    """A PostgreSQL cluster of a test's own: initdb'd in a fresh directory,
    listening on 127.0.0.1 only (a free port) and on a socket there, a
    superuser `postgres` with a password over TCP; stop() removes it all.
    As root, the server runs as Debian's `postgres` user (it refuses root)."""

    PASSWORD = "prevue-admin"

    def __init__(self):
        self.bin = postgres_bin()
        if not self.bin:
            raise unittest.SkipTest("PostgreSQL is not installed (scripts/setup.sh installs it)")
        self.dir = tempfile.mkdtemp(prefix="prevue-pg-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        password_file = os.path.join(self.dir, "password")
        with open(password_file, "w", encoding="utf-8") as f:
            f.write(self.PASSWORD + "\n")
        if self.as_user:
            shutil.chown(password_file, "postgres", "postgres")
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  "--pwfile=" + password_file, "--no-sync")
        with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="utf-8") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nmax_connections = 200\n")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "60", "start")
        self.admin_url = f"postgres://postgres:{self.PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, tool, *args):
        out = subprocess.run(self.as_user + [os.path.join(self.bin, tool), *args], capture_output=True, text=True, timeout=120,
                             cwd=self.dir, check=False)
        if out.returncode != 0:
            raise AssertionError(f"{tool} failed: {out.stdout}{out.stderr}")
        return out

    def psql(self, sql, database="postgres"):
        """Runs `sql` as the superuser; the rows, one per line, columns joined by |."""
        out = subprocess.run(["psql", "--no-psqlrc", "-At", "-v", "ON_ERROR_STOP=1", "-d",
                              f"postgres://postgres:{self.PASSWORD}@127.0.0.1:{self.port}/{database}", "-c", sql],
                             capture_output=True, text=True, timeout=60, check=False)
        if out.returncode != 0:
            raise AssertionError(f"psql {sql!r} failed: {out.stderr}")
        return out.stdout.strip()

    def stop(self):
        subprocess.run(self.as_user + [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
