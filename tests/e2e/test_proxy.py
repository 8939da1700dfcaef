"""The proxy's edges: X-Forwarded-* headers, keep-alive, streamed request
bodies, websocket upgrades, and the bounds on header and body sizes."""

import hashlib
import http.client
import json
import os
import shutil
import socket
import unittest

from prevue_e2e import Daemon, PrevueTestCase, commit_all, git, primary_host

UPSTREAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echo-upstream")


class ProxyEdges(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.repo = os.path.join(self.scratch, "echo")
        shutil.copytree(UPSTREAM, self.repo)
        git(self.repo, "init", "-q", "-b", "main")
        commit_all(self.repo, "echo upstream")
        git(self.repo, "checkout", "-q", "-b", "pr")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", "the pull request")
        git(self.repo, "checkout", "-q", "main")
        self.daemon = Daemon(self.scratch, [self.repo],
                             extra={"proxy": {"listen": "127.0.0.1:0", "max_header_bytes": 4096, "max_body_bytes": 8 << 20}})
        self.daemon.start()
        self.state_dir = self.daemon.state_dir
        self.host = primary_host(self.daemon.wait_env(1, "ready"))

    def tearDown(self):
        self.daemon.stop()
        super().tearDown()

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.daemon.proxy_port, timeout=30)

    def test_forwarded_headers_and_keep_alive(self):
        conn = self.connection()
        for i in range(3):  # one client connection, three requests
            conn.request("GET", f"/path?n={i}", headers={"Host": f"{self.host}:{self.daemon.proxy_port}",
                                                          "X-Forwarded-For": "203.0.113.7"})
            reply = conn.getresponse()
            body = json.loads(reply.read())
            self.assertEqual(reply.status, 200)
            self.assertEqual(body["path"], f"/path?n={i}")
            headers = body["headers"]
            self.assertEqual(headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1")
            self.assertEqual(headers["x-forwarded-proto"], "http")
            self.assertEqual(headers["x-forwarded-host"], f"{self.host}:{self.daemon.proxy_port}")
        conn.close()

    def test_streamed_request_body(self):
        payload = os.urandom(5 << 20)

        def chunks():
            for offset in range(0, len(payload), 64 << 10):
                yield payload[offset:offset + (64 << 10)]
        conn = self.connection()
        conn.request("POST", "/upload", body=chunks(), headers={"Host": self.host, "Content-Length": str(len(payload))})
        reply = conn.getresponse()
        body = json.loads(reply.read())
        self.assertEqual(reply.status, 200)
        self.assertEqual(body["length"], len(payload))
        self.assertEqual(body["sha256"], hashlib.sha256(payload).hexdigest())

    def test_bounds(self):
        conn = self.connection()
        conn.request("GET", "/", headers={"Host": self.host, "X-Big": "x" * 8000})
        self.assertEqual(conn.getresponse().status, 431)
        conn.close()
        conn = self.connection()
        conn.putrequest("POST", "/upload", skip_host=True)
        conn.putheader("Host", self.host)
        conn.putheader("Content-Length", str(9 << 20))
        conn.endheaders()
        self.assertEqual(conn.getresponse().status, 413)
        conn.close()

    def test_websocket_upgrade_is_tunnelled(self):
        with socket.create_connection(("127.0.0.1", self.daemon.proxy_port), timeout=10) as s:
            s.sendall((f"GET /socket HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
            for message in (b"hello through the tunnel", b"\x00\x01binary\xff" * 100):
                s.sendall(message)
                echoed = b""
                while len(echoed) < len(message):
                    echoed += s.recv(65536)
                self.assertEqual(echoed, message)


if __name__ == "__main__":
    unittest.main()
