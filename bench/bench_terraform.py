#!/usr/bin/env python3
"""The terraform provider against Terraform by hand, in the same run, on
templates/reference-layered (an infra root module that makes a PostgreSQL
database and role, and an app that reads it), state in the `pg` backend of
a PostgreSQL cluster of the benchmark's own:

  1. time to preview, a new pull request: from the event to the page
     through prevue's proxy, against, by hand, `init` + `workspace select
     -or-create` + `apply` of the same module in a new workspace (a data
     directory of its own, as a new checkout has), `output -raw
     database_url`, then the same app started on that URL and its page
     polled (the same poll either way);
  2. the infra layer alone: prevue's `apply: infra` step against those
     three terraform commands;
  3. a second pull request's `init`: by hand, with an empty plugin cache
     against one the first pull request filled (the module's providers are
     built in, none is downloaded: what the cache saves here is what it
     saves with nothing to fetch); prevue runs none, as its data directory
     is shared by every environment at the same Terraform files.

Bounded: --rounds rounds, each wait at most 300 s. Needs terraform or tofu
(scripts/setup-terraform.sh) and PostgreSQL (scripts/setup.sh).

Usage: bench/bench_terraform.py [--rounds 3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import ROOT, WatchingServe, clean_up, get, git, make_repo, no_grace, step_ms, until

os.environ.setdefault("PREVUE_TEMPLATE_DIR", os.path.join(ROOT, "templates", "reference-app"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from prevue_e2e import PostgresServer, free_port  # noqa: E402

TERRAFORM = shutil.which("tofu") or shutil.which("terraform")
SCHEMA = "prevue_states"


def branch_at(repo, branch, start):
    git(repo, "checkout", "-q", "-b", branch, start)
    with open(os.path.join(repo, "app", "NOTES"), "w") as f:
        f.write(branch + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", branch)
    sha = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    git(repo, "checkout", "-q", "main")
    return sha


class ByHand:
    """The module applied by hand in a workspace of its own, then the app on its database URL."""

    def __init__(self, scratch, repo, admin_url):
        self.scratch = scratch
        self.repo = repo
        self.backend = os.path.join(scratch, "by-hand.tfbackend")
        with open(self.backend, "w") as f:
            f.write(f'conn_str = "{admin_url}"\nschema_name = "{SCHEMA}"\n')
        self.admin_url = admin_url
        self.apps = []

    def env(self, data_dir, slug, cache=None):
        rc = os.path.join(self.scratch, "by-hand.terraformrc")
        with open(rc, "w") as f:
            f.write("disable_checkpoint = true\n" + (f'plugin_cache_dir = "{cache}"\n' if cache else ""))
        return {**os.environ, "TF_DATA_DIR": data_dir, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1",
                "TF_CLI_CONFIG_FILE": rc, "TF_VAR_admin_url": self.admin_url, "TF_VAR_slug": slug, "TF_VAR_pr": "0"}

    def tf(self, module, env, *args):
        out = subprocess.run([TERRAFORM, "-chdir=" + module, *args], capture_output=True, text=True, env=env, timeout=300)
        if out.returncode != 0:
            sys.exit(f"bench_terraform: by hand, terraform {args[0]} failed: {out.stdout}{out.stderr}")
        return out.stdout

    def checkout(self, name):
        """A module directory as a new checkout has it, with the backend the operator configures."""
        module = os.path.join(self.scratch, "by-hand", name)
        shutil.copytree(os.path.join(self.repo, "infra"), module)
        with open(os.path.join(module, "backend.tf"), "w") as f:
            f.write('terraform {\n  backend "pg" {}\n}\n')
        return module

    def up(self, name):
        """(whole time to the page, terraform's part) in ms."""
        module = self.checkout(name)
        env = self.env(os.path.join(self.scratch, "by-hand", name + ".data"), name)
        started = time.monotonic()
        self.tf(module, env, "init", "-input=false", "-no-color", "-backend-config=" + self.backend)
        self.tf(module, env, "workspace", "select", "-or-create=true", name)
        self.tf(module, env, "apply", "-auto-approve", "-input=false", "-no-color")
        terraform_ms = (time.monotonic() - started) * 1000
        url = self.tf(module, env, "output", "-raw", "database_url")
        port = free_port()
        app = subprocess.Popen([sys.executable, "server.py", "--port", str(port)], cwd=os.path.join(self.repo, "app"),
                               env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.apps.append(app)
        until(lambda: get(port)[0] == 200, "the app by hand", timeout=300, poll=0.05)
        return (time.monotonic() - started) * 1000, terraform_ms, module, env

    def down(self, module, env, name):
        self.tf(module, env, "destroy", "-auto-approve", "-input=false", "-no-color")
        self.tf(module, env, "workspace", "select", "default")
        self.tf(module, env, "workspace", "delete", name)

    def init_ms(self, name, cache):
        module = self.checkout(name)
        env = self.env(os.path.join(self.scratch, "by-hand", name + ".data"), name, cache)
        started = time.monotonic()
        self.tf(module, env, "init", "-input=false", "-no-color", "-backend-config=" + self.backend)
        return (time.monotonic() - started) * 1000

    def stop(self):
        for app in self.apps:
            app.terminate()
            app.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not TERRAFORM:
        raise SystemExit("bench_terraform: neither tofu nor terraform is on the PATH; run scripts/setup-terraform.sh")
    scratch = tempfile.mkdtemp(prefix="prevue-bench-terraform-")
    pg = PostgresServer()
    daemon = by_hand = None
    try:
        admin_url = pg.admin_url + "?sslmode=disable"
        repo = make_repo(os.path.join(scratch, "repo"), os.path.join("templates", "reference-layered"))
        no_grace(repo)
        daemon = WatchingServe(scratch, repo, extra={
            "providers": {"terraform": {"binary": TERRAFORM,
                                        "backend": {"type": "pg", "config": {"conn_str": admin_url, "schema_name": SCHEMA}}}},
            "secrets": {"PG_ADMIN_URL": {"value": admin_url}}})
        announce, preview = daemon.announce, daemon.preview
        by_hand = ByHand(scratch, repo, admin_url)

        # Warm-up (not timed): the first init of each side, PostgreSQL's first database.
        sha = branch_at(repo, "warm-up", "main")
        announce()
        preview("warm-up", sha)
        _, _, module, env = by_hand.up("by-hand-warm")
        by_hand.down(module, env, "by-hand-warm")

        whole, whole_hand, infra, infra_hand = [], [], [], []
        prevue_inits = 0
        for i in range(args.rounds):
            branch = f"feature-{i}"
            sha = branch_at(repo, branch, "main")
            started = time.monotonic()
            announce()
            env = preview(branch, sha)
            whole.append((time.monotonic() - started) * 1000)
            log = daemon.logs(env["slug"])
            infra.append(step_ms(log, "apply: infra"))
            prevue_inits += " init -input=false" in log
            name = f"by-hand-{i}"
            total, terraform_ms, module, tf_env = by_hand.up(name)
            whole_hand.append(total)
            infra_hand.append(terraform_ms)
            by_hand.down(module, tf_env, name)

        # The plugin cache: init for a second PR with the cache the first one filled, against an empty one.
        cold, warm = [], []
        for i in range(args.rounds):
            cache = os.path.join(scratch, f"cache-{i}")
            os.makedirs(cache)
            cold.append(by_hand.init_ms(f"cache-first-{i}", cache))
            warm.append(by_hand.init_ms(f"cache-second-{i}", cache))

        w, wh = statistics.median(whole), statistics.median(whole_hand)
        a, ah = statistics.median(infra), statistics.median(infra_hand)
        c, cw = statistics.median(cold), statistics.median(warm)
        print(f"terraform reference (templates/reference-layered) with {os.path.basename(TERRAFORM)}, pg backend, median of {args.rounds} rounds")
        print(f"  new PR: prevue {[round(x) for x in whole]} ms, by hand {[round(x) for x in whole_hand]} ms")
        print(f"  apply: infra: prevue {infra} ms, init + workspace select + apply by hand {[round(x) for x in infra_hand]} ms")
        print(f"{'time to preview, new PR':44s} prevue {w:10.0f} ms   | {'by hand (terraform, then the app)':34s} {wh:10.0f} ms   | ratio {w / wh:.2f}x (target < 1.1)")
        print(f"{'  the infra layer alone':44s} prevue {a:10.0f} ms   | {'init + workspace select + apply':34s} {ah:10.0f} ms   | ratio {a / ah:.2f}x (target < 1.1)")
        print(f"{'init of a second PR, shared plugin cache':44s} filled {cw:10.0f} ms   | {'empty cache':34s} {c:10.0f} ms   | ratio {cw / c:.2f}x (by hand)")
        print(f"{'init runs in prevue for those new PRs':44s} {prevue_inits:d} of {args.rounds} (their Terraform files were initialised once, for the warm-up)")
    finally:
        if by_hand:
            by_hand.stop()
        clean_up(daemon, scratch)
        pg.stop()


if __name__ == "__main__":
    main()
