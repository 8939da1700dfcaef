"""Branch names are untrusted text: they become valid DNS-label slugs and
never reach a shell."""

import os
import re
import unittest

from prevue_e2e import PrevueTestCase, commit_all, edit, git, http_get, make_template_repo

HOSTILE_BRANCHES = [
    "x;touch${IFS}pwned",
    "$(touch${IFS}pwned2)",
    "`touch${IFS}pwned3`",
    "b" * 200,
]


class HostileNames(PrevueTestCase):
    def test_hostile_branch_names(self):
        repo = make_template_repo(self.scratch)
        # The branch name also reaches the page title through a parameter.
        for i, branch in enumerate(HOSTILE_BRANCHES):
            git(repo, "checkout", "-q", "-b", branch, "main")
            edit(repo, "web/server.py", 'VERSION_BANNER = "Reference app"', f'VERSION_BANNER = "branch {i}"')
            commit_all(repo, f"branch {i}")
            git(repo, "checkout", "-q", "main")

        slugs = {}
        for pr, branch in enumerate(HOSTILE_BRANCHES, start=10):
            env, out = self.up(repo, pr, branch)
            self.assertTrue(env["ok"], f"{branch!r}: {out.stdout} {out.stderr}")
            slug = env["slug"]
            self.assertRegex(slug, r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
            self.assertLessEqual(len(slug), 63)
            status, page = http_get(env["url"])
            self.assertEqual(status, 200)
            self.assertIn(f"branch {pr - 10}", page)
            slugs[branch] = slug
        self.assertEqual(len(set(slugs.values())), len(HOSTILE_BRANCHES))

        # Stable: the same PR keeps its slug.
        again, _ = self.up(repo, 10, HOSTILE_BRANCHES[0])
        self.assertEqual(again["slug"], slugs[HOSTILE_BRANCHES[0]])

        for slug in slugs.values():
            self.prevue("down", slug)

        for root in (self.scratch, repo, os.getcwd(), "/tmp"):
            for dirpath, _, files in os.walk(root):
                for name in files:
                    self.assertFalse(re.fullmatch(r"pwned\d?", name), f"found {os.path.join(dirpath, name)}")


if __name__ == "__main__":
    unittest.main()
