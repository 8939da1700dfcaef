"""What a reviewer sees while a preview is being built: the building page
(503, Retry-After, reloading itself) and a name that resolves, from the
moment the pull request is known, through a daemon restart, until the
preview is ready. The daemon must survive every one of these requests (it
used to abort on the first: a miscompiled coroutine)."""

import os
import re
import signal
import unittest

from prevue_e2e import Daemon, PrevueTestCase, commit_all, git, make_template_repo, set_banner, set_web_build, wait_until


def gate_build(repo, gate):
    """The web service's build waits until `gate` exists: a first build that
    lasts exactly as long as the test wants."""
    set_web_build(repo, ["python3", "-c", f"import os, time\nwhile not os.path.exists({gate!r}): time.sleep(0.05)"])


class HoldingPages(PrevueTestCase):
    def preview_host(self, daemon):
        """The preview's name as published in DNS (the hosts file)."""
        def find():
            for line in daemon.hosts_file().splitlines():
                fields = line.split()
                if len(fields) >= 2 and fields[1].startswith("pr-1-"):
                    return fields[1]
            return None
        return wait_until(find, "the preview's name in DNS", timeout=30)

    def expect_building_page(self, daemon, host, sha, step=None):
        # The run names its step once its first step starts (a restarted
        # daemon resumes it a moment after it answers); from then on, always.
        wait_until(lambda: re.search(r"step <code>[a-z][^<]*</code>", daemon.get(host)[1]), "the page to name the run's step", timeout=60)
        for _ in range(3):
            status, body, headers = daemon.get(host)
            self.assertEqual(status, 503, body)
            self.assertIn("being built", body)
            self.assertIn('http-equiv="refresh"', body)
            self.assertTrue(headers.get("Retry-After"), headers)
            self.assertIn(f'href="{daemon.api}/#/p/pr-1-', body)  # the build's log, on the dashboard
            # Which commit, at which step, for how long so far.
            self.assertIn(f"Commit <code>{sha[:12]}</code>", body)
            self.assertRegex(body, r"step <code>[a-z][^<]*</code>")
            self.assertRegex(body, r"\d+(ms|s|m|h)[0-9a-z]* so far")
            self.assertNotIn(self.scratch, body)  # no server paths
        if step:  # the page follows the run as it moves on to `step`
            wait_until(lambda: re.search(rf"step <code>{step}[^<]*</code>", daemon.get(host)[1]), f"the page to show step {step}", timeout=60)
        self.assertIsNone(daemon.process.poll(), "prevue serve died answering the building page:\n" + daemon.read_log()[-3000:])

    def test_first_build_restart_and_ready(self):
        repo = make_template_repo(self.scratch)
        gate = os.path.join(self.scratch, "let-the-build-finish")
        git(repo, "checkout", "-q", "-b", "feature/slow", "main")
        gate_build(repo, gate)
        set_banner(repo, "slow branch")
        sha = commit_all(repo, "a slow build")
        git(repo, "checkout", "-q", "main")

        # No periodic pass during the test: routes must follow the build itself.
        daemon = Daemon(self.scratch, [repo], extra={"scheduler": {"reconcile_interval": "10m"}}).start()
        try:
            host = self.preview_host(daemon)
            self.expect_building_page(daemon, host, sha, step="apply")  # where the gated build waits

            # A restart during the build: the new daemon shows the same page.
            daemon.stop(signal.SIGKILL)
            daemon.start()
            self.expect_building_page(daemon, host, sha)
            self.assertIn(host, daemon.hosts_file())

            with open(gate, "w", encoding="utf-8"):
                pass
            daemon.wait_env(1, "ready", timeout=90)
            status, body, _ = daemon.get(host)
            self.assertEqual(status, 200, body)
            self.assertIn("slow branch", body)
        finally:
            with open(gate, "w", encoding="utf-8"):
                pass
            daemon.stop()


if __name__ == "__main__":
    unittest.main()
