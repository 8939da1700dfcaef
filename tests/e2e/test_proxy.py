"""The proxy's edges: X-Forwarded-* headers, keep-alive, X-Robots-Tag,
streamed request bodies, websocket upgrades, and the bounds on header and
body sizes."""

import hashlib
import http.client
import json
import os
import socket
import unittest

from prevue_e2e import Daemon, PrevueTestCase, make_echo_repo, primary_host

class ProxyEdges(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.repo = make_echo_repo(self.scratch)
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
            self.assertEqual(reply.getheader("X-Robots-Tag"), "noindex")  # no preview is for search engines
        # The proxy's own pages say so too.
        conn.request("GET", "/", headers={"Host": "nothing-here.prevue.localhost"})
        reply = conn.getresponse()
        reply.read()
        self.assertEqual((reply.status, reply.getheader("X-Robots-Tag")), (404, "noindex"))
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

    # ---- RFC 9112 framing, on both sides of the proxy -----------------------------

    def raw(self, request, read_all=True):
        """Sends raw bytes; returns everything the proxy answers until it closes (or the first reply)."""
        with socket.create_connection(("127.0.0.1", self.daemon.proxy_port), timeout=15) as s:
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data, True
                data += chunk
                if not read_all and b"\r\n\r\n" in data:
                    return data, False

    def test_ambiguous_request_framing_is_refused_and_the_connection_closed(self):
        host = self.host.encode()
        smuggle = b"GET /smuggled HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        cases = {
            # chunked is not the final coding: the length cannot be known (RFC 9112 6.3).
            "chunked-then-identity": b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: chunked, identity\r\n"
                                     b"Content-Length: 5\r\n\r\n0\r\n\r\n" + smuggle,
            "te-and-length": b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
                             b"0\r\n\r\n" + smuggle,
            "two-hosts": b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nHost: other.prevue.localhost\r\n\r\n",
            "no-host": b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
            "two-lengths": b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "bad-chunk-size": b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            "gzip-only": b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        }
        for name, request in cases.items():
            with self.subTest(name):
                data, closed = self.raw(request)
                self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:200])
                self.assertTrue(closed)
                self.assertNotIn(b"smuggled", data)
                self.assertEqual(data.count(b"Server: "), 1, data[:400])  # one answer, nothing smuggled behind it
        # A transfer coding before chunked that prevue does not decode: 501.
        data, closed = self.raw(b"POST / HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 501 "), data[:200])
        self.assertTrue(closed)
        # A well-formed chunked request still goes through.
        data, _ = self.raw(b"POST /ok HTTP/1.1\r\nHost: " + host + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                           b"5\r\nhello\r\n0\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:200])
        self.assertIn(b'"length": 5', data)

    def test_upstream_framing(self):
        conn = self.connection()
        # Delimited by the upstream closing: the client gets all of it, and a closed connection to know where it ends.
        conn.request("GET", "/raw/until-close", headers={"Host": self.host})
        reply = conn.getresponse()
        self.assertEqual(reply.status, 200)
        self.assertEqual(reply.read(), b"until-close " * 1000)
        self.assertTrue(reply.will_close)
        conn.close()
        # Transfer-Encoding and Content-Length: handled as an error (RFC 9112 6.3), never forwarded.
        data, closed = self.raw(b"GET /raw/both HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 502 "), data[:300])
        self.assertNotIn(b"hello", data)
        self.assertTrue(closed)
        # A broken chunk from the upstream: the client's connection is cut, never a truncated body that looks whole.
        data, closed = self.raw(b"GET /raw/bad-chunk HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n\r\n")
        self.assertTrue(closed)
        self.assertFalse(data.endswith(b"0\r\n\r\n") and b"hello" in data, data)
        # The head alone, then the upstream gone (killed mid-answer): nothing was
        # forwarded yet, so the reviewer gets a 502 page, not a dropped connection.
        data, closed = self.raw(b"GET /raw/head-only HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 502 "), data[:300])
        self.assertTrue(closed)
        # The proxy still serves.
        conn = self.connection()
        conn.request("GET", "/after", headers={"Host": self.host})
        self.assertEqual(conn.getresponse().status, 200)
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
