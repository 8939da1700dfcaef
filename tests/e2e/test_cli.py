"""The CLI as a new user meets it: `prevue up` shows its progress and says a
failure once with hints that work as given, `prevue down --all` removes
everything, `prevue gc --dry-run` changes nothing (not even by creating a
state directory) and lists each environment once, and an API request for an
unknown ref is visible in the API's and `prevue events`' lists."""

import json
import os
import signal
import unittest

from prevue_e2e import Daemon, PrevueTestCase, commit_all, edit, git, make_template_repo, set_banner, set_lease, wait_until


class Cli(PrevueTestCase):
    def test_up_progress_one_error_and_hints_that_work(self):
        repo = make_template_repo(self.scratch)
        git(repo, "checkout", "-q", "-b", "broken", "main")
        edit(repo, "api/server.py", "def main():\n", "def main():\n    raise SystemExit('api: broken on purpose')\n")
        commit_all(repo, "break")
        out = self.prevue("up", "--repo", repo, "--pr", "1", "--ref", "broken", check=False)
        self.assertEqual(out.returncode, 1)
        for step in ("fetch", "manifest", "apply"):
            self.assertIn(f"  {step} ...", out.stderr)
        self.assertRegex(out.stderr, r"apply FAILED \(\d+ ms\)")
        self.assertEqual(out.stderr.count("failed at step 'apply'"), 1, out.stderr)
        self.assertEqual(out.stderr.count("service api exited before it became healthy"), 1, out.stderr)
        # The hints name this state directory, so they work when pasted.
        hint = out.stderr.strip().splitlines()[-1]
        self.assertIn(f"--state-dir '{self.state_dir}'", hint)
        self.assertEqual(out.stdout, "")

    def test_serve_logs_json_lines(self):
        repo = make_template_repo(self.scratch)
        git(repo, "checkout", "-q", "-b", "feature")
        set_banner(repo, "json logs")
        sha = commit_all(repo, "feature")
        git(repo, "checkout", "-q", "main")
        daemon = Daemon(self.scratch, [repo])
        daemon.serve_args = ["--log-format", "json"]
        daemon.start()
        try:
            daemon.wait_env(1, "ready", sha)
        finally:
            daemon.stop()
        events = [json.loads(line) for line in daemon.read_log().splitlines() if line.strip()]
        names = [e["event"] for e in events]
        self.assertIn("serve.started", names)
        self.assertEqual(names[-1], "serve.stopped")
        done = next(e for e in events if e["event"] == "op.done")
        self.assertEqual((done["op"], done["ok"], done["level"]), ("up", "true", "info"))
        self.assertTrue(all(isinstance(e["ts"], int) for e in events))

    def test_down_all(self):
        repo = make_template_repo(self.scratch)
        for pr, name in ((1, "one"), (2, "two")):
            git(repo, "checkout", "-q", "-b", name, "main")
            set_banner(repo, name)
            commit_all(repo, name)
            git(repo, "checkout", "-q", "main")
            self.prevue("up", "--repo", repo, "--pr", str(pr), "--ref", name)
        self.assertEqual(len(self.environments()), 2)
        out = self.prevue("down", "--all")
        self.assertEqual(out.stderr.count(" destroyed"), 2, out.stderr)
        self.assertEqual(self.environments(), {})
        self.assertIn("no environments", self.prevue("down", "--all").stderr)

    def test_gc_dry_run_creates_nothing_and_lists_each_environment_once(self):
        nowhere = os.path.join(self.scratch, "never-made")
        out = self.prevue("gc", "--dry-run", state_dir=nowhere)
        self.assertIn("nothing to clean", out.stdout)
        self.assertFalse(os.path.exists(nowhere))

        repo = make_template_repo(self.scratch)
        git(repo, "checkout", "-q", "-b", "feature", "main")
        set_lease(repo, {"ttl": "1h", "idle": "1h", "end": "destroy", "grace": "2s"})
        git(repo, "checkout", "-q", "main")
        daemon = Daemon(self.scratch, [repo]).start()
        try:
            env = daemon.wait_env(1, "ready")
            daemon.stop()
            # Merged: the next start's poll records it and revokes the lease
            # (2 s of grace); killed then, the daemon leaves the teardown to
            # gc, whose two passes (ended leases, closed pull requests) both see it.
            git(repo, "merge", "-q", "--no-ff", "feature", "-m", "merge")
            daemon.start()
            daemon.wait_for(lambda: any(e["action"] == "merged" for e in self.events(daemon)), "the merge event")
            daemon.stop(signal.SIGKILL)
        finally:
            daemon.stop()
        out = wait_until(lambda: (lambda o: o if env["slug"] in o.stdout else None)(
            self.prevue("gc", "--dry-run", "--config", daemon.config_path)), "gc to see the ended lease", timeout=30)
        self.assertEqual(out.stdout.count(env["slug"]), 1, out.stdout)

    def events(self, daemon):
        status, events = daemon.api_call("GET", "/api/v1/events")
        return events if status == 200 else []

    def test_api_request_for_an_unknown_ref_is_visible(self):
        repo = make_template_repo(self.scratch)
        daemon = Daemon(self.scratch, [repo]).start()
        self.state_dir = daemon.state_dir
        try:
            status, reply = daemon.api_call("POST", "/api/v1/environments", {"repo": repo, "pr": 5, "ref": "no-such-branch"})
            self.assertEqual(status, 202)
            delivery = reply["delivery_id"]
            event = wait_until(lambda: next((e for e in self.events(daemon) if e["delivery_id"] == delivery), None),
                               "the request's event")
            self.assertEqual(event["status"], "failed")
            self.assertIn("no-such-branch", event["note"])
            listing = self.prevue("events", "--json").stdout
            self.assertIn("no-such-branch", listing)
        finally:
            daemon.stop()


if __name__ == "__main__":
    unittest.main()
