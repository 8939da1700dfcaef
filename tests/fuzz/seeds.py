#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora from the project's own test data:
seeds.py OUTDIR writes OUTDIR/<target>/<files>. Each seed is in the input
format its target reads (see the target's source)."""

import glob
import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def write(outdir, target, name, data):
    path = os.path.join(outdir, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main(outdir):
    hosts = {"github": (0, b"pull_request"), "gitlab": (1, b"Merge Request Hook"), "gitea": (2, b"pull_request"),
             "bitbucket": (3, b"pullrequest:created")}
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "webhooks", "*", "*.json"))):
        host = os.path.basename(os.path.dirname(path))
        selector, event = hosts[host]
        if host == "bitbucket" and "datacenter" in path:
            event = b"pr:opened"
        write(outdir, "fuzz_webhook", f"{host}-{os.path.basename(path)}", bytes([selector]) + event + b"\xff" + read(path))

    manifests = glob.glob(os.path.join(ROOT, "templates", "*", "prevue.json")) + \
        glob.glob(os.path.join(ROOT, "tests", "e2e", "*", "prevue.json"))
    for i, path in enumerate(sorted(manifests)):
        write(outdir, "fuzz_manifest", f"manifest-{i}.json", read(path))
    write(outdir, "fuzz_manifest", "huge-number.json", b'{"version": 1e400}')

    for i, path in enumerate(sorted(glob.glob(os.path.join(ROOT, "templates", "**", "*.tmpl"), recursive=True))):
        write(outdir, "fuzz_render", f"template-{i}", read(path))
    write(outdir, "fuzz_render", "placeholders", "port {{ port.web }} for pr {{ pr.number }} \\{{ literal }}\n{{ unknown }}")

    configs = [
        {"state_dir": "state"},
        {"state_dir": "/s", "api": {"listen": "127.0.0.1:0", "token": "t"},
         "proxy": {"listen": "[::1]:8443", "domain": "preview.example.com", "threads": 4, "timeout": "5s", "header_timeout": "10s"},
         "repositories": [{"url": "repos/app.git", "base": "trunk", "poll_interval": "10s", "pull_requests": "refs"}],
         "dns": {"backend": "none"}, "lease": {"ttl": "1h", "end": "sleep"}, "concurrency": 3},
        {"state_dir": "s", "webhooks": {"github": {"secret": "x"}, "max_body_bytes": 4096},
         "scheduler": {"reconcile_interval": "2s", "claim_ttl": "30m"}, "trust": {"authors": ["a"]}},
    ]
    for i, config in enumerate(configs):
        write(outdir, "fuzz_config", f"config-{i}.json", json.dumps(config))

    request = {"protocol": 2, "verb": "apply", "state_root": "/s/envs", "records_root": "/s/providers/local",
               "environment": {"slug": "pr-1-x", "dir": "/s/envs/pr-1-x", "records_dir": "/s/providers/local/pr-1-x",
                               "pr": 1, "commit": "abc"},
               "settings": {"stop_signal": "SIGINT"},
               "services": [{"name": "web", "workdir": "web", "build": ["make"], "run": ["python3", "server.py"],
                             "env": {"A": "b"}, "port_name": "http", "health_path": "/healthz", "ready_timeout_ms": 1000}],
               "stop_grace_ms": 5000}
    response = {"protocol": 2, "ok": True, "name": "local", "capabilities": ["sleep"], "stop_signal": "SIGTERM",
                "stop_grace_ms": 10000, "settings_schema": {"type": "object"},
                "services": [{"name": "web", "endpoint": "127.0.0.1:8080", "pid": 12, "running": True, "restarted": False},
                             {"name": "api", "endpoint": "api.svc:80"}, {"name": "v6", "endpoint": "[::1]:9000"}],
                "outputs": {"db_url": {"value": "postgres://x", "sensitive": True}, "bucket": "b"},
                "problems": [{"path": "$.local.x", "message": "unknown"}],
                "environments": [{"slug": "pr-1-x", "dir": "/s", "services": []}]}
    write(outdir, "fuzz_protocol", "request", b"\x01" + json.dumps(request).encode())
    write(outdir, "fuzz_protocol", "response", b"\x00" + json.dumps(response).encode())
    write(outdir, "fuzz_protocol", "failure", b"\x02" + json.dumps({"protocol": 2, "ok": False, "error": {"code": "x", "message": "y"}}).encode())

    for i, (duration, repo, branch) in enumerate([("1h30m", "/srv/git/app.git", "feature/login-page"), ("250ms", "https://h/o/r", "Ü—x"),
                                                  ("36500d", "", ""), ("7d", "a", "-" * 80)]):
        write(outdir, "fuzz_duration_slug", f"seed-{i}", f"{duration}\xff{repo}\xff{branch}".encode("utf-8", "surrogateescape"))


if __name__ == "__main__":
    main(sys.argv[1])
