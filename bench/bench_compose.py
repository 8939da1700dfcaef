#!/usr/bin/env python3
"""The compose provider against Compose by hand, in the same run, on the
reference app's own compose.yaml (templates/reference-compose):

  1. time to preview: a new pull request (web changed since the last build)
     from the event to the first 200 through prevue's proxy, against
     `up -d --build --wait` of the same tree by hand in a new project
     (Compose v1 has no --wait: the same wait, by `docker inspect`), then
     the page polled until it answers 200 (the same poll either way); both
     sides built main's tree once before;
  2. a push that changes one of the two services: prevue's update (event to
     the new page) against `up -d --build --wait` of the whole file by hand;
  3. a second pull request at an already-built tree: time to preview and
     how many images prevue built (target: none).

Bounded: --rounds rounds of 1 and 2, each wait at most 300 s. Needs a
Docker Engine and prevue/base:bookworm (scripts/setup-images.sh).

Usage: bench/bench_compose.py [--rounds 2]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from bench_common import GIT, ROOT, WatchingServe, clean_up, get, git, make_repo, no_grace, until

COMPOSE = ["docker", "compose"] if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0 \
    else ["docker-compose"]
WAIT = ["--wait"] if COMPOSE[0] == "docker" else []  # v1 has no --wait: ByHand.all_healthy does what it does


def head(repo):
    return subprocess.run(GIT + ["-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def commit_banner(repo, branch, banner, start=None):
    """A commit on `branch` (made from `start` when given) that changes only web's banner; its id."""
    git(repo, "checkout", "-q", *(["-b", branch, start] if start else [branch]))
    subprocess.run(["sed", "-i", f's/VERSION_BANNER = "[^"]*"/VERSION_BANNER = "{banner}"/', os.path.join(repo, "web", "server.py")],
                   check=True)
    git(repo, "commit", "-q", "-am", banner)
    sha = head(repo)
    git(repo, "checkout", "-q", "main")
    return sha


