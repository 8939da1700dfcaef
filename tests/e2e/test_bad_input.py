"""Bad input: each case exits non-zero with a message naming the cause,
leaves the environment `failed` in `prevue ls` with its log in `prevue logs`,
and `prevue down` then cleans up."""

import json
import os
import unittest

from prevue_e2e import PrevueTestCase, commit_all, edit, git, local_record, make_template_repo, process_alive, write


class BadInput(PrevueTestCase):
    def broken_branch(self, repo, branch, change):
        git(repo, "checkout", "-q", "-b", branch, "main")
        change(repo)
        commit_all(repo, f"break: {branch}")
        git(repo, "checkout", "-q", "main")

    def expect_failure(self, repo, pr, ref, step, message):
        out = self.prevue("up", "--repo", repo, "--pr", str(pr), "--ref", ref, check=False)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn(message, out.stderr)
        self.assertIn(f"failed at step '{step}'", out.stderr)

        envs = [e for e in self.environments().values() if e["pr"] == pr]
        self.assertEqual(len(envs), 1)
        env = envs[0]
        self.assertEqual(env["state"], "failed")
        self.assertEqual(env["failed_step"], step)
        self.assertIn(message, env["error"])

        logs = self.prevue("logs", env["slug"]).stdout
        self.assertIn(f"== {step} [failed", logs)
        self.assertIn(message, logs)

        pids = []
        record = local_record(env["dir"])
        if os.path.exists(record):
            with open(record, encoding="utf-8") as f:
                pids = [s["pid"] for s in json.load(f)["services"].values() if s["pid"]]
        self.prevue("down", env["slug"])
        self.assertFalse(os.path.exists(env["dir"]))
        for pid in pids:
            self.assertFalse(process_alive(pid), f"pid {pid} survived down")
        self.assertEqual(self.environments(all_states=True)[env["slug"]]["state"], "destroyed")
        return out

    def test_manifest_syntax_error(self):
        repo = make_template_repo(self.scratch)
        self.broken_branch(repo, "bad-json", lambda r: edit(r, "prevue.json", '"version": 1,', '"version": 1,,'))
        self.expect_failure(repo, 1, "bad-json", "manifest", "JSON syntax error at line 3")

    def test_number_too_large_for_a_double(self):
        # 1e400 used to abort prevue (an exception the parser did not catch).
        repo = make_template_repo(self.scratch)
        self.broken_branch(repo, "huge-number", lambda r: edit(r, "prevue.json", '"version": 1,', '"version": 1e400,'))
        render = self.prevue("render", "--repo", repo, "--ref", "huge-number", check=False)
        self.assertEqual(render.returncode, 1, render.stderr)
        self.assertIn("too large", render.stderr)
        self.expect_failure(repo, 7, "huge-number", "manifest", "number overflow")

    def test_config_number_too_large_for_a_double(self):
        config = os.path.join(self.scratch, "config.json")
        with open(config, "w", encoding="utf-8") as f:
            f.write('{"state_dir": "%s", "concurrency": 1e400}' % self.state_dir)
        for args in (["gc", "--config", config], ["gc", "--dry-run", "--config", config], ["serve", "--config", config]):
            out = self.prevue(*args, check=False)
            self.assertEqual(out.returncode, 1, (args, out.stderr))
            self.assertIn("config.json", out.stderr)
            self.assertIn("too large", out.stderr)

    def test_invalid_manifest_names_the_json_path(self):
        repo = make_template_repo(self.scratch)
        self.broken_branch(repo, "bad-field", lambda r: edit(r, "prevue.json", '"port": "http",', '"port": 8080,'))
        self.expect_failure(repo, 2, "bad-field", "manifest", "$.services.web.port must be a string")

    def test_unknown_placeholder(self):
        repo = make_template_repo(self.scratch)
        self.broken_branch(repo, "bad-placeholder",
                           lambda r: edit(r, "deploy/web-config.json.tmpl", '"{{ env.slug }}"', '"{{ param.nope }}"'))
        self.expect_failure(repo, 3, "bad-placeholder", "render",
                            "deploy/web-config.json.tmpl:6: unknown placeholder 'param.nope'")

    def test_service_that_exits_at_once(self):
        repo = make_template_repo(self.scratch)
        self.broken_branch(repo, "crashing-api", lambda r: edit(
            r, "api/server.py", "def main():\n", "def main():\n    raise SystemExit('api: cannot start, DATABASE_URL missing')\n"))
        out = self.expect_failure(repo, 4, "crashing-api", "apply", "service api exited before it became healthy")
        self.assertIn("DATABASE_URL missing", out.stderr)  # the tail of the service's own log

    def test_health_check_that_never_passes(self):
        repo = make_template_repo(self.scratch)

        def break_health(r):
            edit(r, "prevue.json", '"health": { "path": "/healthz", "timeout": "30s" },\n      "paths": ["api"]',
                 '"health": { "path": "/never-healthy", "timeout": "2s" },\n      "paths": ["api"]')
        self.broken_branch(repo, "unhealthy", break_health)
        self.expect_failure(repo, 5, "unhealthy", "apply", "did not pass its health check GET /never-healthy")

    def test_seed_sql_error(self):
        repo = make_template_repo(self.scratch)

        def break_seed(r):
            write(r, "seed/002-broken.sql", "INSERT INTO no_such_table VALUES (1);\n")
            edit(r, "prevue.json", '"files": ["seed/001-more-items.sql"]', '"files": ["seed/001-more-items.sql", "seed/002-broken.sql"]')
        self.broken_branch(repo, "bad-seed", break_seed)
        self.expect_failure(repo, 6, "bad-seed", "seed: snapshot", "SQL error in seed/002-broken.sql: no such table: no_such_table")

    def test_unknown_ref(self):
        repo = make_template_repo(self.scratch)
        self.expect_failure(repo, 7, "no-such-branch", "resolve", "unknown ref 'no-such-branch'")

    def test_no_manifest_at_that_commit(self):
        repo = make_template_repo(self.scratch)
        self.broken_branch(repo, "no-manifest", lambda r: os.remove(os.path.join(r, "prevue.json")))
        self.expect_failure(repo, 8, "no-manifest", "manifest", "no prevue.json at the root of commit")

    def test_usage_errors_create_nothing(self):
        repo = make_template_repo(self.scratch)
        for args, message in (
            (["up", "--repo", repo, "--pr", "0", "--ref", "main"], "--pr"),
            (["up", "--repo", repo, "--pr", "x", "--ref", "main"], "--pr"),
            (["up", "--repo", repo, "--pr", "1"], "give --ref REF or --sha SHA"),
            (["up", "--repo", repo, "--pr", "1", "--ref", "main", "--sha", "abc"], "excludes"),
            (["up", "--repo", os.path.join(self.scratch, "missing"), "--pr", "1", "--ref", "main"],
             "is neither an existing path nor a URL"),
            (["down", "pr-404-nothing"], "no environment called 'pr-404-nothing'"),
            (["logs", "pr-404-nothing"], "no environment called 'pr-404-nothing'"),
            (["frobnicate"], "frobnicate"),
        ):
            out = self.prevue(*args, check=False)
            self.assertNotEqual(out.returncode, 0, args)
            self.assertIn(message, out.stderr, args)
        self.assertEqual(self.environments(all_states=True), {})

    def test_help_on_every_command(self):
        for command in ("up", "down", "ls", "logs", "render"):
            out = self.prevue(command, "--help")
            self.assertIn("Usage", out.stdout + out.stderr, command)


if __name__ == "__main__":
    unittest.main()
