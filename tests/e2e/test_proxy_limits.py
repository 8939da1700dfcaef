"""Hostile clients against the proxy: a header or a body trickled a byte at a
time is cut off at its deadline (activity does not push it back), one client
address cannot hold more than its share of connections, and running out of
file descriptors (more slow clients than descriptors) neither spins the
daemon nor stops it from serving a normal client once descriptors free up."""

import os
import socket
import time
import unittest

from prevue_e2e import Daemon, PrevueTestCase, make_echo_repo, primary_host, wait_until

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class ProxyLimits(PrevueTestCase):
    def start(self, proxy, descriptor_limit=None):
        self.repo = make_echo_repo(self.scratch)
        self.daemon = Daemon(self.scratch, [self.repo], extra={"proxy": {"listen": "127.0.0.1:0", **proxy}})
        self.daemon.descriptor_limit = descriptor_limit
        self.daemon.start()
        self.state_dir = self.daemon.state_dir
        self.host = primary_host(self.daemon.wait_env(1, "ready"))

    def tearDown(self):
        if getattr(self, "daemon", None):
            self.daemon.stop()
        super().tearDown()

    def connect(self, source="127.0.0.1"):
        s = socket.create_connection(("127.0.0.1", self.daemon.proxy_port), timeout=30, source_address=(source, 0))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def get(self, source):
        """A normal client: one GET on a connection of its own; its status, or None when refused or cut."""
        try:
            with self.connect(source) as s:
                s.sendall(f"GET /normal HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n".encode())
                reply = s.recv(4096)
                return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
        except OSError:
            return None

    def trickle_until_closed(self, s, data, limit_seconds):
        """Sends one byte every 0.2 s; True once the proxy has closed the connection."""
        deadline = time.monotonic() + limit_seconds
        s.settimeout(0.2)
        for byte in data:
            if time.monotonic() > deadline:
                return False
            try:
                s.sendall(bytes([byte]))
                if s.recv(4096) == b"":
                    return True
            except socket.timeout:
                continue
            except OSError:
                return True
        return False

    def test_a_trickled_header_is_cut_at_its_deadline(self):
        self.start({"header_timeout": "1s", "timeout": "60s"})
        with self.connect() as s:
            header = f"GET / HTTP/1.1\r\nHost: {self.host}\r\nX-Slow: {'a' * 400}\r\n\r\n".encode()
            self.assertTrue(self.trickle_until_closed(s, header, 30), "a header trickled for 30 s was still being read")
        self.assertEqual(self.get("127.0.0.1"), 200)

    def test_a_trickled_body_is_cut_below_the_minimum_rate(self):
        self.start({"body_timeout": "1s", "min_body_rate": 1000, "timeout": "60s"})
        with self.connect() as s:
            s.sendall(f"POST / HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: 100000\r\n\r\n".encode())
            self.assertTrue(self.trickle_until_closed(s, b"x" * 1000, 30), "a body trickled for 30 s was still being read")
        # A body at a normal pace goes through.
        with self.connect() as s:
            body = os.urandom(1 << 20)
            s.sendall(f"POST / HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200 "))

    def test_one_client_address_gets_its_share_and_no_more(self):
        self.start({"max_connections_per_client": 20})
        hogs = [self.connect("127.0.0.2") for _ in range(50)]
        try:
            for s in hogs:
                s.settimeout(0.2)

            def closed_by_proxy():
                closed = 0
                for s in hogs:
                    try:
                        closed += s.recv(1) == b""
                    except socket.timeout:
                        pass
                    except OSError:
                        closed += 1
                return closed == 30
            wait_until(closed_by_proxy, "30 of the 50 connections closed", timeout=30)
            self.assertEqual(self.get("127.0.0.3"), 200)  # another client is served at once
        finally:
            for s in hogs:
                s.close()

    def test_running_out_of_descriptors_neither_spins_nor_stops_the_proxy(self):
        # More slow clients than the daemon has descriptors; caps high enough
        # that accept() really fails with EMFILE.
        self.start({"header_timeout": "3s", "max_connections": 100000, "max_connections_per_client": 100000},
                   descriptor_limit=256)
        pid = self.daemon.process.pid
        slow = []
        try:
            for _ in range(300):
                s = self.connect("127.0.0.2")
                s.sendall(b"GET / HTTP/1.1\r\nHo")  # and nothing more
                slow.append(s)
            cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
            try:
                status = wait_until(lambda: self.get("127.0.0.3") == 200, "a normal client served", timeout=60)
            except AssertionError:
                raise AssertionError("not served; daemon log: " + self.daemon.read_log()[-3000:] + " fds: " + str(len(os.listdir(f"/proc/{pid}/fd"))))
            cpu, wall = cpu_seconds(pid) - cpu_before, time.monotonic() - wall_before
            self.assertTrue(status, self.daemon.read_log()[-3000:])
            # A daemon spinning on EMFILE burns a whole core; this one mostly waits.
            self.assertLess(cpu, 0.5 * wall + 0.5, f"{cpu:.1f} s of CPU in {wall:.1f} s")
            self.assertIsNone(self.daemon.process.poll())
        finally:
            for s in slow:
                s.close()
        self.assertEqual(self.daemon.api_call("GET", "/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main()
