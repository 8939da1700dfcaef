"""An upstream for proxy tests: GET answers with the request's headers as
JSON, POST with the length and checksum of the body it read, and an
Upgrade: websocket request gets 101 and then every byte echoed back."""

import hashlib
import json
import socketserver
import sys
from http.server import BaseHTTPRequestHandler


RAW_REPLIES = {
    # No length and not chunked: the body runs until the connection closes (RFC 9112 6.3, rule 8).
    "/raw/until-close": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"until-close " * 1000,
    # Both: Transfer-Encoding wins, Content-Length must not be forwarded (RFC 9112 6.3, rule 3).
    "/raw/both": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    # A chunk size that is not hexadecimal.
    "/raw/bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    # The head, then the connection closes: a process killed between its header and its body.
    "/raw/head-only": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\n",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.connection.recv(65536)
                if not data:
                    break
                self.connection.sendall(data)
            self.close_connection = True
            return
        if self.path in RAW_REPLIES:  # replies whose framing a proxy must handle with care
            self.wfile.write(RAW_REPLIES[self.path])
            self.wfile.flush()
            self.close_connection = True
            return
        self.reply(200, {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})

    def do_POST(self):
        digest = hashlib.sha256()
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data = self.rfile.read(size)
                self.rfile.readline()
                digest.update(data)
                total += len(data)
            self.reply(200, {"length": total, "sha256": digest.hexdigest()})
            return
        length = int(self.headers.get("Content-Length", "0"))
        remaining = length
        while remaining:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        self.reply(200, {"length": length - remaining, "sha256": digest.hexdigest()})

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
