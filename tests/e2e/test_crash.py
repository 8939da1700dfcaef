"""A `prevue up` killed with SIGKILL mid-provisioning is resumed by the next
run: the environment converges to ready, with no duplicate or orphan process."""

import json
import os
import signal
import subprocess
import time
import unittest

from prevue_e2e import (PREVUE, PROVIDER_DIR, SEEDED_ITEMS, PrevueTestCase, commit_all, edit, http_get, make_template_repo,
                        page_items, process_alive, processes_mentioning)


class Crash(PrevueTestCase):
    def test_kill_during_provisioning_then_resume(self):
        repo = make_template_repo(self.scratch)
        # A slow start keeps the environment in `provisioning` long enough to kill prevue there.
        edit(repo, "web/server.py", "def main():\n", "def main():\n    import time; time.sleep(3)\n")
        commit_all(repo, "slow web start")

        cmd = [PREVUE, "--state-dir", self.state_dir] + (["--provider-dir", PROVIDER_DIR] if PROVIDER_DIR else [])
        victim = subprocess.Popen(cmd + ["up", "--repo", repo, "--pr", "1", "--ref", "main"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.scratch)
        deadline = time.monotonic() + 30
        slug = None
        while time.monotonic() < deadline:
            envs = self.environments()
            if envs:
                slug, env = next(iter(envs.items()))
                if env["state"] == "provisioning" and "== apply [running" in self.prevue("logs", slug).stdout:
                    break
            time.sleep(0.05)
        else:
            victim.kill()
            self.fail("never saw the environment provisioning")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        self.assertEqual(self.environments()[slug]["state"], "provisioning")

        out = self.prevue("up", "--repo", repo, "--pr", "1", "--ref", "main", "--json", check=False)
        result = json.loads(out.stdout)
        self.assertTrue(result["ok"], out.stdout + out.stderr)
        self.assertEqual(result["slug"], slug)
        status, page = http_get(result["url"])
        self.assertEqual(status, 200)
        self.assertEqual(page_items(page), SEEDED_ITEMS)

        env_dir = self.environments()[slug]["dir"]
        # One process per service, none duplicated by the interrupted run.
        running = [p for p in processes_mentioning(env_dir) if "server.py" in p[1]]
        self.assertEqual(len(running), 2, running)

        self.prevue("down", slug)
        deadline = time.monotonic() + 10
        while processes_mentioning(env_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(processes_mentioning(env_dir), [])
        self.assertFalse(os.path.exists(env_dir))


if __name__ == "__main__":
    unittest.main()
