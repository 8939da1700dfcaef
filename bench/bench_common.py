"""What the Python benchmarks share: where the build is, a git repository
made from a template, `prevue serve` started on a config and stopped, and a
bounded wait."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("PREVUE_BUILD_DIR", os.path.join(ROOT, "build"))
PREVUE = os.environ.get("PREVUE_BIN", os.path.join(BUILD, "prevue"))
PROVIDERS = os.environ.get("PREVUE_PROVIDER_DIR", os.path.join(BUILD, "providers"))
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@prevue.invalid"]


def git(repo, *args):
    subprocess.run(GIT + ["-C", repo, *args], check=True, capture_output=True)


def until(predicate, what, timeout=60, poll=0.005):
    """The predicate's first true value; exits the benchmark after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    sys.exit(f"{os.path.basename(sys.argv[0])}: timed out waiting for {what}")


def make_repo(path, template):
    """A git repository at `path` holding `template` (a directory under ROOT) on main."""
    shutil.copytree(os.path.join(ROOT, template), path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", template)
    return path


def branch_with_commit(repo, name):
    """A branch with a commit of its own (one already in the base is a merged pull request)."""
    git(repo, "checkout", "-q", "-b", name, "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", name)
    git(repo, "checkout", "-q", "main")


class Serve:
    """`prevue serve` on `config` (written to <directory>/config.json), until stop()."""

    def __init__(self, directory, config):
        config.setdefault("provider_dir", PROVIDERS)
        self.state = config["state_dir"]
        self.config_path = os.path.join(directory, "config.json")
        self.log_path = os.path.join(directory, "serve.log")
        with open(self.config_path, "w") as f:
            json.dump(config, f)
        self.process = subprocess.Popen([PREVUE, "serve", "--config", self.config_path], stdout=subprocess.DEVNULL,
                                        stderr=open(self.log_path, "w"))
        serve_json = os.path.join(self.state, "serve.json")

        def started():
            if self.process.poll() is not None:
                sys.exit(f"prevue serve exited {self.process.returncode}; see {self.log_path}")
            return os.path.exists(serve_json) and json.load(open(serve_json))
        self.info = until(started, "prevue serve", timeout=30, poll=0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def get(port, host="127.0.0.1"):
    """GET / on a loopback port with that Host: (status, body); status 0 when nothing answers."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return 0, ""


def clean_up(daemon, scratch):
    """A benchmark leaves nothing: its daemon stopped, every environment in
    <scratch>/state torn down, the scratch directory removed."""
    if daemon:
        daemon.stop()
    state = os.path.join(scratch, "state")
    listing = subprocess.run([PREVUE, "--state-dir", state, "ls", "--json"], capture_output=True, text=True).stdout
    for env in json.loads(listing or "[]"):
        subprocess.run([PREVUE, "--state-dir", state, "--provider-dir", PROVIDERS, "down", env["slug"]], capture_output=True)
    shutil.rmtree(scratch, ignore_errors=True)


def no_grace(repo, manifest_path=None):
    """The repository's prevue.json (or `manifest_path`'s) with grace 0s, committed: a merge tears down at once."""
    with open(manifest_path or os.path.join(repo, "prevue.json")) as f:
        manifest = json.load(f)
    manifest["lease"]["grace"] = "0s"
    with open(os.path.join(repo, "prevue.json"), "w") as f:
        json.dump(manifest, f)
    git(repo, "commit", "-q", "-am", "no grace")


class WatchingServe(Serve):
    """`prevue serve` watching `repo` (polled only when told: announce())."""

    TOKEN = "bench"

    def __init__(self, scratch, repo, extra=None):
        self.state_dir = os.path.join(scratch, "state")
        super().__init__(scratch, {"state_dir": self.state_dir, "api": {"listen": "127.0.0.1:0", "token": self.TOKEN}, "access": {"mode": "public"},
                                   "proxy": {"listen": "127.0.0.1:0"},
                                   "repositories": [{"url": repo, "base": "main", "poll_interval": "1h"}], **(extra or {})})

    def announce(self):
        """What a push hook does: poll now."""
        request = urllib.request.Request(self.info["api"] + "/api/v1/repositories/poll", data=b"{}", method="POST",
                                         headers={"Authorization": "Bearer " + self.TOKEN})
        urllib.request.urlopen(request, timeout=5).read()

    def logs(self, slug):
        """`prevue logs SLUG`: the environment's last run, step by step."""
        return subprocess.run([PREVUE, "--state-dir", self.state_dir, "logs", slug], capture_output=True, text=True).stdout

    def environment(self, branch):
        """The environment of `branch`, as the API shows it (None before it exists)."""
        request = urllib.request.Request(self.info["api"] + "/api/v1/environments", headers={"Authorization": "Bearer " + self.TOKEN})
        with urllib.request.urlopen(request, timeout=5) as r:
            return next((e for e in json.load(r) if e["ref"] == branch), None)

    def preview(self, branch, marker, poll=0.05):
        """The environment of `branch` once its page answers 200 through the proxy with `marker` in it;
        when `marker` is a commit, a failed build of it ends the benchmark with its error."""
        def ready():
            env = self.environment(branch)
            if env and env["state"] == "failed" and env.get("commit") and marker in env["commit"]:
                sys.exit(f"{os.path.basename(sys.argv[0])}: the preview of {branch} failed: {env.get('error')}")
            if env and env["routes"]:
                status, page = get(self.info["proxy_port"], env["routes"][0]["host"])
                if status == 200 and marker in page:
                    return env
            return None
        return until(ready, f"the preview of {branch}", timeout=300, poll=poll)


def step_ms(log, step):
    """How long `step` took in a run's log (`== STEP [succeeded, N ms] ==`), or None."""
    found = re.search(r"^== " + re.escape(step) + r" \[succeeded, (\d+) ms\] ==$", log, re.M)
    return int(found.group(1)) if found else None
