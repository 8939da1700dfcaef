#!/usr/bin/env python3
"""Crash trials: a real daemon watching a real repository, random branch
creations, pushes, merges and deletions, and `kill -9` of the daemon at
random moments (2 or 3 per trial, each followed by a restart). After each
trial, once the daemon has settled, the invariants must hold:

  1. every open branch has exactly one environment, ready at its head
     commit, and its page through the proxy shows that commit's banner;
  2. no merged or deleted branch has one;
  3. no orphan: no preview process, environment directory or DNS name
     that belongs to no live environment;
  4. `prevue gc` then has nothing to do.

    tests/e2e/crash_trials.py [--trials N] [--seed S]

Uses build/prevue and build/providers unless PREVUE_BIN, PREVUE_PROVIDER_DIR
and PREVUE_TEMPLATE_DIR say otherwise (ctest sets them, as for the e2e tests).
Prints one line per trial and a summary; exits 1 on any violation."""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# Run by hand from a checkout, it uses build/ (what ctest sets otherwise).
_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.environ.setdefault("PREVUE_BIN", os.path.join(_ROOT, "build", "prevue"))
os.environ.setdefault("PREVUE_PROVIDER_DIR", os.path.join(_ROOT, "build", "providers"))
os.environ.setdefault("PREVUE_TEMPLATE_DIR", os.path.join(_ROOT, "templates", "reference-app"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from prevue_e2e import (PREVUE, PROVIDER_DIR, Daemon, commit_all, git, make_template_repo, primary_host,  # noqa: E402
                        processes_mentioning, set_banner, set_lease)

SETTLE_SECONDS = 180


def open_branches(repo):
    """Branches other than main whose head is not merged into main: name -> head sha."""
    out = {}
    for line in git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads").splitlines():
        name, sha = line.split()
        if name == "main":
            continue
        merged = subprocess.run(["git", "merge-base", "--is-ancestor", sha, "main"], cwd=repo).returncode == 0
        if not merged:
            out[name] = sha
    return out


def preview_processes(state_dir):
    """(pid, cmdline) of live processes that run in, or name, the state directory's environments."""
    marker = os.path.join(state_dir, "envs") + "/"
    return processes_mentioning(marker, cwd_under=marker)


class Trial:
    def __init__(self, number, rng, scratch):
        self.number = number
        self.rng = rng
        self.scratch = os.path.join(scratch, f"trial-{number}")
        os.makedirs(self.scratch)
        self.repo = make_template_repo(self.scratch)
        # Torn down at once on merge or deletion: no grace period to wait out.
        set_lease(self.repo, {"ttl": "1h", "idle": "1h", "end": "destroy", "grace": "0s"})
        self.daemon = Daemon(self.scratch, [self.repo], extra={"scheduler": {"reconcile_interval": "1s", "activity_flush": "300ms"}})
        self.branch_counter = 0
        self.kills = 0
        self.log = []

    # ---- what a team does ---------------------------------------------------------

    def create_branch(self):
        self.branch_counter += 1
        name = f"feature/t{self.number}-{self.branch_counter}"
        git(self.repo, "checkout", "-q", "-b", name, "main")
        set_banner(self.repo, f"{name} version 1")
        commit_all(self.repo, f"open {name}")
        git(self.repo, "checkout", "-q", "main")
        self.log.append(f"create {name}")

    def push(self, name):
        git(self.repo, "checkout", "-q", name)
        version = self.rng.randint(2, 10**6)
        set_banner(self.repo, f"{name} version {version}")
        commit_all(self.repo, f"push {version}")
        git(self.repo, "checkout", "-q", "main")
        self.log.append(f"push {name}")

    def merge(self, name):
        git(self.repo, "merge", "-q", "--no-ff", "-X", "theirs", name, "-m", f"merge {name}")
        self.log.append(f"merge {name}")

    def delete(self, name):
        git(self.repo, "branch", "-q", "-D", name)
        self.log.append(f"delete {name}")

    def random_operation(self):
        branches = list(open_branches(self.repo))
        choice = self.rng.random()
        if not branches or choice < 0.35:
            self.create_branch()
        elif choice < 0.65:
            self.push(self.rng.choice(branches))
        elif choice < 0.85:
            self.merge(self.rng.choice(branches))
        else:
            self.delete(self.rng.choice(branches))

    def kill_and_restart(self):
        self.daemon.stop(signal.SIGKILL)
        self.kills += 1
        self.log.append("kill -9")
        self.daemon.start()

    # ---- the trial -----------------------------------------------------------------

    def run(self, operations):
        self.daemon.start()
        kills_planned = self.rng.choice([2, 3])
        kill_at = sorted(self.rng.sample(range(operations), kills_planned))
        for step in range(operations):
            self.random_operation()
            # A moment for the daemon to be somewhere in the middle of it.
            time.sleep(self.rng.uniform(0.05, 1.5))
            while kill_at and kill_at[0] == step:
                kill_at.pop(0)
                self.kill_and_restart()
        return self.check()

    def settled(self):
        """None once every open branch is ready at its head and nothing else is live; else what is still off."""
        wanted = open_branches(self.repo)
        live = [e for e in self.daemon.environments() if e["state"] != "destroyed"]
        by_ref = {}
        for env in live:
            by_ref.setdefault(env["ref"], []).append(env)
        for name, sha in wanted.items():
            envs = by_ref.get(name, [])
            if len(envs) != 1 or envs[0]["state"] != "ready" or envs[0]["deployed_commit"] != sha:
                return f"{name} at {sha[:8]}: {[(e['state'], e['deployed_commit'][:8]) for e in envs]}"
        extra = [e["slug"] for e in live if e["ref"] not in wanted]
        if extra:
            return f"environments of merged or deleted branches: {extra}"
        # DNS follows the environments on a thread of its own: it settles too.
        orphans = self.orphan_dns_names(live)
        return f"DNS names of gone environments: {orphans}" if orphans else None

    def orphan_dns_names(self, live):
        live_slugs = {e["slug"] for e in live}
        orphans = []
        for line in self.daemon.hosts_file().splitlines():
            fields = line.split()
            if len(fields) >= 2 and not line.startswith("#") and fields[1].split(".")[0].startswith("pr-"):
                if not any(fields[1].startswith(slug + ".") or ("." + slug + ".") in fields[1] for slug in live_slugs):
                    orphans.append(fields[1])
        return orphans

    def check(self):
        violations = []
        deadline = time.monotonic() + SETTLE_SECONDS
        off = self.settled()
        while off and time.monotonic() < deadline:
            time.sleep(0.2)
            off = self.settled()
        if off:
            violations.append(f"did not settle in {SETTLE_SECONDS} s: {off}")
        wanted = open_branches(self.repo)
        live = [e for e in self.daemon.environments() if e["state"] != "destroyed"]
        # 1. The page shows the head commit.
        for env in live:
            if env["ref"] in wanted:
                status, page, _ = self.daemon.get(primary_host(env))
                banner = re.search(r"version \d+", git(self.repo, "show", f"{wanted[env['ref']]}:web/server.py"))
                if status != 200 or not banner or f"{env['ref']} {banner.group(0)}" not in page:
                    violations.append(f"{env['slug']}: page {status} does not show {env['ref']} at its head")
        # 3. Orphans: processes, directories, DNS names.
        envs_dir = os.path.join(self.daemon.state_dir, "envs")
        live_dirs = {os.path.realpath(os.path.join(envs_dir, e["slug"])) for e in live}
        for pid, cmdline in preview_processes(self.daemon.state_dir):
            cwd = os.path.realpath(f"/proc/{pid}/cwd")
            if not any(cwd.startswith(d) or d in cmdline for d in live_dirs):
                violations.append(f"orphan process {pid}: {cmdline[:120]}")
        for name in os.listdir(envs_dir) if os.path.isdir(envs_dir) else []:
            if os.path.realpath(os.path.join(envs_dir, name)) not in live_dirs:
                violations.append(f"orphan directory envs/{name}")
        violations += [f"orphan DNS name {name}" for name in self.orphan_dns_names(live)]
        # 4. gc has nothing to do.
        cmd = [PREVUE, "gc", "--config", self.daemon.config_path] + (["--provider-dir", PROVIDER_DIR] if PROVIDER_DIR else [])
        gc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        work = [line for line in gc.stdout.splitlines() if line != "nothing to clean" and not line.startswith("checked: ")]
        if gc.returncode != 0 or work or "nothing to clean" not in gc.stdout:
            violations.append(f"gc had work: exit {gc.returncode}: {gc.stdout.strip()} {gc.stderr.strip()}")
        return violations

    def teardown(self):
        self.daemon.stop()
        subprocess.run([PREVUE, "--state-dir", self.daemon.state_dir, "down", "--all"] +
                       (["--provider-dir", PROVIDER_DIR] if PROVIDER_DIR else []), capture_output=True, timeout=300)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--operations", type=int, default=6, help="branch operations per trial")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    print(f"crash trials: {args.trials} trials, {args.operations} operations each, seed {seed}", flush=True)
    scratch = tempfile.mkdtemp(prefix="prevue-crash-trials-")
    failed = 0
    kills = 0
    started = time.monotonic()
    try:
        for number in range(1, args.trials + 1):
            trial = Trial(number, random.Random(seed * 1000 + number), scratch)
            try:
                violations = trial.run(args.operations)
            except Exception as e:  # a trial that cannot run is a failure too
                violations = [f"trial error: {e!r}"]
            finally:
                kills += trial.kills
                trial.teardown()
            if violations:
                failed += 1
                print(f"trial {number}: {len(violations)} violation(s) after {', '.join(trial.log)}", flush=True)
                for v in violations:
                    print(f"  - {v}", flush=True)
                print("  daemon log tail:\n" + trial.daemon.read_log()[-3000:], flush=True)
            else:
                print(f"trial {number}: ok ({trial.kills} kills; {', '.join(trial.log)})", flush=True)
            if not violations:
                shutil.rmtree(trial.scratch, ignore_errors=True)
    finally:
        if not failed:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"crash trials: {args.trials - failed} passed, {failed} failed ({kills} kills of the daemon, "
          f"{time.monotonic() - started:.0f} s, seed {seed})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
