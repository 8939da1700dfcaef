"""The terraform provider end to end, with the real terraform (or tofu) and a
real PostgreSQL: templates/reference-layered's infra layer (a root module
that makes a database and a role with psql) applied in a workspace per pull
request on the `pg` state backend, its database_url feeding the app layer;
pushes that leave infra alone, two previews at once, a run superseded or
killed mid-apply, broken modules, and `prevue render`'s plan."""

import json
import os
import shutil
import signal
import subprocess
import unittest

from prevue_e2e import (TEMPLATE_DIR, Daemon, PostgresServer, PrevueTestCase, commit_all, git, primary_host, wait_until, write)

LAYERED_TEMPLATE = os.path.join(TEMPLATE_DIR, "..", "reference-layered")
TERRAFORM = shutil.which("tofu") or shutil.which("terraform")
STATE_SCHEMA = "prevue_states"


def processes():
    """(pid, argv) of every live process (terraform's with the binary's full path first)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found.append((int(pid), [a.decode(errors="replace") for a in f.read().split(b"\0") if a]))
            except OSError:
                pass
    return found


def command_lines():
    """The argv of every live process."""
    return [argv for _, argv in processes()]


def workspace_new_processes():
    return [(pid, argv) for pid, argv in processes() if argv[2:4] == ["workspace", "new"]]


def running(argv):
    """The live processes whose command line is `argv` (a provisioner's command, as /bin/sh runs it)."""
    return [a for a in command_lines() if a == argv]


@unittest.skipIf(TERRAFORM is None, "neither tofu nor terraform is on the PATH (scripts/setup-terraform.sh)")
class Terraform(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.pg = PostgresServer()
        self.addCleanup(self.pg.stop)
        self.repo_from_template(LAYERED_TEMPLATE, "layered")
        self.daemon = None

    # ---- helpers ----

    def operator(self, **more):
        return {"binary": TERRAFORM, "lock_timeout": "10m",
                "backend": {"type": "pg", "config": {"conn_str": self.pg.admin_url + "?sslmode=disable", "schema_name": STATE_SCHEMA}},
                **more}

    def start_daemon(self, name="daemon", **operator):
        extra = {"providers": {"terraform": self.operator(**operator)},
                 "secrets": {"PG_ADMIN_URL": {"value": self.pg.admin_url + "?sslmode=disable"}}}
        self.daemon = Daemon(self.scratch, [self.repo], extra=extra, name=name).start()
        return self.daemon

    def workspaces(self):
        exists = self.pg.psql(f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{STATE_SCHEMA}'")
        return set(self.pg.psql(f"SELECT name FROM {STATE_SCHEMA}.states").split()) if exists != "0" else set()

    def databases(self):
        return set(self.pg.psql("SELECT datname FROM pg_database WHERE datname LIKE 'pv\\_%'").split())

    def roles(self):
        return set(self.pg.psql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'pv\\_%'").split())

    def advisory_locks(self):
        return int(self.pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))

    def database_of(self, slug):
        found = [d for d in self.databases() if d.startswith("pv_" + slug.replace("-", "_")[:40])]
        self.assertEqual(len(found), 1, (slug, self.databases()))
        return found[0]

    def receipt(self, slug):
        timeline = self.daemon.api_call("GET", f"/api/v1/environments/{slug}/timeline")[1]
        return json.loads(next(t["detail"] for t in timeline if t["kind"] == "receipt"))

    def step_log(self, slug):
        return self.prevue("logs", slug, state_dir=self.daemon.state_dir).stdout

    # ---- tests ----

    def test_a_pull_request_gets_its_own_database_from_open_to_merge(self):
        first = self.commit_on("feature", lambda: write(self.repo, "app/NOTES", "one\n"), "one")
        self.start_daemon()
        env = self.daemon.wait_env(1, "ready", first, timeout=300, fail_fast=True)
        slug = env["slug"]
        self.assertIn("prevue-" + slug, self.workspaces())
        database = self.database_of(slug)
        self.assertIn(database, self.roles())
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Made by Terraform for pull request 1", page)  # read from its own database
        self.assertIn(first, page)
        # The database URL carries the role's password: a sensitive output, in no log and no API answer.
        state = json.loads(self.pg.psql(f"SELECT data FROM {STATE_SCHEMA}.states WHERE name = 'prevue-{slug}'"))
        password = next(r for r in state["resources"] if r["name"] == "password")["instances"][0]["attributes"]["output"]["value"]
        log = self.step_log(slug)
        self.assertIn("apply: infra", log)
        for shown in (log, json.dumps(self.daemon.environment(slug)), self.daemon.read_log()):
            self.assertNotIn(password, shown)
            self.assertNotIn(PostgresServer.PASSWORD, shown)
        oid = self.pg.psql(f"SELECT oid FROM pg_database WHERE datname = '{database}'")
        self.pg.psql("INSERT INTO notes (body) VALUES ('written by a reviewer')", database=database)

        # A push that changes only the app: terraform applies with no changes; the database is the same one.
        second = self.commit_on("feature", lambda: write(self.repo, "app/NOTES", "two\n"), "two", new_branch=False)
        env = self.daemon.wait_env(1, "ready", second, timeout=300, fail_fast=True)
        self.assertEqual(self.pg.psql(f"SELECT oid FROM pg_database WHERE datname = '{database}'"), oid)
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertIn("written by a reviewer", page)
        self.assertIn(second, page)
        self.assertIn("No changes.", self.step_log(slug))

        # Merged: destroy, the database and role dropped, the workspace deleted, all named in the receipt.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
        self.daemon.wait_gone(slug, timeout=300)
        self.assertNotIn(database, self.databases())
        self.assertNotIn(database, self.roles())
        self.assertNotIn("prevue-" + slug, self.workspaces())
        removed = {(item["kind"], item["name"], item["outcome"]) for item in self.receipt(slug)}
        self.assertIn(("resource", "terraform_data.database", "destroyed"), removed)
        self.assertIn(("resource", "terraform_data.role", "destroyed"), removed)
        self.assertIn(("workspace", "prevue-" + slug, "deleted"), removed)
        self.assertEqual(self.advisory_locks(), 0)

    def test_two_previews_at_once_and_a_superseded_apply_releases_its_lock(self):
        # Both PRs apply at the same time on the one backend: one workspace each, no lock waits between them.
        self.commit_on("alpha", lambda: write(self.repo, "app/NOTES", "alpha\n"), "alpha")
        self.commit_on("beta", lambda: write(self.repo, "app/NOTES", "beta\n"), "beta")
        self.start_daemon()
        one = self.daemon.wait_env(1, "ready", timeout=300, fail_fast=True)
        two = self.daemon.wait_env(2, "ready", timeout=300, fail_fast=True)
        self.assertTrue({"prevue-" + one["slug"], "prevue-" + two["slug"]} <= self.workspaces())
        self.assertEqual(len(self.databases()), 2)
        for env, pr in ((one, 1), (two, 2)):
            self.assertIn(f"pull request {pr}", self.daemon.get(primary_host(env))[1])
        # The same Terraform files: `init` ran for one of them, the other used its data directory.
        inits = [" init -input=false" in self.step_log(env["slug"]) for env in (one, two)]
        self.assertEqual(sorted(inits), [False, True], inits)

        # A push makes alpha's infra slow (a provisioner that sleeps); a newer push supersedes it mid-apply.
        def slow_infra():
            with open(os.path.join(self.repo, "infra", "slow.tf"), "w", encoding="utf-8") as f:
                f.write('resource "terraform_data" "slow" {\n  input = "slow"\n'
                        '  provisioner "local-exec" {\n    command = "sleep 600"\n  }\n}\n')
        slow = self.commit_on("alpha", slow_infra, "slow infra", new_branch=False)
        self.daemon.wait_for(lambda: running(["sleep", "600"]), "the slow provisioner to run", 120)
        self.assertGreater(self.advisory_locks(), 0)  # the apply holds the workspace's lock
        fixed = self.commit_on("alpha", lambda: os.remove(os.path.join(self.repo, "infra", "slow.tf")), "not slow", new_branch=False)
        # The superseded terraform got SIGINT: it stopped its provisioner and released the lock, so
        # the next apply goes ahead (with lock_timeout 10m, a lock left held would hold it for 10 minutes).
        env = self.daemon.wait_env(1, "ready", fixed, timeout=240, fail_fast=True)
        self.assertNotEqual(env["deployed_commit"], slow)
        self.assertEqual(running(["sleep", "600"]), [])  # SIGINT reached the provisioner
        self.assertEqual(self.advisory_locks(), 0)

    def test_a_workspace_created_while_another_is_being_created_waits_its_turn(self):
        # The pg backend creates each workspace under one advisory lock (-1) that it only
        # tries: held here while the pull request's workspace is made, the way a second
        # pull request opened at the same moment meets it.
        self.commit_on("turn", lambda: write(self.repo, "app/NOTES", "turn\n"), "turn")
        holder = subprocess.Popen(["psql", "--no-psqlrc", "-q", "-d", self.pg.admin_url], stdin=subprocess.PIPE, text=True)
        holder.stdin.write("SELECT pg_advisory_lock(-1);\nSELECT pg_sleep(600);\n")
        holder.stdin.flush()
        try:
            wait_until(lambda: self.pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4294967295") != "0",
                       "the test to hold the creation lock", 30)
            self.start_daemon()
            # Held until a second `workspace new` runs: the first met the lock and gave up, and
            # the provider tries again. (Letting go when the first one appears raced it: a
            # loaded machine started it, the lock went, and it never met the lock at all.)
            attempts = set()

            def retried():
                attempts.update(pid for pid, argv in workspace_new_processes())
                return len(attempts) >= 2
            wait_until(retried, "a second workspace new, after the first met the lock", 120)
        finally:
            self.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600);'")
            holder.kill()
            holder.wait(timeout=30)
        env = self.daemon.wait_env(1, "ready", timeout=300, fail_fast=True)
        self.assertIn("Already locked", self.step_log(env["slug"]))  # it met the lock, and tried again
        self.assertIn("prevue-" + env["slug"], self.workspaces())

    def test_the_daemon_killed_during_apply_converges_after_restart(self):
        def slow_first_apply():
            with open(os.path.join(self.repo, "infra", "slow.tf"), "w", encoding="utf-8") as f:
                f.write('resource "terraform_data" "pause" {\n  input = "pause"\n'
                        '  provisioner "local-exec" {\n    command = "sleep 3"\n  }\n}\n')
        sha = self.commit_on("sturdy", slow_first_apply, "slow first apply")
        self.start_daemon()
        self.daemon.wait_for(lambda: running(["sleep", "3"]), "terraform to be applying", 120)
        self.daemon.stop(sig=signal.SIGKILL)
        self.start_daemon()
        env = self.daemon.wait_env(1, "ready", sha, timeout=300, fail_fast=True)
        database = self.database_of(env["slug"])  # exactly one: no duplicate
        self.assertEqual(len(self.databases()), 1)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM notes", database=database), "1")  # made once
        self.assertEqual(self.advisory_locks(), 0)
        state = self.pg.psql(f"SELECT data FROM {STATE_SCHEMA}.states WHERE name = 'prevue-{env['slug']}'")
        addresses = sorted(f"{r['type']}.{r['name']}" for r in json.loads(state)["resources"])
        self.assertEqual(addresses, ["terraform_data.database", "terraform_data.password", "terraform_data.pause", "terraform_data.role"])

    def test_broken_modules_say_why_and_a_half_applied_workspace_is_still_destroyed(self):
        self.start_daemon()
        # An HCL error: the step fails with terraform's message.
        hcl = self.commit_on("hcl", lambda: write(self.repo, "infra/broken.tf", 'resource "terraform_data" "x" {\n  input = \n}\n'),
                             "broken hcl")
        env = self.daemon.wait_env(1, "failed", timeout=300)
        self.assertEqual(env["commit"], hcl)
        self.assertIn("apply: infra", env["failed_step"])
        self.assertIn("broken.tf", env["error"])

        # Half-way: the role is made, then a resource fails; teardown still drops the role.
        def half():
            write(self.repo, "infra/fails.tf", 'resource "terraform_data" "fails" {\n  input = "x"\n  depends_on = [terraform_data.role]\n'
                                               '  provisioner "local-exec" {\n    command = "echo half-way failure >&2; exit 3"\n  }\n}\n')
        self.commit_on("half", half, "fails half-way")
        env = self.daemon.wait_env(2, "failed", timeout=300)
        self.assertIn("half-way failure", env["error"])
        slug = env["slug"]
        self.assertIn("prevue-" + slug, self.workspaces())
        self.assertTrue(any(r.startswith("pv_" + slug.replace("-", "_")[:40]) for r in self.roles()), self.roles())
        self.prevue("down", slug, state_dir=self.daemon.state_dir)
        self.assertFalse(any(r.startswith("pv_" + slug.replace("-", "_")[:40]) for r in self.roles()), self.roles())
        self.assertNotIn("prevue-" + slug, self.workspaces())

        # A destroy that fails: the cause is shown, the workspace kept, and `prevue gc` finishes it once it can.
        def destroy_fails():
            write(self.repo, "infra/stubborn.tf", 'resource "terraform_data" "stubborn" {\n  input = "x"\n'
                                                  '  provisioner "local-exec" {\n    when = destroy\n'
                                                  f'    command = "test -e {self.scratch}/let-go || {{ echo cannot let go >&2; exit 4; }}"\n'
                                                  '  }\n}\n')
        self.commit_on("stubborn", destroy_fails, "destroy fails")
        env = self.daemon.wait_env(3, "ready", timeout=300, fail_fast=True)
        slug = env["slug"]
        down = self.prevue("down", slug, state_dir=self.daemon.state_dir, check=False)
        self.assertNotEqual(down.returncode, 0)
        self.assertIn("cannot let go", down.stdout + down.stderr)
        self.assertIn("prevue-" + slug, self.workspaces())
        self.assertEqual(self.daemon.environment(slug)["state"], "destroying")
        self.daemon.stop()  # else its own retry may get there first: this is cron's `prevue gc` alone
        with open(os.path.join(self.scratch, "let-go"), "w", encoding="utf-8"):
            pass  # what stopped the destroy is fixed
        gc = self.prevue("gc", state_dir=self.daemon.state_dir, check=False)
        self.assertEqual(gc.returncode, 0, gc.stdout + gc.stderr)
        self.assertIn("retry an unfinished teardown", gc.stdout)
        self.assertNotIn("prevue-" + slug, self.workspaces())

    def test_render_prints_the_plan_and_creates_nothing(self):
        self.commit_on("dry", lambda: write(self.repo, "app/NOTES", "dry\n"), "dry")
        before = (self.workspaces(), self.databases())
        out = self.prevue("render", "--repo", self.repo, "--ref", "dry", "--pr", "7")
        self.assertIn("layer infra (terraform), nothing applied:", out.stdout)
        self.assertIn("Plan: 3 to add, 0 to change, 0 to destroy", out.stdout)
        self.assertIn("+ terraform_data.database", out.stdout)
        self.assertIn("database_url (sensitive)", out.stdout)
        self.assertEqual((self.workspaces(), self.databases()), before)
        self.assertEqual(os.listdir(os.path.join(self.state_dir, "tmp")), [])  # its scratch directory is gone
        # Settings a pull request may not give: refused at their JSON path before anything runs.
        def hostile(manifest):
            manifest["layers"][0]["terraform"].update({"dir": "../../etc", "var_files": ["/etc/passwd"], "backend": {"type": "s3"}})
        self.commit_on("hostile", lambda: self.set_manifest(hostile), "hostile settings")
        out = self.prevue("render", "--repo", self.repo, "--ref", "hostile", check=False)
        self.assertNotEqual(out.returncode, 0)
        for problem in ("$.layers[0].terraform.dir must be", "$.layers[0].terraform.var_files[0] must be", "$.layers[0].terraform.backend unknown field"):
            self.assertIn(problem, out.stderr)
        providers = os.path.join(self.state_dir, "providers", "terraform")
        self.assertFalse(any(name.startswith("pr-") for name in os.listdir(providers)) if os.path.isdir(providers) else False)


if __name__ == "__main__":
    unittest.main()
