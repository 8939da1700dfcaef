"""Leases on the real daemon with short limits, for the wiring: expiry
destroys, a proxy hit reaches the lease, and the sleep end stops the
processes until the next request wakes them. The timing rules themselves
(TTL, idle, renewal by hits, grace, wake) are tested with a fake clock on
the daemon's lease unit in tests/unit/lease_keeper_test.cc, and "an expired
preview stays down until the next push" in tests/unit/reconcile_test.cc."""

import os
import unittest

from prevue_e2e import (SEEDED_ITEMS, Daemon, PrevueTestCase, commit_all, git, make_template_repo, page_items,
                        primary_host, process_alive, service_pids, set_banner, set_lease, slow_web_start)


class Lease(PrevueTestCase):
    def start(self, lease, web_start_delay=0):
        self.repo = make_template_repo(self.scratch)
        git(self.repo, "checkout", "-q", "-b", "feature")
        if web_start_delay:
            slow_web_start(self.repo, web_start_delay)  # committed with the lease below
        set_lease(self.repo, lease)
        set_banner(self.repo, "Leased")
        self.sha = commit_all(self.repo, "feature")
        git(self.repo, "checkout", "-q", "main")
        self.daemon = Daemon(self.scratch, [self.repo]).start()
        env = self.daemon.wait_env(1, "ready", self.sha)
        self.env_dir = os.path.join(self.daemon.state_dir, "envs", env["slug"])
        return env

    def tearDown(self):
        if getattr(self, "daemon", None):
            self.daemon.stop()
            self.state_dir = self.daemon.state_dir
        super().tearDown()

    def test_expiry_destroys_and_proxy_hits_reach_the_lease(self):
        env = self.start({"ttl": "1h", "idle": "3s", "end": "destroy", "grace": "0s"})
        pids = service_pids(self.env_dir)
        host = primary_host(env)
        # A visit through the proxy is written back to the lease (how hits
        # renew it, tick by tick, is tests/unit/lease_keeper_test.cc).
        before = self.daemon.environment(env["slug"])["lease"]["last_active_ms"]
        status, page, _ = self.daemon.get(host)
        self.assertEqual(status, 200)
        self.daemon.wait_for(lambda: self.daemon.environment(env["slug"])["lease"]["last_active_ms"] > before,
                             "the hit flushed to the lease", 10)
        # Then, left alone, it expires and is torn down (within a timer tick, not a sweep).
        self.daemon.wait_gone(env["slug"], timeout=20)
        for pid in pids.values():
            self.daemon.wait_for(lambda: not process_alive(pid), f"pid {pid} gone", 15)
        self.assertEqual(self.daemon.get(host)[0], 404)
        status, timeline = self.daemon.api_call("GET", f"/api/v1/environments/{env['slug']}/timeline")
        self.assertIn("expired", [t["kind"] for t in timeline])
        status, metrics = self.daemon.api_call("GET", "/metrics")
        self.assertIn("prevue_lease_expiries_total 1", metrics)

    def test_sleep_and_wake(self):
        # The web service listens 3 s after it starts, longer than the test daemon's reconcile interval.
        env = self.start({"ttl": "1h", "idle": "2s", "end": "sleep", "grace": "0s"}, web_start_delay=3)
        pids = service_pids(self.env_dir)
        self.daemon.wait_env(1, "sleeping", timeout=20)
        for pid in pids.values():
            self.daemon.wait_for(lambda: not process_alive(pid), f"pid {pid} stopped", 15)
        self.assertTrue(os.path.exists(os.path.join(self.env_dir, "data", "app.db")), "sleep keeps the data")
        # The next request wakes it, is held, then answered.
        status, page, _ = self.daemon.get(primary_host(env), timeout=60)
        self.assertEqual(status, 200)
        self.assertIn(self.sha, page)
        self.assertEqual(page_items(page), SEEDED_ITEMS)
        self.assertEqual(self.daemon.environment(env["slug"])["state"], "ready")
        woken = service_pids(self.env_dir)
        for pid in woken.values():
            self.assertTrue(process_alive(pid))


if __name__ == "__main__":
    unittest.main()
