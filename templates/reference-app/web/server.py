"""The reference application's web service: one page showing which commit
and pull request it runs and the rows of its seeded database.

Python 3 standard library only, so a fresh machine needs nothing else."""

import argparse
import html
import json
import os
import signal
import sys
import sqlite3
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION_BANNER = "Reference app"


def load_rows(db_path):
    if not os.path.exists(db_path):
        return None
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute("SELECT id, name FROM items ORDER BY id").fetchall()
        except sqlite3.OperationalError:
            return None


def api_status(api_url):
    try:
        with urllib.request.urlopen(api_url + "/status", timeout=2) as reply:
            return json.load(reply)
    except (OSError, ValueError):
        return None


def make_handler(args, config):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def send_body(self, status, content_type, body):
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            if self.path == "/healthz":
                self.send_body(200, "text/plain", "ok\n")
                return
            if self.path != "/":
                self.send_body(404, "text/plain", "not found\n")
                return
            rows = load_rows(args.db)
            api = api_status(args.api) if args.api else None
            commit = os.environ.get("PREVUE_COMMIT", "unknown")
            pr = os.environ.get("PREVUE_PR", "?")
            items = "".join(
                f"<li data-id='{row[0]}'>{html.escape(row[1])}</li>" for row in (rows or [])
            )
            body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(config.get('greeting', ''))}</title></head>
<body>
<h1>{html.escape(os.environ.get('APP_TITLE', config.get('greeting', '')))}</h1>
<p class="banner">{html.escape(VERSION_BANNER)}</p>
<p>Pull request <strong id="pr">#{html.escape(pr)}</strong> at commit <code id="commit">{html.escape(commit)}</code></p>
<p>Environment <code id="slug">{html.escape(os.environ.get('PREVUE_SLUG', ''))}</code></p>
<p id="api">API: {html.escape(json.dumps(api) if api else 'unreachable')}</p>
<h2>Items ({0 if rows is None else len(rows)})</h2>
<ul id="items">{items if rows else '<li>no data seeded yet</li>'}</ul>
</body></html>
"""
            self.send_body(200, "text/html; charset=utf-8", body)

        def log_message(self, fmt, *fmt_args):
            print("web: " + fmt % fmt_args, flush=True)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--config", default="config.json")
    parser.add_argument("--api", default="")
    parser.add_argument("--bind", default="127.0.0.1", help="0.0.0.0 in a container")
    args = parser.parse_args()
    # The rendered config of the `local` manifest; in a container the page
    # takes what it shows from the environment (PREVUE_*, APP_TITLE) instead.
    config = {}
    if os.path.exists(args.config):
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
    server = ThreadingHTTPServer((args.bind, args.port), make_handler(args, config))
    print(f"web: listening on {args.bind}:{args.port} for PR {config.get('pr', os.environ.get('PREVUE_PR'))}", flush=True)
    # As a container's first process it has no default SIGTERM handling: exit
    # on it, or every stop waits out Docker's 10 s grace and is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
