"""Helpers for end-to-end tests: they drive the built `prevue` binary the way
a user would, against real git repositories made here, real processes and
real HTTP. Nothing goes through a shell."""

import json
import os
import re
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


def edit(repo, rel, old, new):
    path = os.path.join(repo, rel)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert old in text, f"{old!r} not in {rel}"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new))


def write(repo, rel, content):
    path = os.path.join(repo, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)


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


def service_pids(env_dir):
    """pid of each service, from the local provider's record."""
    with open(os.path.join(env_dir, ".prevue", "local.json"), encoding="utf-8") as f:
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

    def tearDown(self):
        listing = self.prevue("ls", "--json", check=False)
        if listing.returncode == 0:
            for env in json.loads(listing.stdout):
                self.prevue("down", env["slug"], check=False)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def prevue(self, *args, check=True, cwd=None, timeout=300):
        cmd = [PREVUE, "--state-dir", self.state_dir]
        if PROVIDER_DIR:
            cmd += ["--provider-dir", PROVIDER_DIR]
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
