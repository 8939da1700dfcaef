"""`prevue gc`: two at once, beside the running daemon, tear each expired
environment down exactly once; an orphan (a `local` environment with no
store row) is swept."""

import os
import sqlite3
import subprocess
import threading
import time
import unittest

from prevue_e2e import (PREVUE, PROVIDER_DIR, Daemon, PrevueTestCase, commit_all, git, make_template_repo,
                        process_alive, service_pids, set_banner, set_lease)


class Gc(PrevueTestCase):
    def gc(self, config, *args):
        cmd = [PREVUE, "gc", "--config", config] + (["--provider-dir", PROVIDER_DIR] if PROVIDER_DIR else []) + list(args)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def down_runs(self, state_dir):
        db = sqlite3.connect(os.path.join(state_dir, "prevue.db"))
        rows = db.execute("SELECT e.slug, COUNT(r.id) FROM environments e LEFT JOIN runs r ON r.env_id = e.id "
                          "AND r.kind = 'down' AND r.state = 'succeeded' GROUP BY e.slug").fetchall()
        db.close()
        return dict(rows)

    def test_two_gcs_and_the_daemon_tear_down_once(self):
        repo = make_template_repo(self.scratch)
        branches = ["one", "two", "three"]
        for name in branches:
            git(repo, "checkout", "-q", "-b", name, "main")
            set_lease(repo, {"ttl": "1h", "idle": "4s", "end": "destroy", "grace": "0s"})
            set_banner(repo, name)
            commit_all(repo, name)
            git(repo, "checkout", "-q", "main")
        daemon = Daemon(self.scratch, [repo]).start()
        self.state_dir = daemon.state_dir
        try:
            for pr in (1, 2, 3):
                daemon.wait_env(pr, "ready")
            envs = {e["slug"]: service_pids(os.path.join(daemon.state_dir, "envs", e["slug"])) for e in daemon.environments()}
            self.assertEqual(len(envs), 3)
            dry = self.gc(daemon.config_path, "--dry-run")
            out, err = dry.communicate(timeout=60)
            self.assertEqual(dry.returncode, 0, err)

            # Two gc loops race the daemon's own lease timer across the idle deadline.
            outputs, failures = [], []

            def loop():
                end = time.monotonic() + 8
                while time.monotonic() < end:
                    run = self.gc(daemon.config_path)
                    out, err = run.communicate(timeout=120)
                    outputs.append(out)
                    if run.returncode != 0:
                        failures.append(out + err)
                    time.sleep(0.05)
            threads = [threading.Thread(target=loop) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(failures, [])
            daemon.wait_for(lambda: daemon.environments() == [], "all torn down", 30)
            self.assertEqual(self.down_runs(daemon.state_dir), {slug: 1 for slug in envs})
            for slug, pids in envs.items():
                for pid in pids.values():
                    daemon.wait_for(lambda: not process_alive(pid), f"{slug} pid {pid} gone", 15)
        finally:
            daemon.stop()

    def test_two_gcs_at_once_without_the_daemon(self):
        repo = make_template_repo(self.scratch)
        git(repo, "checkout", "-q", "-b", "feature")
        # Ended the moment each is ready: gc has something to do, with no wait.
        set_lease(repo, {"ttl": "1ms", "idle": "1h", "end": "destroy", "grace": "0s"})
        git(repo, "checkout", "-q", "main")
        for pr in (1, 2, 3):
            env, out = self.up(repo, pr, "feature")
            self.assertTrue(env["ok"], out.stderr)
        slugs = set(self.environments())
        cmd = [PREVUE, "--state-dir", self.state_dir, "gc"] + (["--provider-dir", PROVIDER_DIR] if PROVIDER_DIR else [])
        runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [r.communicate(timeout=120) for r in runs]
        for r, (out, err) in zip(runs, outputs):
            self.assertEqual(r.returncode, 0, out + err)
        said = "".join(out for out, _ in outputs)
        for slug in slugs:
            self.assertEqual(said.count(f"destroyed {slug} "), 1, said)
        self.assertEqual(self.environments(), {})
        self.assertEqual(self.down_runs(self.state_dir), {slug: 1 for slug in slugs})

    def test_orphan_is_swept(self):
        repo = make_template_repo(self.scratch)
        env, _ = self.up(repo, 1, "main")
        self.assertTrue(env["ok"], env)
        env_dir = self.environments()[env["slug"]]["dir"]
        pids = service_pids(env_dir)
        # The store forgets it: the processes and directory are now orphans.
        db = sqlite3.connect(os.path.join(self.state_dir, "prevue.db"))
        env_id = db.execute("SELECT id FROM environments WHERE slug = ?", (env["slug"],)).fetchone()[0]
        for table in ("routes", "leases", "timeline", "claims"):
            db.execute(f"DELETE FROM {table} WHERE env_id = ?", (env_id,))
        db.execute("DELETE FROM steps WHERE run_id IN (SELECT id FROM runs WHERE env_id = ?)", (env_id,))
        db.execute("DELETE FROM runs WHERE env_id = ?", (env_id,))
        db.execute("DELETE FROM environments WHERE id = ?", (env_id,))
        db.commit()
        db.close()

        dry = self.prevue("gc", "--dry-run")
        self.assertIn(f"would sweep orphan {env['slug']}", dry.stdout)
        self.assertTrue(os.path.exists(env_dir))
        out = self.prevue("gc")
        self.assertIn(f"swept orphan {env['slug']}", out.stdout)
        self.assertFalse(os.path.exists(env_dir))
        for pid in pids.values():
            self.assertFalse(process_alive(pid))
        self.assertIn("nothing to clean", self.prevue("gc").stdout)


if __name__ == "__main__":
    unittest.main()
