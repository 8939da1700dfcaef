"""`prevue serve` end to end: a watched repository's branches become
previews reachable through the proxy, pushes redeploy only what changed,
merges and deleted branches tear them down, and restarts lose nothing."""

import json
import os
import signal
import subprocess
import unittest

from prevue_e2e import (PREVUE, SEEDED_ITEMS, Daemon, PrevueTestCase, commit_all, edit, git, make_template_repo, page_items,
                        primary_host, process_alive, service_pids, set_banner, set_lease)


class Serve(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        set_lease(self.repo, {"ttl": "1h", "idle": "1h", "end": "destroy", "grace": "0s"})
        self.daemon = Daemon(self.scratch, [self.repo]).start()

    def tearDown(self):
        self.daemon.stop()
        self.state_dir = self.daemon.state_dir  # let the base class clean up what is left
        super().tearDown()

    def branch(self, name, banner):
        git(self.repo, "checkout", "-q", "-b", name, "main")
        set_banner(self.repo, banner)
        sha = commit_all(self.repo, banner)
        git(self.repo, "checkout", "-q", "main")
        return sha

    def test_branch_push_merge_delete(self):
        sha = self.branch("feature/a", "Feature A")
        env = self.daemon.wait_env(1, "ready", sha)
        host = primary_host(env)
        self.assertTrue(host.startswith("pr-1-feature-a-") and host.endswith(".prevue.localhost"), host)
        self.assertTrue(env["url"].startswith(f"http://{host}:{self.daemon.proxy_port}/"))
        status, page, headers = self.daemon.get(host)
        self.assertEqual(status, 200)
        self.assertIn(f'<code id="commit">{sha}</code>', page)
        self.assertIn("Feature A", page)
        self.assertEqual(page_items(page), SEEDED_ITEMS)
        self.assertIn(host, self.daemon.hosts_file())
        env_dir = os.path.join(self.daemon.state_dir, "envs", env["slug"])
        pids = service_pids(env_dir)

        # A push that changes only the web service restarts only it.
        git(self.repo, "checkout", "-q", "feature/a")
        edit(self.repo, "web/server.py", 'VERSION_BANNER = "Feature A"', 'VERSION_BANNER = "Feature A, second push"')
        sha2 = commit_all(self.repo, "second push")
        git(self.repo, "checkout", "-q", "main")
        self.daemon.wait_env(1, "ready", sha2)
        after = service_pids(env_dir)
        self.assertEqual(after["api"], pids["api"], "api restarted though none of its files changed")
        self.assertNotEqual(after["web"], pids["web"])
        status, page, _ = self.daemon.get(host)
        self.assertIn(sha2, page)
        self.assertIn("second push", page)
        self.assertEqual(page_items(page), SEEDED_ITEMS)

        # Merging into the base tears it down.
        git(self.repo, "merge", "-q", "--no-ff", "feature/a", "-m", "merge feature/a")
        self.daemon.wait_gone(env["slug"])
        for pid in after.values():
            self.daemon.wait_for(lambda: not process_alive(pid), f"pid {pid} gone", 15)
        status, page, _ = self.daemon.get(host)
        self.assertEqual(status, 404)
        self.assertNotIn(host, self.daemon.hosts_file())
        self.assertFalse(os.path.exists(env_dir))

        # Deleting another PR's branch does the same.
        sha_b = self.branch("feature/b", "Feature B")
        env_b = self.daemon.wait_env(2, "ready", sha_b)
        pids_b = service_pids(os.path.join(self.daemon.state_dir, "envs", env_b["slug"]))
        git(self.repo, "branch", "-D", "feature/b")
        self.daemon.wait_gone(env_b["slug"])
        for pid in pids_b.values():
            self.daemon.wait_for(lambda: not process_alive(pid), f"pid {pid} gone", 15)
        self.assertEqual(self.daemon.get(primary_host(env_b))[0], 404)
        self.assertNotIn(primary_host(env_b), self.daemon.hosts_file())

        # The timeline tells the story, and the metrics count it.
        status, timeline = self.daemon.api_call("GET", f"/api/v1/environments/{env_b['slug']}/timeline")
        self.assertEqual(status, 200)
        kinds = [t["kind"] for t in timeline]
        for kind in ("received", "planned", "step", "ready", "destroyed"):
            self.assertIn(kind, kinds)
        status, metrics = self.daemon.api_call("GET", "/metrics")
        self.assertIn('prevue_environments{state="destroyed"} 2', metrics)
        self.assertIn("prevue_time_to_preview_seconds_count 3", metrics)
        self.assertIn('prevue_proxy_requests_total{status="404"}', metrics)
        self.assertIn("prevue_inbox_depth 0", metrics)

    def test_restart_keeps_environments_and_api_needs_the_token(self):
        sha = self.branch("feature/c", "Feature C")
        env = self.daemon.wait_env(1, "ready", sha)
        env_dir = os.path.join(self.daemon.state_dir, "envs", env["slug"])
        pids = service_pids(env_dir)
        self.assertEqual(self.daemon.stop(signal.SIGTERM), 0)
        for pid in pids.values():
            self.assertTrue(process_alive(pid), "a daemon stop must not stop the environments")
        self.daemon.start()
        self.assertEqual(self.daemon.get(primary_host(env))[0], 200)
        self.assertEqual(service_pids(env_dir), pids)
        self.assertEqual(self.daemon.environment(env["slug"])["state"], "ready")

        status, body = self.daemon.api_call("POST", f"/api/v1/environments/{env['slug']}/extend", {"duration": "2h"}, token=False)
        self.assertEqual(status, 401)
        status, body = self.daemon.api_call("POST", f"/api/v1/environments/{env['slug']}/extend", {"duration": "soon"})
        self.assertEqual(status, 400)
        status, body = self.daemon.api_call("POST", f"/api/v1/environments/{env['slug']}/extend", {"duration": "2h"})
        self.assertEqual(status, 200)
        status, body = self.daemon.api_call("POST", f"/api/v1/environments/{env['slug']}/pin", {"pinned": True})
        self.assertEqual(status, 200)
        self.assertTrue(body["lease"]["pinned"])
        status, body = self.daemon.api_call("DELETE", f"/api/v1/environments/{env['slug']}")
        self.assertEqual(status, 202)
        self.daemon.wait_gone(env["slug"])
        self.assertEqual(self.daemon.get(primary_host(env))[0], 404)

    def test_a_second_daemon_on_the_same_ports_is_refused(self):
        # The listeners share their ports between their own threads (SO_REUSEPORT); another
        # process must not join them and split the traffic.
        api_port = int(self.daemon.api.rsplit(":", 1)[1])
        for api, proxy in ((api_port + 0, 0), (0, self.daemon.proxy_port)):
            second = Daemon(self.scratch, [self.repo], name=f"second-{api}-{proxy}")
            with open(second.config_path, encoding="utf-8") as f:
                config = json.load(f)
            config["api"]["listen"] = f"127.0.0.1:{api}"
            config["proxy"]["listen"] = f"127.0.0.1:{proxy}"
            with open(second.config_path, "w", encoding="utf-8") as f:
                json.dump(config, f)
            run = subprocess.run([PREVUE, "serve", "--config", second.config_path], capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 1, run.stderr)
            self.assertIn("Address already in use", run.stderr)
        self.assertEqual(self.daemon.api_call("GET", "/healthz")[0], 200)

    def test_a_redeploy_whose_service_restarts_in_place_says_it_is_updating(self):
        # An app that cannot run twice side by side is restarted in place;
        # meanwhile the page says it is updating (zero-downtime updates are
        # in test_providers).
        git(self.repo, "checkout", "-q", "-b", "feature", "main")
        with open(os.path.join(self.repo, "prevue.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        manifest["local"] = {"update": "in_place"}
        with open(os.path.join(self.repo, "prevue.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
        set_banner(self.repo, "first version")
        commit_all(self.repo, "first")
        git(self.repo, "checkout", "-q", "main")
        env = self.daemon.wait_env(1, "ready")
        host = primary_host(env)
        git(self.repo, "checkout", "-q", "feature")
        # The new version takes 3 s to listen: the old one is stopped by then.
        edit(self.repo, "web/server.py", "def main():\n", "def main():\n    import time; time.sleep(3)\n")
        second = commit_all(self.repo, "slow start")
        git(self.repo, "checkout", "-q", "main")

        def updating_page():
            status, page, _ = self.daemon.get(host)
            return page if status == 503 and "updating to " + second[:12] in page else None
        page = self.daemon.wait_for(updating_page, "the updating page", 60)
        self.assertIn('http-equiv="refresh"', page)
        self.daemon.wait_env(1, "ready", second)
        self.assertEqual(self.daemon.get(host)[0], 200)

    def test_a_second_daemon_on_the_same_state_directory_is_refused(self):
        # Other ports, same state directory: it used to start, split the work
        # and overwrite the first one's serve.json.
        with open(self.daemon.config_path, encoding="utf-8") as f:
            config = json.load(f)
        config["api"]["listen"] = "127.0.0.1:0"
        config["proxy"]["listen"] = "127.0.0.1:0"
        second_config = os.path.join(self.scratch, "second.json")
        with open(second_config, "w", encoding="utf-8") as f:
            json.dump(config, f)
        serve_json = os.path.join(self.daemon.state_dir, "serve.json")
        with open(serve_json, encoding="utf-8") as f:
            before = f.read()
        run = subprocess.run([PREVUE, "serve", "--config", second_config], capture_output=True, text=True, timeout=60)
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertIn(f"pid {self.daemon.process.pid}", run.stderr)
        self.assertIn(self.daemon.api, run.stderr)
        self.assertIn("already using the state directory", run.stderr)
        with open(serve_json, encoding="utf-8") as f:
            self.assertEqual(f.read(), before)
        self.assertEqual(self.daemon.api_call("GET", "/healthz")[0], 200)
        # Once the first has stopped (even killed), the directory is free again.
        self.daemon.stop(signal.SIGKILL)
        self.daemon.start()

    def test_push_during_a_build_supersedes_it_and_builds_run_concurrently(self):
        slow = "def main():\n    import time; time.sleep(2)\n"
        for name in ("slow-a", "slow-b"):
            git(self.repo, "checkout", "-q", "-b", name, "main")
            edit(self.repo, "web/server.py", "def main():\n", slow)
            commit_all(self.repo, name)
            git(self.repo, "checkout", "-q", "main")
        envs = self.daemon.wait_for(lambda: len([e for e in self.daemon.environments() if e["state"] == "provisioning"]) == 2
                                    and self.daemon.environments(), "two builds at once", 30)
        first = [e for e in envs if e["ref"] == "slow-a"][0]
        # Push to slow-a while it builds.
        git(self.repo, "checkout", "-q", "slow-a")
        set_banner(self.repo, "Superseding push")
        sha2 = commit_all(self.repo, "superseding push")
        git(self.repo, "checkout", "-q", "main")
        env = self.daemon.wait_env(first["pr"], "ready", sha2, timeout=60)
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertIn("Superseding push", page)
        status, timeline = self.daemon.api_call("GET", f"/api/v1/environments/{env['slug']}/timeline")
        self.assertIn("superseded", [t["kind"] for t in timeline], timeline)
        self.daemon.wait_env(2 if first["pr"] == 1 else 1, "ready")

    def test_building_and_failed_pages(self):
        git(self.repo, "checkout", "-q", "-b", "broken", "main")
        edit(self.repo, "api/server.py", "def main():\n", "def main():\n    raise SystemExit('api: broken on purpose')\n")
        sha = commit_all(self.repo, "break the api")
        git(self.repo, "checkout", "-q", "main")
        env = self.daemon.wait_env(1, "failed")
        self.assertEqual(env["commit"], sha)
        status, page, headers = self.daemon.get(f"{env['slug']}.prevue.localhost")
        self.assertEqual(status, 502)
        self.assertIn("apply", page)
        self.assertIn("broken on purpose", page)
        # For reviewers: no path of the server, an error that wraps, no command
        # they cannot run, and a page that reloads to show the next build.
        self.assertNotIn(self.daemon.state_dir, page)
        self.assertNotIn(self.scratch, page)
        self.assertIn("white-space:pre-wrap", page)
        self.assertNotIn("prevue logs", page)
        self.assertIn('http-equiv="refresh"', page)
        self.assertTrue(headers.get("Retry-After"))
        status, page, _ = self.daemon.get("nothing-here.prevue.localhost")
        self.assertEqual(status, 404)


if __name__ == "__main__":
    unittest.main()
