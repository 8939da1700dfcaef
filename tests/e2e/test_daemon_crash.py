"""kill -9 of `prevue serve` while an environment is provisioning: after a
restart the environment converges to ready (or is cleaned up if its branch
went away meanwhile), and no orphan process is left."""

import os
import signal
import subprocess
import time
import unittest

from prevue_e2e import (PREVUE, PROVIDER_DIR, SEEDED_ITEMS, Daemon, PrevueTestCase, commit_all, git, make_template_repo,
                        page_items, primary_host, processes_mentioning, set_banner, slow_web_start)


class DaemonCrash(PrevueTestCase):
    def slow_branch(self, name):
        git(self.repo, "checkout", "-q", "-b", name, "main")
        # A slow start keeps the environment provisioning long enough to kill the daemon there.
        slow_web_start(self.repo)
        sha = commit_all(self.repo, "slow start")
        git(self.repo, "checkout", "-q", "main")
        return sha

    def kill_while_provisioning(self, pr):
        def provisioning():
            for env in self.daemon.environments():
                if env["pr"] == pr and env["state"] == "provisioning":
                    return env
            return None
        env = self.daemon.wait_for(provisioning, "provisioning", 30)
        time.sleep(0.5)  # inside the apply step, waiting for the slow health check
        self.daemon.stop(signal.SIGKILL)
        return env

    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        self.daemon = Daemon(self.scratch, [self.repo])
        self.state_dir = self.daemon.state_dir

    def tearDown(self):
        self.daemon.stop()
        super().tearDown()

    def test_converges_to_ready(self):
        sha = self.slow_branch("slow")
        self.daemon.start()
        env = self.kill_while_provisioning(1)
        self.daemon.start()
        ready = self.daemon.wait_env(1, "ready", sha)
        self.assertEqual(ready["slug"], env["slug"])
        status, page, _ = self.daemon.get(primary_host(ready))
        self.assertEqual(status, 200)
        self.assertEqual(page_items(page), SEEDED_ITEMS)
        env_dir = os.path.join(self.daemon.state_dir, "envs", env["slug"])
        running = [p for p in processes_mentioning(env_dir) if "server.py" in p[1]]
        self.assertEqual(len(running), 2, running)

    def test_update_interrupted_by_kill_is_taken_over_at_once(self):
        # The killed daemon's claim on the environment (30 min time to live)
        # used to block its successor: the update never finished, the new
        # daemon retried in a hot loop and wrote a megabyte of log a second.
        git(self.repo, "checkout", "-q", "-b", "feature", "main")
        set_banner(self.repo, "feature branch")
        first = commit_all(self.repo, "feature")
        git(self.repo, "checkout", "-q", "main")
        self.daemon.start()
        self.daemon.wait_env(1, "ready", first)
        git(self.repo, "checkout", "-q", "feature")
        slow_web_start(self.repo)
        second = commit_all(self.repo, "slow start")
        git(self.repo, "checkout", "-q", "main")
        self.kill_while_provisioning(1)
        log_before = len(self.daemon.read_log())
        self.daemon.start()
        ready = self.daemon.wait_env(1, "ready", second, timeout=60)
        log = self.daemon.read_log()[log_before:]
        self.assertIn("claim.taken_over", log)
        self.assertLess(log.count("op.start"), 10, log[-3000:])
        self.assertEqual(ready["deployed_commit"], second)

    def test_cleaned_up_when_the_branch_went_away(self):
        self.slow_branch("doomed")
        self.daemon.start()
        env = self.kill_while_provisioning(1)
        git(self.repo, "branch", "-D", "doomed")
        self.daemon.start()
        self.daemon.wait_gone(env["slug"])
        env_dir = os.path.join(self.daemon.state_dir, "envs", env["slug"])
        self.daemon.wait_for(lambda: not processes_mentioning(env_dir), "no process of the environment", 20)
        self.assertFalse(os.path.exists(env_dir))

    def test_restart_removes_names_of_previews_gone_meanwhile(self):
        # With no preview left to publish, the restarted daemon used to skip
        # DNS altogether: the names stayed in the hosts file for good.
        git(self.repo, "checkout", "-q", "-b", "feature", "main")
        set_banner(self.repo, "feature branch")
        sha = commit_all(self.repo, "feature")
        git(self.repo, "checkout", "-q", "main")
        self.daemon.start()
        env = self.daemon.wait_env(1, "ready", sha)
        self.daemon.wait_for(lambda: env["slug"] in self.daemon.hosts_file(), "its DNS name published", 20)
        self.daemon.stop(signal.SIGKILL)
        git(self.repo, "branch", "-D", "feature")
        down = subprocess.run([PREVUE, "--state-dir", self.state_dir, "down", "--all"] +
                              (["--provider-dir", PROVIDER_DIR] if PROVIDER_DIR else []), capture_output=True, text=True,
                              timeout=120)
        self.assertEqual(down.returncode, 0, down.stderr)
        self.daemon.start()
        self.daemon.wait_for(lambda: env["slug"] not in self.daemon.hosts_file(), "its DNS name removed", 20)


if __name__ == "__main__":
    unittest.main()
