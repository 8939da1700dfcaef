"""hooks/post-receive: a push to a self-hosted bare repository gets its
preview without waiting for the poll interval (here one hour)."""

import os
import shutil
import subprocess
import unittest

from prevue_e2e import Daemon, PrevueTestCase, commit_all, git, make_template_repo, set_banner

HOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "hooks", "post-receive")


class PostReceiveHook(PrevueTestCase):
    def test_push_triggers_a_poll(self):
        work = make_template_repo(self.scratch)
        bare = os.path.join(self.scratch, "server.git")
        subprocess.run(["git", "clone", "-q", "--bare", work, bare], check=True)
        daemon = Daemon(self.scratch, [bare])
        with open(daemon.config_path, encoding="utf-8") as f:
            text = f.read()
        with open(daemon.config_path, "w", encoding="utf-8") as f:
            f.write(text.replace('"poll_interval": "300ms"', '"poll_interval": "1h"'))
        daemon.start()
        self.state_dir = daemon.state_dir
        try:
            shutil.copy(HOOK, os.path.join(bare, "hooks", "post-receive"))
            os.chmod(os.path.join(bare, "hooks", "post-receive"), 0o755)
            git(bare, "config", "prevue.url", daemon.api)
            git(bare, "config", "prevue.token", daemon.token)

            git(work, "remote", "add", "origin", bare)
            git(work, "checkout", "-q", "-b", "hooked")
            set_banner(work, "Pushed to the server")
            sha = commit_all(work, "hooked")
            push = subprocess.run(["git", "push", "-q", "origin", "hooked"], cwd=work, capture_output=True, text=True)
            self.assertEqual(push.returncode, 0, push.stderr)
            self.assertNotIn("could not reach", push.stderr)
            env = daemon.wait_env(1, "ready", sha, timeout=60)
            status, page, _ = daemon.get(env["url"].split("//", 1)[1].split(":", 1)[0])
            self.assertEqual(status, 200)
            self.assertIn("Pushed to the server", page)

            # A daemon that is down never rejects a push.
            daemon.stop()
            set_banner(work, "Pushed while the daemon was down")
            commit_all(work, "second")
            push = subprocess.run(["git", "push", "-q", "origin", "hooked"], cwd=work, capture_output=True, text=True)
            self.assertEqual(push.returncode, 0, push.stderr)
            self.assertIn("could not reach", push.stderr)
        finally:
            daemon.stop()


if __name__ == "__main__":
    unittest.main()