class ByHand:
    """Compose run by hand on a checkout of the same commit: `up -d --build --wait`,
    then the page polled until it answers 200 with the commit's change."""

    def __init__(self, scratch, repo):
        self.dir = os.path.join(scratch, "by-hand")
        self.repo = repo
        self.project = "bench-by-hand"

    def up(self, sha, marker, new_project=False):
        if new_project:  # a new pull request: a project of its own, as prevue's is (not timed)
            self.down(keep_images=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        subprocess.run(GIT + ["clone", "-q", self.repo, self.dir], check=True)
        subprocess.run(GIT + ["-C", self.dir, "checkout", "-q", sha], check=True)
        # The by-hand file publishes web on a port Docker picks, like prevue's (no clash with anything).
        # Its own banner: the by-hand build is a build of its own, not a hit in
        # the layer cache prevue's build of the same files just filled.
        subprocess.run(["sed", "-i", f's/VERSION_BANNER = "\\([^"]*\\)"/VERSION_BANNER = "\\1 by hand"/',
                        os.path.join(self.dir, "web", "server.py")], check=True)
        with open(os.path.join(self.dir, "compose.yaml")) as f:
            text = f.read().replace('"8000:8000"', '"127.0.0.1::8000"')
        with open(os.path.join(self.dir, "compose.yaml"), "w") as f:
            f.write(text)
        started = time.monotonic()
        subprocess.run(COMPOSE + ["-p", self.project, "up", "-d", "--build", *WAIT], cwd=self.dir, check=True, capture_output=True)
        if not WAIT:
            until(self.all_healthy, "the services healthy by hand", timeout=300, poll=0.05)
        port = subprocess.run(COMPOSE + ["-p", self.project, "port", "web", "8000"], cwd=self.dir, capture_output=True,
                              text=True, check=True).stdout.strip().rsplit(":", 1)[1]
        until(lambda: (lambda s, p: s == 200 and marker in p)(*get(port)), "the page by hand", timeout=300, poll=0.05)
        return (time.monotonic() - started) * 1000

    def all_healthy(self):
        """What `up --wait` waits for (Compose v1 has no --wait): every container running, and healthy where it has a healthcheck."""
        ids = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}"],
                             capture_output=True, text=True).stdout.split()
        states = subprocess.run(["docker", "inspect", "--format", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                                 *ids], capture_output=True, text=True).stdout.splitlines() if ids else []
        return bool(states) and all(s.strip() in ("running", "running healthy") for s in states)

    def down(self, keep_images=False):
        if os.path.isdir(self.dir):
            subprocess.run(COMPOSE + ["-p", self.project, "down", "-v", *([] if keep_images else ["--rmi", "local"])], cwd=self.dir,
                           capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if subprocess.run(["docker", "image", "inspect", "prevue/base:bookworm"], capture_output=True).returncode != 0:
        raise SystemExit("bench_compose: run scripts/setup-images.sh first (no Docker Engine, or no base image)")
    scratch = tempfile.mkdtemp(prefix="prevue-bench-compose-")
    daemon, by_hand = None, None
    try:
        repo = make_repo(os.path.join(scratch, "repo"), os.path.join("templates", "reference-app"))
        no_grace(repo, os.path.join(ROOT, "templates", "reference-compose", "prevue.json"))
        daemon = WatchingServe(scratch, repo)
        announce, preview = daemon.announce, daemon.preview
        by_hand = ByHand(scratch, repo)

        def built(slug):
            logs = daemon.logs(slug)
            return logs.count("(built)")

        # Warm-up (not timed): both sides build main's tree once, so each
        # round finds the same layer cache and base images on either side.
        warm = commit_banner(repo, "warm-up", "warm", start="main")
        announce()
        preview("warm-up", "warm")
        by_hand.up(warm, "warm", new_project=True)

        new_prevue, new_hand, update_prevue, update_hand = [], [], [], []
        for i in range(args.rounds):
            branch = f"feature-{i}"
            sha = commit_banner(repo, branch, f"round {i} open", start="main")
            started = time.monotonic()
            announce()
            env = preview(branch, f"round {i} open")
            new_prevue.append((time.monotonic() - started) * 1000)
            new_hand.append(by_hand.up(sha, f"round {i} open", new_project=True))

            # A push that changes web only.
            sha = commit_banner(repo, branch, f"round {i} push")
            started = time.monotonic()
            announce()
            preview(branch, f"round {i} push")
            update_prevue.append((time.monotonic() - started) * 1000)
            update_hand.append(by_hand.up(sha, f"round {i} push"))

        # A second pull request at the last round's tree (another commit, same files).
        git(repo, "checkout", "-q", "-b", "twin", f"feature-{args.rounds - 1}")
        git(repo, "commit", "-q", "--allow-empty", "-m", "same tree")
        git(repo, "checkout", "-q", "main")
        started = time.monotonic()
        announce()
        twin = preview("twin", f"round {args.rounds - 1} push")
        twin_ms = (time.monotonic() - started) * 1000
        twin_builds = built(twin["slug"])

        n, nh = statistics.median(new_prevue), statistics.median(new_hand)
        u, uh = statistics.median(update_prevue), statistics.median(update_hand)
        print(f"compose reference app ({' '.join(COMPOSE)}), median of {args.rounds} rounds")
        print(f"  new PR: prevue {[round(x) for x in new_prevue]} ms, by hand {[round(x) for x in new_hand]} ms")
        print(f"  push to web: prevue {[round(x) for x in update_prevue]} ms, by hand {[round(x) for x in update_hand]} ms")
        print(f"{'time to preview, new PR':44s} prevue {n:10.0f} ms   | {'compose up --build --wait':28s} {nh:10.0f} ms   | ratio {n / nh:.2f}x (target < 1.1)")
        print(f"{'update, a push to one of two services':44s} prevue {u:10.0f} ms   | {'compose up --build --wait':28s} {uh:10.0f} ms   | ratio {uh / u:.2f}x faster (target >= 2)")
        print(f"{'second PR at a built tree':44s} prevue {twin_ms:10.0f} ms   | images built {twin_builds} (target 0)")
    finally:
        if by_hand:
            by_hand.down()
        clean_up(daemon, scratch)


if __name__ == "__main__":
    main()
