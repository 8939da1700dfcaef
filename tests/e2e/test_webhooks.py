"""Webhooks on the real daemon: a signed GitHub `pull_request` opened
delivery (the project's GitHub payload, its repository and branch fields pointed at a
local test repository) creates the preview, `synchronize` updates it, the
closed-and-merged delivery destroys it. Deliveries with a wrong or missing
signature, a truncated body, a body over the limit, or a repeated delivery
id are refused or absorbed as the hosts' documentation expects."""

import hashlib
import hmac
import json
import os
import socket
import urllib.error
import urllib.request

from prevue_e2e import (Daemon, PrevueTestCase, commit_all, git, make_template_repo, primary_host, set_banner, set_lease,
                        webhook_fixture)

SECRET = "It's a Secret to Everybody"
API_KEY = "sk-live-0123456789abcdef"



class Webhooks(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        # The base manifest hands a secret to a seed command that prints it.
        with open(os.path.join(self.repo, "prevue.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        manifest["seed"].append({"type": "command", "name": "show-key", "run": ["echo", "key={{ secret.API_KEY }}"]})
        with open(os.path.join(self.repo, "prevue.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f)
        commit_all(self.repo, "a seed step that uses a secret")
        git(self.repo, "checkout", "-q", "-b", "feature/hook")
        set_lease(self.repo, {"ttl": "1h", "idle": "1h", "end": "destroy", "grace": "0s"})
        set_banner(self.repo, "From a webhook")
        self.sha1 = commit_all(self.repo, "webhook")
        git(self.repo, "checkout", "-q", "main")
        self.daemon = Daemon(self.scratch, [self.repo], extra={
            "webhooks": {"github": {"secret": SECRET}, "max_body_bytes": 1 << 20},
            "secrets": {"API_KEY": {"value": API_KEY}}})
        with open(self.daemon.config_path, encoding="utf-8") as f:
            config = json.load(f)
        config["repositories"][0].update({"pull_requests": "webhooks", "names": ["Codertocat/Hello-World"]})
        with open(self.daemon.config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        self.daemon.start()
        self.state_dir = self.daemon.state_dir

    def tearDown(self):
        self.daemon.stop()
        super().tearDown()

    def payload(self, name, sha, action=None):
        body = webhook_fixture(name)
        body["number"] = 7
        body["pull_request"]["number"] = 7
        body["pull_request"]["head"]["sha"] = sha
        body["pull_request"]["head"]["ref"] = "feature/hook"
        body["pull_request"]["base"]["ref"] = "main"
        # Same repository on both sides, and it is ours.
        for side in ("head", "base"):
            if body["pull_request"][side].get("repo"):
                body["pull_request"][side]["repo"]["full_name"] = "Codertocat/Hello-World"
        body["repository"]["full_name"] = "Codertocat/Hello-World"
        if action:
            body["action"] = action
        return json.dumps(body).encode()

    def deliver(self, body, delivery, event="pull_request", signature=True, secret=SECRET):
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
        if signature:
            headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(self.daemon.api + "/hooks/github", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, json.loads(text) if text.startswith(b"{") else {}

    def events(self):
        status, events = self.daemon.api_call("GET", "/api/v1/events")
        return events

    def test_opened_synchronize_merged(self):
        status, reply = self.deliver(self.payload("github/pull_request-opened.json", self.sha1), "d-open")
        self.assertEqual(status, 202, reply)
        env = self.daemon.wait_env(7, "ready", self.sha1)
        code, page, _ = self.daemon.get(primary_host(env))
        self.assertIn("From a webhook", page)
        # The trusted PR's seed command got the secret; no log shows it.
        logs = self.prevue("logs", env["slug"]).stdout
        self.assertIn("key=[secret API_KEY]", logs)
        self.assertNotIn(API_KEY, logs)
        self.assertNotIn(API_KEY, json.dumps(self.daemon.environment(env["slug"])))
        self.assertNotIn(API_KEY, self.daemon.read_log())

        # The same delivery again is one event.
        status, reply = self.deliver(self.payload("github/pull_request-opened.json", self.sha1), "d-open")
        self.assertEqual((status, reply["status"]), (200, "duplicate"))
        self.assertEqual(len([e for e in self.events() if e["delivery_id"] == "github:d-open"]), 1)

        git(self.repo, "checkout", "-q", "feature/hook")
        set_banner(self.repo, "Synchronized")
        sha2 = commit_all(self.repo, "second")
        git(self.repo, "checkout", "-q", "main")
        status, _ = self.deliver(self.payload("github/pull_request-synchronize.json", sha2), "d-sync")
        self.assertEqual(status, 202)
        self.daemon.wait_env(7, "ready", sha2)

        status, _ = self.deliver(self.payload("github/pull_request-closed-merged.json", sha2), "d-merged")
        self.assertEqual(status, 202)
        self.daemon.wait_gone(env["slug"])
        self.assertEqual(self.daemon.get(primary_host(env))[0], 404)
        out = self.prevue("events")
        self.assertIn("merged PR 7", out.stdout)

    def test_fork_pr_gets_the_base_manifest(self):
        marker = os.path.join(self.scratch, "pwned-by-fork")
        git(self.repo, "checkout", "-q", "-b", "fork-work", "main")
        with open(os.path.join(self.repo, "prevue.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        manifest["seed"].append({"type": "command", "name": "fork-command", "run": ["touch", marker]})
        with open(os.path.join(self.repo, "prevue.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f)
        set_banner(self.repo, "Code from a fork")
        fork_sha = commit_all(self.repo, "a fork's change")
        git(self.repo, "checkout", "-q", "main")

        body = json.loads(self.payload("github/pull_request-opened.json", fork_sha))
        body["number"] = body["pull_request"]["number"] = 9
        body["pull_request"]["head"]["ref"] = "fork-work"
        body["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"
        status, reply = self.deliver(json.dumps(body).encode(), "d-fork")
        self.assertEqual(status, 202, reply)
        env = self.daemon.wait_env(9, "ready", fork_sha)
        code, page, _ = self.daemon.get(primary_host(env))
        self.assertIn("Code from a fork", page)  # its application code runs ...
        self.assertFalse(os.path.exists(marker), "... but not a command its own prevue.json added")
        logs = self.prevue("logs", env["slug"]).stdout
        self.assertIn("untrusted pull request (from a fork)", logs)
        self.assertNotIn("fork-command", logs)
        self.assertIn("key=\n", logs)  # the base manifest's seed ran, without the secret
        self.assertNotIn("[secret API_KEY]", logs)

    def test_configured_body_limit_below_one_mebibyte_is_honoured(self):
        # It used to be raised silently to 1 MiB.
        self.daemon.stop()
        small = Daemon(self.scratch, [self.repo], name="small-limit",
                       extra={"webhooks": {"github": {"secret": SECRET}, "max_body_bytes": 4096}}).start()
        try:
            self.daemon = small
            payload = {"zen": "x" * 5000, "hook_id": 1}
            status, _ = self.deliver(json.dumps(payload).encode(), "too-big", event="ping")
            self.assertEqual(status, 413)
            payload["zen"] = "x" * 1000
            status, _ = self.deliver(json.dumps(payload).encode(), "fits", event="ping")
            self.assertEqual(status, 200)
            # Chunked, without a declared length: refused as it arrives.
            port = int(small.api.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\nX-GitHub-Delivery: chunked\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 6000 + b"x" * 6000 + b"\r\n0\r\n\r\n")
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 413"))
        finally:
            small.stop()

    def test_refused_and_ignored_deliveries(self):
        body = self.payload("github/pull_request-opened.json", self.sha1)
        self.assertEqual(self.deliver(body, "bad-1", secret="wrong secret")[0], 401)
        self.assertEqual(self.deliver(body, "bad-2", signature=False)[0], 401)
        self.assertEqual(self.deliver(body[: len(body) // 2], "bad-3")[0], 400)  # signed, but truncated
        # Over the limit: refused from its Content-Length, before the body is read.
        port = int(self.daemon.api.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"POST /hooks/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: bad-4\r\n"
                      f"Content-Length: {2 << 20}\r\n\r\n".encode())
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 413"))
        self.assertEqual(self.deliver(json.dumps(webhook_fixture("github/ping.json")).encode(), "ping-1", event="ping")[0], 200)
        status, reply = self.deliver(json.dumps(webhook_fixture("github/push-branch-created.json")).encode(), "push-1", event="push")
        self.assertEqual((status, reply["status"]), (202, "ignored"))
        # Not one of the refused deliveries reached the inbox; the ignored one is there, with why.
        deliveries = {e["delivery_id"]: e for e in self.events()}
        for refused in ("github:bad-1", "github:bad-2", "github:bad-3", "github:bad-4"):
            self.assertNotIn(refused, deliveries)
        self.assertEqual(deliveries["github:push-1"]["status"], "ignored")
        self.assertEqual(self.daemon.environments(), [])


if __name__ == "__main__":
    import unittest
    unittest.main()
