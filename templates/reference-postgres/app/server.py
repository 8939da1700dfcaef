"""The reference app's page for a preview seeded in PostgreSQL: the notes of
the database prevue handed it (DATABASE_URL), read with psql."""
import argparse
import html
import os
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def notes():
    out = subprocess.run(["psql", "--no-psqlrc", "-At", "-d", os.environ["DATABASE_URL"], "-c",
                          "SELECT body FROM notes ORDER BY id"], capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return out.stdout.splitlines()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body, status = b"ok\n", 200
        else:
            try:
                items = "".join(f"<li>{html.escape(n)}</li>" for n in notes())
                body = (f"<!doctype html><title>{html.escape(os.environ.get('PREVUE_SLUG', 'preview'))}</title>"
                        f"<h1>Notes</h1><ul>{items}</ul><p>commit {html.escape(os.environ.get('PREVUE_COMMIT', ''))}</p>").encode()
                status = 200
            except Exception as e:  # the page says why, the server keeps serving
                body, status = f"database unavailable: {html.escape(str(e))}\n".encode(), 503
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")  # 0.0.0.0 in a container
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
