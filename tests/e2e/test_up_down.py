"""`prevue up` and `prevue down` on the reference application, for real."""

import json
import os
import unittest

from prevue_e2e import (SEEDED_ITEMS, PrevueTestCase, commit_all, edit, git, http_get, make_template_repo,
                        page_items, process_alive, service_pids)


class UpDown(PrevueTestCase):
    def test_two_branches_two_previews_then_nothing_left(self):
        repo = make_template_repo(self.scratch)
        main_sha = git(repo, "rev-parse", "HEAD")
        git(repo, "checkout", "-q", "-b", "feature/new-banner")
        edit(repo, "web/server.py", 'VERSION_BANNER = "Reference app"', 'VERSION_BANNER = "Feature banner"')
        feature_sha = commit_all(repo, "feature banner")
        git(repo, "checkout", "-q", "main")

        main_env, _ = self.up(repo, 1, "main")
        feature_env, _ = self.up(repo, 2, "feature/new-banner")
        self.assertTrue(main_env["ok"], main_env)
        self.assertTrue(feature_env["ok"], feature_env)
        self.assertNotEqual(main_env["slug"], feature_env["slug"])

        for env, sha, banner, pr in ((main_env, main_sha, "Reference app", 1),
                                     (feature_env, feature_sha, "Feature banner", 2)):
            status, page = http_get(env["url"])
            self.assertEqual(status, 200)
            self.assertIn(f'<code id="commit">{sha}</code>', page)
            self.assertIn(f'<strong id="pr">#{pr}</strong>', page)
            self.assertIn(banner, page)
            self.assertEqual(page_items(page), SEEDED_ITEMS)
            self.assertIn('"service": "api"', page.replace("&quot;", '"'))

        listed = self.environments()
        self.assertEqual({e["state"] for e in listed.values()}, {"ready"})
        dirs = {slug: e["dir"] for slug, e in listed.items()}
        pids = {slug: service_pids(d) for slug, d in dirs.items()}
        for slug in pids:
            for pid in pids[slug].values():
                self.assertTrue(process_alive(pid))

        self.prevue("down", main_env["slug"])
        self.prevue("down", "--repo", repo, "--pr", "2")

        for slug in pids:
            for service, pid in pids[slug].items():
                self.assertFalse(process_alive(pid), f"{slug} {service} pid {pid} still alive")
            self.assertFalse(os.path.exists(dirs[slug]), f"{dirs[slug]} still exists")
        self.assertEqual(self.environments(), {})
        self.assertEqual({e["state"] for e in self.environments(all_states=True).values()}, {"destroyed"})
        # Down twice is fine.
        self.assertIn("already destroyed", self.prevue("down", main_env["slug"]).stderr)

    def test_up_again_is_idempotent_and_an_update_restarts_only_what_changed(self):
        repo = make_template_repo(self.scratch)
        env, _ = self.up(repo, 5, "main")
        self.assertTrue(env["ok"], env)
        env_dir = self.environments()[env["slug"]]["dir"]
        before = service_pids(env_dir)

        again, _ = self.up(repo, 5, "main")
        self.assertTrue(again["ok"], again)
        self.assertEqual(again["url"], env["url"])
        self.assertEqual(service_pids(env_dir), before)

        # Change only the web service; the api keeps running, data is kept.
        edit(repo, "web/server.py", 'VERSION_BANNER = "Reference app"', 'VERSION_BANNER = "Second push"')
        new_sha = commit_all(repo, "second push")
        updated, _ = self.up(repo, 5, "main")
        self.assertTrue(updated["ok"], updated)
        after = service_pids(env_dir)
        self.assertEqual(after["api"], before["api"])
        self.assertNotEqual(after["web"], before["web"])
        self.assertFalse(process_alive(before["web"]))
        status, page = http_get(updated["url"])
        self.assertEqual(status, 200)
        self.assertIn(new_sha, page)
        self.assertIn("Second push", page)
        self.assertEqual(page_items(page), SEEDED_ITEMS)

        logs = self.prevue("logs", env["slug"]).stdout
        self.assertIn("update at", logs)
        self.assertIn("unchanged, left running: api", logs)
        web_log = self.prevue("logs", env["slug"], "--service", "web").stdout
        self.assertIn("web: listening on 127.0.0.1:", web_log)
        self.assertNotEqual(self.prevue("logs", env["slug"], "--service", "../../etc/passwd", check=False).returncode, 0)

    def test_sha_render_and_timings(self):
        repo = make_template_repo(self.scratch)
        sha = git(repo, "rev-parse", "HEAD")
        rendered = self.prevue("render", "--repo", repo, "--ref", "main", "--pr", "9")
        self.assertIn(f'"commit": "{sha}"', rendered.stdout)
        self.assertIn('"pr": 9', rendered.stdout)
        self.assertIn("apply (start or restart: api web)", rendered.stdout)
        self.assertIn("--port '<port.web>'", rendered.stdout)
        self.assertEqual(self.environments(all_states=True), {}, "render must not create anything")
        self.assertFalse(os.path.exists(os.path.join(self.state_dir, "envs")))

        # A repository given as a file:// URL works like a path.
        by_url = self.prevue("render", "--repo", "file://" + repo, "--ref", "main")
        self.assertIn(sha, by_url.stdout)

        env, _ = self.up(repo, 9, sha[:10])  # --ref with a sha is not a ref
        self.assertFalse(env["ok"])
        out = self.prevue("up", "--repo", repo, "--pr", "9", "--sha", sha[:10], "--json")
        result = json.loads(out.stdout)
        self.assertTrue(result["ok"], result)
        self.assertEqual(result["commit"], sha)
        timing = result["timing_ms"]
        self.assertGreater(timing["total"], 0)
        self.assertGreaterEqual(timing["total"], timing["children"])


if __name__ == "__main__":
    unittest.main()
