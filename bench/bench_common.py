"""What the Python benchmarks share: where the build is, a git repository
made from a template, `prevue serve` started on a config and stopped, and a
bounded wait."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

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
