"""The dashboard over real HTTP, as a browser and an attacker meet it: the
sign-in form, the session cookie and what it may read and change, the CSRF
token and the origin check, sign-out (a replayed cookie is refused), the
event stream that tells the page of a build as it happens, and a failed
preview redeployed from the dashboard without a push. (The page's own
script in a real browser: test_browser.py.)"""

import http.client
import json
import os
import socket
import time
import unittest
import urllib.parse

from prevue_e2e import Daemon, PrevueTestCase, commit_all, git, make_template_repo, primary_host, set_banner, set_web_build, wait_until


def fail_build_until(repo, flag):
    """The web service's build fails until `flag` exists (a failure that a redeploy, not a push, mends)."""
    set_web_build(repo, ["python3", "-c", f"import os, sys\nsys.exit(0 if os.path.exists({flag!r}) else 'the flag is missing')"])


class Browser:
    """A browser's requests to the dashboard: its cookies, its Origin on changes."""

    def __init__(self, api):
        self.address = urllib.parse.urlsplit(api).netloc
        self.origin = "http://" + self.address
        self.cookies = {}

    def request(self, method, path, body=None, headers=None, origin=None):
        connection = http.client.HTTPConnection(self.address, timeout=10)
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method != "GET":
            headers["Origin"] = origin or self.origin
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        text = reply.read().decode("utf-8", "replace")
        for name, value in reply.getheaders():
            if name.lower() == "set-cookie":
                cookie, _, attributes = value.partition(";")
                key, _, val = cookie.partition("=")
                if "Max-Age=0" in attributes:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
                self.last_set_cookie = value
        connection.close()
        return reply.status, text, dict(reply.getheaders())

    def sign_in(self, token):
        return self.request("POST", "/login", urllib.parse.urlencode({"token": token, "next": "/"}),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def csrf(self):
        status, text, _ = self.request("GET", "/api/v1/session")
        assert status == 200, text
        return json.loads(text)["csrf"]


class EventStream:
    """GET /api/v1/stream, read event by event."""

    def __init__(self, browser):
        self.sock = socket.create_connection(browser.address.split(":"), timeout=30)
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        self.sock.sendall(f"GET /api/v1/stream HTTP/1.1\r\nHost: {browser.address}\r\nCookie: {cookie}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        self.status_line = head.split(b"\r\n")[0].decode()
        self.headers = head.decode("latin-1").lower()

    def _until(self, mark):
        while mark not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise AssertionError("the stream ended")
            self.buffer += data
        part, self.buffer = self.buffer.split(mark, 1)
        return part

    def next_change(self, timeout):
        """The data of the next `changed` event (comments and the retry line skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            block = self._until(b"\n\n").decode()
            lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
            if lines.get("event") == "changed":
                return lines.get("data")
        raise AssertionError("no change event")

    def close(self):
        self.sock.close()


class Dashboard(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        self.daemon = Daemon(self.scratch, [self.repo]).start()
        self.addCleanup(self.daemon.stop)
        self.browser = Browser(self.daemon.api)

    def open_pr(self, branch, banner, prepare=None):
        git(self.repo, "checkout", "-q", "-b", branch, "main")
        set_banner(self.repo, banner)
        if prepare:
            prepare()
        sha = commit_all(self.repo, banner)
        git(self.repo, "checkout", "-q", "main")
        self.daemon.api_call("POST", "/api/v1/repositories/poll", {})
        return sha

    def test_sign_in_read_change_and_sign_out(self):
        # Signed out: the page sends the browser to sign in; the API refuses.
        status, _, headers = self.browser.request("GET", "/")
        self.assertEqual(status, 303)
        self.assertEqual(headers["Location"], "/login")
        self.assertEqual(self.browser.request("GET", "/api/v1/environments")[0], 401)
        status, page, headers = self.browser.request("GET", "/login")
        self.assertEqual(status, 200)
        self.assertIn('name="token"', page)
        self.assertIn("frame-ancestors 'none'", headers["Content-Security-Policy"])

        self.assertEqual(self.browser.sign_in("not-the-token")[0], 401)
        self.assertEqual(self.browser.cookies, {})
        status, _, headers = self.browser.sign_in(self.daemon.token)
        self.assertEqual(status, 303)
        self.assertIn("prevue_session", self.browser.cookies)
        for attribute in ("HttpOnly", "SameSite=Lax", "Path=/"):
            self.assertIn(attribute, self.browser.last_set_cookie)

        status, page, _ = self.browser.request("GET", "/")
        self.assertEqual(status, 200)
        csrf = self.browser.csrf()
        self.assertIn(f'<meta name="prevue-csrf" content="{csrf}">', page)
        self.open_pr("feature/dash", "dashboard branch")
        env = self.daemon.wait_env(1, "ready", timeout=90)
        status, listed, _ = self.browser.request("GET", "/api/v1/environments")
        self.assertEqual([e["slug"] for e in json.loads(listed)], [env["slug"]])
        status, log, _ = self.browser.request("GET", f"/api/v1/environments/{env['slug']}/log")
        log = json.loads(log)
        self.assertIn("ready", [s["name"] for s in log["steps"]])
        self.assertNotIn(self.scratch, json.dumps(log))  # no server paths

        # A change: refused without the CSRF token or from another origin; done with both, and recorded with who did it.
        extend = f"/api/v1/environments/{env['slug']}/extend"
        body = json.dumps({"duration": "3h"})
        json_type = {"Content-Type": "application/json"}
        self.assertEqual(self.browser.request("POST", extend, body, json_type)[0], 403)
        self.assertEqual(self.browser.request("POST", extend, body, {**json_type, "X-Prevue-CSRF": csrf},
                                              origin="https://attacker.example")[0], 403)
        status, text, _ = self.browser.request("POST", extend, body, {**json_type, "X-Prevue-CSRF": csrf})
        self.assertEqual(status, 200, text)
        timeline = self.daemon.api_call("GET", f"/api/v1/environments/{env['slug']}/timeline")[1]
        self.assertIn("extended by 3h by api token (dashboard)", [t["detail"] for t in timeline])

        # Another site's form posting to sign-out (the browser would send the cookie) is refused.
        forged = urllib.parse.urlencode({"csrf": "guess"})
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        self.assertEqual(self.browser.request("POST", "/logout", forged, form, origin="https://attacker.example")[0], 403)
        self.assertIn("prevue_session", self.browser.cookies)

        # Signed out: the cookie, replayed by someone who copied it, reads nothing.
        copied = dict(self.browser.cookies)
        status, _, headers = self.browser.request("POST", "/logout", urllib.parse.urlencode({"csrf": csrf}), form)
        self.assertEqual(status, 303)
        self.assertNotIn("prevue_session", self.browser.cookies)
        self.browser.cookies = copied
        self.assertEqual(self.browser.request("GET", "/api/v1/environments")[0], 401)
        self.assertEqual(self.browser.request("GET", "/")[0], 303)

    def test_the_stream_tells_of_a_build_as_it_happens(self):
        self.browser.sign_in(self.daemon.token)
        stream = EventStream(self.browser)
        try:
            self.assertIn(" 200 ", stream.status_line)
            self.assertIn("content-type: text/event-stream", stream.headers)
            first = stream.next_change(10)  # one at once: the page loads after it subscribed
            self.open_pr("feature/live", "live branch")
            # Events until the preview is ready, each a newer version: no polling, the daemon says.
            seen = [int(first)]

            def ready_after_events():
                seen.append(int(stream.next_change(60)))
                env = self.daemon.environments()
                return env and env[0]["state"] == "ready"
            wait_until(ready_after_events, "the preview ready, told by the stream", timeout=120)
            self.assertEqual(seen, sorted(seen))
            self.assertGreater(len(seen), 2)
        finally:
            stream.close()
        # Without a session there is no stream.
        self.assertEqual(Browser(self.daemon.api).request("GET", "/api/v1/stream")[0], 401)

    def test_a_preview_is_put_to_sleep_and_woken_from_the_dashboard(self):
        self.open_pr("feature/nap", "napping branch")
        env = self.daemon.wait_env(1, "ready", timeout=90)
        self.browser.sign_in(self.daemon.token)
        csrf = self.browser.csrf()
        path = f"/api/v1/environments/{env['slug']}"
        self.assertEqual(self.browser.request("POST", path + "/wake", "", {"X-Prevue-CSRF": csrf})[0], 409)  # not asleep
        status, text, _ = self.browser.request("POST", path + "/sleep", "", {"X-Prevue-CSRF": csrf})
        self.assertEqual(status, 202, text)
        self.daemon.wait_env(1, "sleeping", timeout=60)
        timeline = json.loads(self.browser.request("GET", path + "/timeline")[1])
        self.assertTrue(any(t["detail"].startswith("sleep by api token") for t in timeline), timeline)  # who did it
        self.assertTrue(any(t["kind"] == "slept" for t in timeline), timeline)
        status, text, _ = self.browser.request("POST", path + "/wake", "", {"X-Prevue-CSRF": csrf})
        self.assertEqual(status, 202, text)
        env = self.daemon.wait_env(1, "ready", timeout=90)
        self.assertIn("napping branch", self.daemon.get(primary_host(env))[1])
        # A change needs the session's CSRF token.
        self.assertEqual(self.browser.request("POST", path + "/sleep", "")[0], 403)

    def test_a_failed_preview_is_redeployed_from_the_dashboard_without_a_push(self):
        flag = os.path.join(self.scratch, "the-build-may-pass")
        self.open_pr("feature/flaky", "flaky branch", lambda: fail_build_until(self.repo, flag))
        failed = self.daemon.wait_env(1, "failed", timeout=90)
        self.browser.sign_in(self.daemon.token)
        csrf = self.browser.csrf()
        log = json.loads(self.browser.request("GET", f"/api/v1/environments/{failed['slug']}/log")[1])
        self.assertIn("build of web failed", log["error"])
        self.assertIn("the flag is missing", "".join(step["log"] for step in log["steps"] if step["state"] == "failed"))
        redeploy = f"/api/v1/environments/{failed['slug']}/redeploy"
        with open(flag, "w", encoding="utf-8"):
            pass
        status, text, _ = self.browser.request("POST", redeploy, "", {"X-Prevue-CSRF": csrf})
        self.assertEqual(status, 202, text)
        env = self.daemon.wait_env(1, "ready", timeout=90)
        self.assertEqual(env["deployed_commit"], failed["commit"])
        self.assertIn("flaky branch", self.daemon.get(primary_host(env))[1])
        # A ready preview is not redeployed (a push updates it).
        self.assertEqual(self.browser.request("POST", redeploy, "", {"X-Prevue-CSRF": csrf})[0], 409)


if __name__ == "__main__":
    unittest.main()
