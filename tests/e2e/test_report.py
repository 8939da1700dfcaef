"""Reporting back to the git hosts, on the real daemon: signed deliveries
from GitHub, GitLab, Gitea and Bitbucket Cloud (the project's payloads pointed
at a local repository) create previews, and a local stand-in for each host's
REST API (fake_git_hosts.py, which refuses what the real API refuses)
records what prevue tells the pull request: statuses or deployments with the
link, one comment edited in place, inactive after teardown. A host that
answers 500 or never answers does not stop the preview, and gets its status
once it is back."""

import hashlib
import hmac
import json
import os
import urllib.error
import urllib.request

from fake_git_hosts import FakeGitHosts
from prevue_e2e import (Daemon, PrevueTestCase, commit_all, git, make_template_repo, primary_host, set_banner, set_lease,
                        wait_until, webhook_fixture)

SECRET = "report-test-secret"
TOKENS = {"github": "ghp_fake_0123456789", "gitlab": "glpat-fake-0123456789", "gitea": "gitea-fake-0123456789",
          "bitbucket": "bb-fake-0123456789"}



class Reporting(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        set_lease(self.repo, {"ttl": "2d", "idle": "4h", "end": "destroy", "grace": "0s"})
        self.heads = {}
        for branch in ("gh", "gl", "gt", "bb"):
            git(self.repo, "checkout", "-q", "-b", "feature/" + branch, "main")
            set_banner(self.repo, "Preview " + branch)
            self.heads[branch] = commit_all(self.repo, branch)
        git(self.repo, "checkout", "-q", "main")
        self.hosts = FakeGitHosts(TOKENS)
        token_file = os.path.join(self.scratch, "github-token")
        with open(token_file, "w", encoding="utf-8") as f:
            f.write(TOKENS["github"] + "\n")
        os.environ["PREVUE_TEST_GITLAB_TOKEN"] = TOKENS["gitlab"]

        def report(host, **more):
            settings = {"api_url": self.hosts.url(host), "timeout": "1s", "attempts": 2, "backoff": "100ms"}
            settings.update(more)
            return settings
        self.daemon = Daemon(self.scratch, [self.repo], extra={"webhooks": {
            "github": {"secret": SECRET, "report": report("github", token_file=token_file)},
            "gitlab": {"secret": SECRET, "report": report("gitlab", token_env="PREVUE_TEST_GITLAB_TOKEN")},
            "gitea": {"secret": SECRET, "report": report("gitea", token=TOKENS["gitea"])},
            "bitbucket": {"secret": SECRET, "report": report("bitbucket", token=TOKENS["bitbucket"])}}})
        with open(self.daemon.config_path, encoding="utf-8") as f:
            config = json.load(f)
        config["repositories"][0].update({"pull_requests": "webhooks",
                                          "names": ["octo/app", "group/app", "team/app", "space/app"]})
        with open(self.daemon.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        self.daemon.start()

    def tearDown(self):
        self.daemon.stop()
        self.hosts.close()
        os.environ.pop("PREVUE_TEST_GITLAB_TOKEN", None)
        super().tearDown()

    # ---- deliveries -------------------------------------------------------------------

    def deliver(self, host, body, headers):
        data = json.dumps(body).encode()
        headers = dict(headers, **{"Content-Type": "application/json"})
        if host == "github":
            headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
        elif host == "gitea":
            headers["X-Gitea-Signature"] = hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
        elif host == "bitbucket":
            headers["X-Hub-Signature"] = "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
        elif host == "gitlab":
            headers["X-Gitlab-Token"] = SECRET
        request = urllib.request.Request(self.daemon.api + "/hooks/" + host, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status
        except urllib.error.HTTPError as e:
            return e.code

    def github(self, name, pr, sha, delivery):
        body = webhook_fixture("github/" + name)
        body["number"] = pr
        body["pull_request"]["number"] = pr
        body["pull_request"]["head"].update({"sha": sha, "ref": "feature/gh"})
        body["pull_request"]["base"]["ref"] = "main"
        for side in ("head", "base"):
            body["pull_request"][side]["repo"]["full_name"] = "octo/app"
        body["repository"]["full_name"] = "octo/app"
        return self.deliver("github", body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery})

    def gitlab_open(self, iid, sha):
        body = webhook_fixture("gitlab/merge_request-open.json")
        body["project"].update({"id": 77, "path_with_namespace": "group/app"})
        attrs = body["object_attributes"]
        attrs.update({"iid": iid, "source_branch": "feature/gl", "target_branch": "main", "source_project_id": 77,
                      "target_project_id": 77})
        attrs["last_commit"]["id"] = sha
        return self.deliver("gitlab", body, {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Event-UUID": "gl-%d-%s" % (iid, sha)})

    def gitea_open(self, pr, sha):
        body = webhook_fixture("gitea/pull_request-opened.json")
        body["number"] = pr
        body["pull_request"]["number"] = pr
        body["pull_request"]["head"].update({"sha": sha, "ref": "feature/gt"})
        body["pull_request"]["base"]["ref"] = "main"
        for side in ("head", "base"):
            body["pull_request"][side]["repo"]["full_name"] = "team/app"
        body["repository"]["full_name"] = "team/app"
        return self.deliver("gitea", body, {"X-Gitea-Event": "pull_request", "X-Gitea-Delivery": "gt-%d-%s" % (pr, sha)})

    def bitbucket_created(self, pr, sha):
        body = webhook_fixture("bitbucket/cloud-pullrequest-created.json")
        body["repository"]["full_name"] = "space/app"
        body["pullrequest"]["id"] = pr
        body["pullrequest"]["source"]["commit"]["hash"] = sha[:12]  # Bitbucket Cloud sends 12 hex digits
        body["pullrequest"]["source"]["branch"]["name"] = "feature/bb"
        body["pullrequest"]["destination"]["branch"]["name"] = "main"
        for side in ("source", "destination"):
            body["pullrequest"][side]["repository"]["full_name"] = "space/app"
        return self.deliver("bitbucket", body, {"X-Event-Key": "pullrequest:created", "X-Request-UUID": "bb-%d-%s" % (pr, sha)})

    # ---- checks -----------------------------------------------------------------------

    def refused(self):
        return [r for r in self.hosts.requests if r["status"] not in (None, 200, 201)]

    def test_github_deployment_statuses_and_one_comment(self):
        self.assertEqual(self.github("pull_request-opened.json", 11, self.heads["gh"], "gh-open"), 202)
        env = self.daemon.wait_env(11, "ready", self.heads["gh"])
        deployments = "/github/repos/octo/app/deployments"
        wait_until(lambda: any(r["body"].get("state") == "success" for r in self.hosts.of("github", "POST", r"/statuses$")),
                   "the success status")
        created = self.hosts.of("github", "POST", deployments + "$")
        self.assertEqual(len(created), 1)
        self.assertEqual(created[0]["body"]["ref"], self.heads["gh"])
        self.assertEqual(created[0]["body"]["environment"], "preview/pr-11")
        self.assertTrue(created[0]["body"]["transient_environment"])
        self.assertFalse(created[0]["body"]["production_environment"])
        self.assertEqual(created[0]["headers"]["authorization"], "Bearer " + TOKENS["github"])
        self.assertEqual(created[0]["headers"]["x-github-api-version"], "2022-11-28")
        states = [r["body"]["state"] for r in self.hosts.of("github", "POST", r"/statuses$")]
        self.assertEqual(states, ["in_progress", "success"])
        success = self.hosts.of("github", "POST", r"/statuses$")[-1]["body"]
        self.assertEqual(success["environment_url"], env["url"])
        wait_until(lambda: self.hosts.of("github", "PATCH"), "the comment edited to ready")
        comments = self.hosts.of("github", "POST", r"/issues/11/comments$")
        self.assertEqual(len(comments), 1)
        ready = list(self.hosts.comments.values())[0]
        self.assertIn(env["url"], ready)
        self.assertIn("4h without visits", ready)
        self.assertIn("prevue extend " + env["slug"], ready)

        # A push: a new deployment for the new commit; the same comment, edited.
        git(self.repo, "checkout", "-q", "feature/gh")
        set_banner(self.repo, "Pushed again")
        sha2 = commit_all(self.repo, "second")
        git(self.repo, "checkout", "-q", "main")
        self.assertEqual(self.github("pull_request-synchronize.json", 11, sha2, "gh-sync"), 202)
        self.daemon.wait_env(11, "ready", sha2)
        wait_until(lambda: len([r for r in self.hosts.of("github", "POST", r"/statuses$") if r["body"]["state"] == "success"]) == 2,
                   "the second success")
        created = self.hosts.of("github", "POST", deployments + "$")
        self.assertEqual([d["body"]["ref"] for d in created], [self.heads["gh"], sha2])

        # An extend through the API: the comment says when the lease now ends.
        before = list(self.hosts.comments.values())[0]
        status, _ = self.daemon.api_call("POST", "/api/v1/environments/%s/extend" % env["slug"], {"duration": "3d"})
        self.assertEqual(status, 200)
        wait_until(lambda: list(self.hosts.comments.values())[0] != before, "the comment to show the new lease end")

        # Merged: inactive, and the comment says so.
        self.assertEqual(self.github("pull_request-closed-merged.json", 11, sha2, "gh-merged"), 202)
        self.daemon.wait_gone(env["slug"])
        wait_until(lambda: any(r["body"]["state"] == "inactive" for r in self.hosts.of("github", "POST", r"/statuses$")),
                   "the inactive status")
        wait_until(lambda: "removed" in list(self.hosts.comments.values())[0], "the comment to say removed")
        self.assertEqual(len(self.hosts.of("github", "POST", r"/comments$")), 1, "the comment is edited, never duplicated")
        self.assertEqual(self.refused(), [])
        self.assertNotIn(TOKENS["github"], self.daemon.read_log())

    def test_the_comment_warns_once_before_the_lease_ends_and_says_when_it_is_gone(self):
        # A 40 s lease (a visit does not extend it: its idle limit is an hour): warned for its last 20 s.
        git(self.repo, "checkout", "-q", "-b", "feature/short", "main")
        sha = set_lease(self.repo, {"ttl": "40s", "idle": "1h", "end": "destroy", "grace": "0s"})
        git(self.repo, "checkout", "-q", "main")
        self.assertEqual(self.github("pull_request-opened.json", 12, sha, "gh-short"), 202)
        env = self.daemon.wait_env(12, "ready", sha)

        def comment():
            return next(iter(self.hosts.comments.values()), "")
        wait_until(lambda: "Preview: ready" in comment(), "the comment to say ready")
        self.assertNotIn("Ending soon", comment())
        wait_until(lambda: "Ending soon" in comment(), "the comment to warn that the lease ends", 60)
        self.assertIn("Keep it longer with `prevue extend " + env["slug"], comment())
        self.daemon.wait_gone(env["slug"], timeout=90)
        # ("removed" alone is in the warning too: "the preview is removed on …")
        wait_until(lambda: "**Preview: removed**" in comment(), "the comment to say the preview is gone", 60)
        self.assertIn("its lease ran out", comment())
        edits = [r["body"]["body"] for r in self.hosts.of("github", "PATCH", r"/comments/")]
        self.assertEqual(sum("Ending soon" in body for body in edits), 1, edits)  # one edit for the warning, however many reports

    def test_gitlab_gitea_bitbucket_statuses(self):
        self.assertEqual(self.gitlab_open(21, self.heads["gl"]), 202)
        self.assertEqual(self.gitea_open(31, self.heads["gt"]), 202)
        self.assertEqual(self.bitbucket_created(41, self.heads["bb"]), 202)
        envs = {pr: self.daemon.wait_env(pr, "ready", self.heads[b]) for pr, b in ((21, "gl"), (31, "gt"), (41, "bb"))}

        def states(host, pattern):
            return [r["body"]["state"] for r in self.hosts.of(host, "POST", pattern)]
        gitlab_status = r"^/gitlab/api/v4/projects/77/statuses/" + self.heads["gl"] + "$"
        wait_until(lambda: "success" in states("gitlab", gitlab_status), "GitLab's success status")
        self.assertEqual(states("gitlab", gitlab_status), ["running", "success"])
        last = self.hosts.of("gitlab", "POST", gitlab_status)[-1]
        self.assertEqual(last["body"]["target_url"], envs[21]["url"])
        self.assertEqual(last["body"]["name"], "prevue")
        self.assertEqual(last["headers"]["private-token"], TOKENS["gitlab"])
        self.assertEqual(len(self.hosts.of("gitlab", "POST", r"/merge_requests/21/notes$")), 1)
        wait_until(lambda: self.hosts.of("gitlab", "PUT", r"/merge_requests/21/notes/\d+$"), "the MR note edited")

        gitea_status = r"^/gitea/api/v1/repos/team/app/statuses/" + self.heads["gt"] + "$"
        wait_until(lambda: "success" in states("gitea", gitea_status), "Gitea's success status")
        self.assertEqual(states("gitea", gitea_status), ["pending", "success"],
                         [r["body"].get("description") for r in self.hosts.of("gitea", "POST", gitea_status)])
        self.assertEqual(self.hosts.of("gitea", "POST", gitea_status)[-1]["body"]["target_url"], envs[31]["url"])
        self.assertEqual(len(self.hosts.of("gitea", "POST", r"/issues/31/comments$")), 1)

        # Bitbucket's statuses name the full commit once prevue has resolved the 12-digit hash.
        bb_status = r"^/bitbucket/2.0/repositories/space/app/commit/" + self.heads["bb"] + "/statuses/build$"
        wait_until(lambda: "SUCCESSFUL" in states("bitbucket", bb_status), "Bitbucket's SUCCESSFUL build status")
        self.assertEqual(self.hosts.of("bitbucket", "POST", bb_status)[-1]["body"]["url"], envs[41]["url"])
        self.assertEqual(self.refused(), [])

    def test_a_failing_or_hanging_host_does_not_stop_the_preview(self):
        self.hosts.modes["github"] = "500"
        self.hosts.modes["gitlab"] = "hang"
        self.assertEqual(self.github("pull_request-opened.json", 12, self.heads["gh"], "gh-down"), 202)
        self.assertEqual(self.gitlab_open(22, self.heads["gl"]), 202)
        gh = self.daemon.wait_env(12, "ready", self.heads["gh"])
        gl = self.daemon.wait_env(22, "ready", self.heads["gl"])
        for env in (gh, gl):
            code, page, _ = self.daemon.get(primary_host(env))
            self.assertEqual(code, 200)
        # Each report was tried, retried, and given up on with a log line.
        wait_until(lambda: "report.failed host=github" in self.daemon.read_log(), "GitHub's failure to be logged")
        wait_until(lambda: "report.failed host=gitlab" in self.daemon.read_log(), "GitLab's timeout to be logged")
        self.assertGreaterEqual(len(self.hosts.of("github", "POST", r"/deployments$")), 2, "a 500 is retried")
        self.assertIn("no answer within", self.daemon.read_log())
        # Back up: the reconcile pass sends what the hosts missed.
        self.hosts.stop_hanging.set()
        self.hosts.modes["github"] = "ok"
        self.hosts.modes["gitlab"] = "ok"
        wait_until(lambda: any(r["status"] == 201 and r["body"].get("state") == "success"
                               for r in self.hosts.of("github", "POST", r"/statuses$")), "GitHub's status after recovery", 60)
        wait_until(lambda: any(r["status"] == 201 and r["body"].get("state") == "success"
                               for r in self.hosts.of("gitlab", "POST", r"/statuses/")), "GitLab's status after recovery", 60)
        self.assertNotIn(TOKENS["github"], self.daemon.read_log())
        self.assertNotIn(TOKENS["gitlab"], self.daemon.read_log())
