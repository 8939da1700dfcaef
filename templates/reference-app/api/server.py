"""The reference application's API service: a JSON status endpoint the web
page calls, so the app has two services that can change independently."""

import argparse
import json
import os
import signal
import sys
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_VERSION = "1"


def count_items(db_path):
    if not os.path.exists(db_path):
        return None
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        except sqlite3.OperationalError:
            return None


def make_handler(args):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/healthz":
                status, body = 200, {"ok": True}
            elif self.path == "/status":
                status, body = 200, {
                    "service": "api",
                    "version": API_VERSION,
                    "pid": os.getpid(),
                    "items": count_items(args.db),
                }
            else:
                status, body = 404, {"error": "not found"}
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *fmt_args):
            print("api: " + fmt % fmt_args, flush=True)

    return Handler


def init_database(db_path, sql_files):
    """Creates the database from SQL files when it does not exist yet (in a
    container, its volume starts empty); an existing one is kept."""
    if not sql_files or os.path.exists(db_path):
        return
    os.makedirs(os.path.dirname(db_path) or ".", exist_ok=True)
    partial = db_path + ".partial"
    with sqlite3.connect(partial) as conn:
        for path in sql_files:
            with open(path, encoding="utf-8") as f:
                conn.executescript(f.read())
    os.replace(partial, db_path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--bind", default="127.0.0.1", help="0.0.0.0 in a container")
    parser.add_argument("--init-sql", nargs="*", default=[], help="SQL files that create the database when it is missing")
    args = parser.parse_args()
    init_database(args.db, args.init_sql)
    server = ThreadingHTTPServer((args.bind, args.port), make_handler(args))
    print(f"api: listening on {args.bind}:{args.port}", flush=True)
    # As a container's first process it has no default SIGTERM handling: exit
    # on it, or every stop waits out Docker's 10 s grace and is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
