"""A local stand-in for the git hosts' REST APIs (GitHub, GitLab, Gitea,
Bitbucket Cloud), on loopback. It records every request and refuses the
ones the real API would refuse (wrong auth, missing fields, states the host
does not have), so a test sees the shapes prevue sends. Each host can be
switched to answer 500 or to hang."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GITHUB_DEPLOYMENT_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
GITHUB_COMMIT_STATES = {"error", "failure", "pending", "success"}
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled"}
GITEA_STATES = {"pending", "success", "error", "failure", "warning"}
BITBUCKET_STATES = {"INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"}


class FakeGitHosts:
    """Hosts live under /github, /gitlab/api/v4, /gitea/api/v1 and /bitbucket/2.0."""

    def __init__(self, tokens):
        self.tokens = tokens  # host -> token
        self.requests = []    # dicts: host, method, path, headers, body (parsed), status
        self.modes = {}       # host -> "ok" | "500" | "hang"
        self.lock = threading.Lock()
        self.next_id = 1000
        self.comments = {}    # (host, id) -> body
        self.stop_hanging = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, answer = fake.answer(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
                if status is None:
                    return  # hung: the connection is dropped when the test ends
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, host):
        return {"github": f"http://127.0.0.1:{self.port}/github",
                "gitlab": f"http://127.0.0.1:{self.port}/gitlab/api/v4",
                "gitea": f"http://127.0.0.1:{self.port}/gitea/api/v1",
                "bitbucket": f"http://127.0.0.1:{self.port}/bitbucket/2.0"}[host]

    def close(self):
        self.stop_hanging.set()
        self.server.shutdown()
        self.server.server_close()

    def of(self, host, method=None, pattern=None):
        with self.lock:
            return [r for r in self.requests if r["host"] == host and (method is None or r["method"] == method)
                    and (pattern is None or re.search(pattern, r["path"]))]

    def new_id(self):
        self.next_id += 1
        return self.next_id

    # ---- the hosts' rules ----------------------------------------------------------

    def answer(self, method, path, headers, raw):
        host = path.split("/")[1]
        mode = self.modes.get(host, "ok")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        record = {"host": host, "method": method, "path": path, "headers": headers, "body": body, "status": None}
        with self.lock:
            self.requests.append(record)
        if mode == "hang":
            self.stop_hanging.wait(60)
            return None, None
        if mode == "500":
            status, answer = 500, {"message": "Internal Server Error"}
        else:
            with self.lock:
                status, answer = self.route(host, method, path, headers, body)
        record["status"] = status
        return status, answer

    def route(self, host, method, path, headers, body):
        token = self.tokens.get(host)
        if host == "github":
            if headers.get("authorization") != f"Bearer {token}":
                return 401, {"message": "Bad credentials"}
            if not headers.get("user-agent"):
                return 403, {"message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"}
            if headers.get("accept") != "application/vnd.github+json":
                return 415, {"message": "Unsupported media type"}
        elif host == "gitlab":
            if headers.get("private-token") != token:
                return 401, {"message": "401 Unauthorized"}
        elif host == "gitea":
            if headers.get("authorization") != f"token {token}":
                return 401, {"message": "token is required"}
        elif host == "bitbucket":
            if headers.get("authorization") != f"Bearer {token}":
                return 401, {"type": "error", "error": {"message": "Access token expired or invalid"}}
        if method in ("POST", "PATCH", "PUT"):
            if not headers.get("content-type", "").startswith("application/json") or not isinstance(body, dict):
                return 400, {"message": "Problems parsing JSON"}
        sha = r"([0-9a-f]{7,40})"
        owner_repo = r"([^/]+)/([^/]+)"
        if host == "github":
            base = "/github/repos/" + owner_repo
            if method == "POST" and re.fullmatch(base + "/deployments", path):
                if not isinstance(body.get("ref"), str) or not body["ref"]:
                    return 422, {"message": "Invalid request.\n\n\"ref\" wasn't supplied."}
                return 201, {"id": self.new_id(), "sha": body["ref"], "environment": body.get("environment", "production")}
            if method == "POST" and re.fullmatch(base + r"/deployments/(\d+)/statuses", path):
                if body.get("state") not in GITHUB_DEPLOYMENT_STATES or len(body.get("description", "")) > 140:
                    return 422, {"message": "Validation Failed"}
                return 201, {"id": self.new_id(), "state": body["state"]}
            if method == "POST" and re.fullmatch(base + "/statuses/" + sha, path):
                if body.get("state") not in GITHUB_COMMIT_STATES or len(body.get("description", "")) > 140:
                    return 422, {"message": "Validation Failed"}
                return 201, {"id": self.new_id(), "state": body["state"]}
            if method == "POST" and re.fullmatch(base + r"/issues/(\d+)/comments", path):
                return self.create_comment(host, body)
            m = re.fullmatch(base + r"/issues/comments/(\d+)", path)
            if method == "PATCH" and m:
                return self.edit_comment(host, m.group(3), body)
        if host == "gitlab":
            base = r"/gitlab/api/v4/projects/([^/]+)"
            if method == "POST" and re.fullmatch(base + "/statuses/" + sha, path):
                if body.get("state") not in GITLAB_STATES:
                    return 400, {"message": "state does not have a valid value"}
                return 201, {"id": self.new_id(), "status": body["state"], "name": body.get("name", "default")}
            if method == "POST" and re.fullmatch(base + r"/merge_requests/(\d+)/notes", path):
                return self.create_comment(host, body)
            m = re.fullmatch(base + r"/merge_requests/(\d+)/notes/(\d+)", path)
            if method == "PUT" and m:
                return self.edit_comment(host, m.group(3), body)
        if host == "gitea":
            base = "/gitea/api/v1/repos/" + owner_repo
            if method == "POST" and re.fullmatch(base + "/statuses/" + sha, path):
                if body.get("state") not in GITEA_STATES:
                    return 422, {"message": "invalid state"}
                return 201, {"id": self.new_id(), "status": body["state"]}
            if method == "POST" and re.fullmatch(base + r"/issues/(\d+)/comments", path):
                return self.create_comment(host, body)
            m = re.fullmatch(base + r"/issues/comments/(\d+)", path)
            if method == "PATCH" and m:
                return self.edit_comment(host, m.group(3), body)
        if host == "bitbucket":
            if method == "POST" and re.fullmatch("/bitbucket/2.0/repositories/" + owner_repo + "/commit/" + sha + "/statuses/build", path):
                if body.get("state") not in BITBUCKET_STATES or not body.get("key") or not body.get("url"):
                    return 400, {"type": "error", "error": {"message": "key, state and url are required"}}
                return 201, {"type": "commitstatus", "key": body["key"], "state": body["state"]}
        return 404, {"message": "Not Found"}

    def create_comment(self, host, body):
        if not isinstance(body.get("body"), str) or not body["body"]:
            return 422, {"message": "body is missing"}
        cid = self.new_id()
        self.comments[(host, str(cid))] = body["body"]
        return 201, {"id": cid, "body": body["body"]}

    def edit_comment(self, host, cid, body):
        if (host, cid) not in self.comments:
            return 404, {"message": "Not Found"}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return 422, {"message": "body is missing"}
        self.comments[(host, cid)] = body["body"]
        return 200, {"id": int(cid), "body": body["body"]}
