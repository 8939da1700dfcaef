"""Protected previews through the real proxy: a repository whose previews
open by share link or by password. Nothing reaches the app (the echo
upstream, which answers with the request it saw) without prevue's cookie,
websocket upgrades included; the app never sees that cookie or the link's
token; a revoked or expired link stops working, and the cookies it gave
with it."""

import http.client
import json
import socket
import time
import unittest
import urllib.parse

from prevue_e2e import Daemon, PrevueTestCase, make_echo_repo, primary_host, wait_until
from test_dashboard import Browser


class ProtectedCase(PrevueTestCase):
    access = {"mode": "public"}

    def setUp(self):
        super().setUp()
        self.repo = make_echo_repo(self.scratch)
        self.daemon = Daemon(self.scratch, [self.repo], extra={"access": self.access}).start()
        self.env = self.daemon.wait_env(1, "ready", timeout=120, fail_fast=True)
        self.host = primary_host(self.env)

    def request(self, method, path, cookie=None, body=None, headers=None):
        """(status, headers, body) from the proxy for this preview; redirects are not followed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.proxy_port, timeout=30)
        sent = {"Host": self.host, **(headers or {})}
        if cookie:
            sent["Cookie"] = cookie
        conn.request(method, path, body=body, headers=sent)
        reply = conn.getresponse()
        data = reply.read().decode(errors="replace")
        conn.close()
        return reply.status, reply, data

    def upgrade_status(self, cookie=None):
        """The status line a websocket upgrade gets."""
        with socket.create_connection(("127.0.0.1", self.daemon.proxy_port), timeout=10) as s:
            s.sendall((f"GET /socket HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       + (f"Cookie: {cookie}\r\n" if cookie else "")
                       + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
            return head.split(b"\r\n", 1)[0].decode()

    def cookie_from(self, reply):
        set_cookie = reply.getheader("Set-Cookie")
        self.assertIsNotNone(set_cookie)
        for attribute in ("HttpOnly", "SameSite=Lax", "Path=/"):
            self.assertIn(attribute, set_cookie)
        return set_cookie.split(";", 1)[0]


class ShareLinks(ProtectedCase):
    access = {"mode": "link"}

    def make_link(self, ttl="1h"):
        status, link = self.daemon.api_call("POST", f"/api/v1/environments/{self.env['slug']}/links", {"ttl": ttl, "note": "e2e"})
        self.assertEqual(status, 201, link)
        return link

    def test_only_a_share_link_opens_the_preview_and_revoking_it_closes_it_again(self):
        status, reply, page = self.request("GET", "/")
        self.assertEqual(status, 403)
        self.assertIn("share link", page)
        self.assertEqual(reply.getheader("X-Robots-Tag"), "noindex")
        self.assertEqual(self.upgrade_status(), "HTTP/1.1 403 Forbidden")
        self.assertEqual(self.request("GET", "/", cookie="__prevue_access=l.abc.99999999999.forged")[0], 403)
        self.assertEqual(self.daemon.api_call("POST", f"/api/v1/environments/{self.env['slug']}/links", {"ttl": "1h"}, token=False)[0], 401)

        link = self.make_link()
        path = urllib.parse.urlsplit(link["url"])
        status, reply, _ = self.request("GET", f"{path.path}?{path.query}")
        self.assertEqual(status, 303)
        self.assertEqual(reply.getheader("Location"), "/")
        cookie = self.cookie_from(reply)

        # In: the app answers, and sees its own cookie, never prevue's (nor the token).
        status, _, body = self.request("GET", "/page", cookie=f"theme=dark; {cookie}")
        self.assertEqual(status, 200, body)
        seen = json.loads(body)
        self.assertEqual(seen["headers"].get("cookie"), "theme=dark")
        self.assertNotIn("__prevue", body)
        self.assertEqual(json.loads(self.request("GET", "/", cookie=cookie)[2])["headers"].get("cookie"), None)
        self.assertEqual(self.upgrade_status(cookie), "HTTP/1.1 101 Switching Protocols")

        # Revoked: the link and the cookie it gave stop working.
        status, _ = self.daemon.api_call("DELETE", f"/api/v1/environments/{self.env['slug']}/links/{link['id']}")
        self.assertEqual(status, 200)
        self.assertEqual(self.request("GET", "/", cookie=cookie)[0], 403)
        self.assertEqual(self.request("GET", f"{path.path}?{path.query}")[0], 403)
        links = self.daemon.api_call("GET", f"/api/v1/environments/{self.env['slug']}/links")[1]
        self.assertEqual([(l["id"], l["revoked_at_ms"] > 0) for l in links], [(link["id"], True)])

    def test_an_expired_link_and_its_cookie_stop_working_by_themselves(self):
        link = self.make_link(ttl="3s")
        path = urllib.parse.urlsplit(link["url"])
        status, reply, _ = self.request("GET", f"{path.path}?{path.query}")
        self.assertEqual(status, 303)
        cookie = self.cookie_from(reply)
        self.assertEqual(self.request("GET", "/", cookie=cookie)[0], 200)
        wait_until(lambda: self.request("GET", "/", cookie=cookie)[0] == 403, "the cookie refused once the link expired", 30)
        self.assertEqual(self.request("GET", f"{path.path}?{path.query}")[0], 403)
        # A restarted daemon keeps its key: a new link's cookie works across the restart.
        fresh = urllib.parse.urlsplit(self.make_link()["url"])
        cookie = self.cookie_from(self.request("GET", f"{fresh.path}?{fresh.query}")[1])
        self.daemon.stop()
        self.daemon.start()
        wait_until(lambda: self.request("GET", "/", cookie=cookie)[0] == 200, "the preview served again after the restart", 60)


class Login(ProtectedCase):
    access = {"mode": "login"}

    def test_only_a_signed_in_reviewer_opens_the_preview_and_the_app_never_sees_how(self):
        status, reply, _ = self.request("GET", "/deep/page?x=1")
        self.assertEqual(status, 303)
        sign_in = reply.getheader("Location")
        self.assertTrue(sign_in.startswith(self.daemon.api + "/preview-access?host="), sign_in)
        self.assertEqual(reply.getheader("X-Robots-Tag"), "noindex")
        self.assertEqual(self.upgrade_status(), "HTTP/1.1 303 See Other")
        self.assertEqual(self.request("GET", "/__prevue/login?t=0.99999999999.forged")[0], 403)

        # Through the dashboard: signed in, it sends the browser back with a token for this preview.
        browser = Browser(self.daemon.api)
        browser.sign_in(self.daemon.token)
        status, _, headers = browser.request("GET", sign_in[len(self.daemon.api):])
        self.assertEqual(status, 303)
        back = urllib.parse.urlsplit(headers["Location"])
        self.assertEqual(back.netloc, self.host)  # the Host the visitor used (here without a port)
        status, reply, _ = self.request("GET", f"{back.path}?{back.query}")
        self.assertEqual(status, 303)
        self.assertEqual(reply.getheader("Location"), "/deep/page?x=1")
        cookie = self.cookie_from(reply)
        status, _, body = self.request("GET", "/deep/page?x=1", cookie=f"prevue_session=not-for-the-app; {cookie}")
        self.assertEqual(status, 200, body)
        self.assertNotIn("__prevue", body)
        self.assertEqual(self.upgrade_status(cookie), "HTTP/1.1 101 Switching Protocols")
        # The token was for this preview, once a minute: another preview's cookie is not made from it.
        self.assertEqual(self.request("GET", "/", cookie=cookie.replace("=g.", "=l."))[0], 303)


class Password(ProtectedCase):
    access = {"mode": "password", "password": "correct horse battery"}

    def test_the_password_form_gives_a_cookie_and_a_wrong_password_does_not(self):
        status, reply, page = self.request("GET", "/deep/page")
        self.assertEqual(status, 401)
        self.assertIn('<form method="post" action="/__prevue/password">', page)
        self.assertEqual(self.upgrade_status(), "HTTP/1.1 401 Unauthorized")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, reply, page = self.request("POST", "/__prevue/password", body="password=wrong+one", headers=form)
        self.assertEqual(status, 401)
        self.assertIn("not the password", page)
        self.assertIsNone(reply.getheader("Set-Cookie"))
        self.assertEqual(self.request("POST", "/__prevue/password", body="password=" + "x" * 5000, headers=form)[0], 413)
        self.assertEqual(self.daemon.api_call("POST", f"/api/v1/environments/{self.env['slug']}/links", {})[0], 409)

        status, reply, _ = self.request("POST", "/__prevue/password", body="password=correct+horse+battery", headers=form)
        self.assertEqual(status, 303)
        cookie = self.cookie_from(reply)
        status, _, body = self.request("GET", "/deep/page", cookie=f"{cookie}; session=app")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["headers"].get("cookie"), "session=app")
        self.assertNotIn("correct horse", self.daemon.read_log())


if __name__ == "__main__":
    unittest.main()
