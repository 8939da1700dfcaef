#!/usr/bin/env python3
"""Proxy throughput and p99 latency: prevue's proxy against nginx configured
as the same host-routing proxy (keep-alive to the upstream), in front of the
same upstream (nginx serving a page, started by prevue as the preview's
service), measured with wrk on loopback in the same run; and prevue's proxy
in front of a protected preview (access "link", the share link's cookie on
every request) against the same proxy unprotected. Bounded: each wrk run
lasts --seconds; the whole script stops by itself.

Usage: bench/bench_proxy.py [--seconds 10] [--connections 64] [--rounds 2]
Needs: build/prevue, build/providers/local, nginx and wrk (scripts/setup-bench.sh).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

from bench_common import PREVUE, PROVIDERS, Serve, branch_with_commit, make_repo, until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(port, host, seconds, connections, cookie=None):
    headers = ["-H", f"Host: {host}"] + (["-H", f"Cookie: {cookie}"] if cookie else [])
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", *headers,
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        sys.exit(f"bench_proxy: wrk failed: {out.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", out.stdout, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    socket_errors = re.search(r"Socket errors: (.*)", out.stdout)
    if errors or socket_errors:
        sys.exit(f"bench_proxy: errors during the run:\n{out.stdout}")
    return rps, float(p99.group(1)) * scale


def keep_alive_latency(port, host, seconds):
    """One connection, one request after another (wrk -t1 -c1): p50 and p99 in ms."""
    out = subprocess.run(["wrk", "-t", "1", "-c", "1", "-d", f"{seconds}s", "--latency", "-H", f"Host: {host}",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0 or "Non-2xx" in out.stdout or "Socket errors" in out.stdout:
        sys.exit(f"bench_proxy: keep-alive run failed:\n{out.stdout}{out.stderr}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    found = {pct: re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out.stdout, re.M) for pct in ("50", "99")}
    return tuple(float(m.group(1)) * scale[m.group(2)] for m in (found["50"], found["99"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"bench_proxy: {tool} is missing: run scripts/setup-bench.sh")

    scratch = tempfile.mkdtemp(prefix="prevue-bench-proxy-")
    os.chmod(scratch, 0o755)  # nginx workers run as another user
    daemon = nginx = None
    try:
        repo = make_repo(os.path.join(scratch, "repo"), os.path.join("bench", "proxy-upstream"))
        branch_with_commit(repo, "bench")
        private_repo = make_repo(os.path.join(scratch, "private"), os.path.join("bench", "proxy-upstream"))
        branch_with_commit(private_repo, "bench")
        token = "bench-token"
        daemon = Serve(scratch, {"state_dir": os.path.join(scratch, "state"), "api": {"listen": "127.0.0.1:0", "token": token}, "access": {"mode": "public"},
                                 "proxy": {"listen": "127.0.0.1:0", "threads": 2},
                                 "repositories": [{"url": repo, "base": "main", "poll_interval": "1h"},
                                                  {"url": private_repo, "base": "main", "poll_interval": "1h",
                                                   "access": {"mode": "link"}}]})
        serve = daemon.info

        def ready_envs():
            listed = urllib.request.Request(serve["api"] + "/api/v1/environments", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(listed) as r:
                envs = {e["repo"]: e for e in json.load(r) if e["state"] == "ready"}
            return envs if len(envs) == 2 else None
        try:
            envs = until(ready_envs, "the previews", poll=0.1)
        except SystemExit:
            print(open(os.path.join(scratch, "serve.log")).read(), file=sys.stderr)
            raise
        env = next(e for e in envs.values() if os.path.basename(e["repo"].rstrip("/")) == "repo")
        private = next(e for e in envs.values() if e is not env)
        host = env["routes"][0]["host"]
        upstream = env["routes"][0]["upstream"]
        private_host = private["routes"][0]["host"]
        # The protected preview's cookie, from a share link (as a reviewer's browser gets it).
        made = urllib.request.Request(f"{serve['api']}/api/v1/environments/{private['slug']}/links", data=b"{}", method="POST",
                                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(made) as r:
            link = urllib.parse.urlsplit(json.load(r)["url"])
        opened = http.client.HTTPConnection("127.0.0.1", serve["proxy_port"], timeout=10)
        opened.request("GET", f"{link.path}?{link.query}", headers={"Host": private_host})
        reply = opened.getresponse()
        reply.read()
        cookie = reply.getheader("Set-Cookie").split(";", 1)[0]
        opened.close()

        nginx_port = free_port()
        conf = os.path.join(scratch, "nginx-proxy.conf")
        os.makedirs(os.path.join(scratch, "nginx"), exist_ok=True)
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 2;
pid {scratch}/nginx/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {scratch}/nginx/body;
  proxy_temp_path {scratch}/nginx/proxy;
  fastcgi_temp_path {scratch}/nginx/fastcgi;
  upstream preview {{ server {upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{nginx_port};
    server_name ~^(?<slug>[a-z0-9-]+)\\.prevue\\.localhost$;
    location / {{
      proxy_pass http://preview;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
    }}
  }}
  server {{ listen 127.0.0.1:{nginx_port} default_server; return 404; }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-p", os.path.join(scratch, "nginx"), "-c", conf, "-e", "stderr"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def answers(port):
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
                with urllib.request.urlopen(req, timeout=2) as r:
                    return r.status == 200 and b"preview page body" in r.read()
            except OSError:
                return False
        until(lambda: answers(serve["proxy_port"]), "prevue's proxy to answer", poll=0.1)
        until(lambda: answers(nginx_port), "nginx to answer", poll=0.1)

        results = {"prevue": [], "nginx": [], "protected": []}
        targets = (("prevue", serve["proxy_port"], host, None), ("nginx", nginx_port, host, None),
                   ("protected", serve["proxy_port"], private_host, cookie))
        for _ in range(args.rounds):
            for name, port, target, with_cookie in targets:
                wrk(port, target, 2, args.connections, with_cookie)  # warm-up
                results[name].append(wrk(port, target, args.seconds, args.connections, with_cookie))
        keep_alive = {"prevue": [], "nginx": []}
        for _ in range(args.rounds):
            for name, port in (("prevue", serve["proxy_port"]), ("nginx", nginx_port)):
                keep_alive[name].append(keep_alive_latency(port, host, max(2, args.seconds // 2)))
        best = {name: (max(r[0] for r in runs), min(r[1] for r in runs)) for name, runs in results.items()}
        print(f"proxy benchmark: wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds each, best of rounds; "
              f"upstream nginx static page ({upstream}), host {host}")
        for name, runs in results.items():
            print(f"  {name:7s} runs: " + ", ".join(f"{rps:.0f} req/s p99 {p99:.2f} ms" for rps, p99 in runs))
        (p_rps, p_p99), (n_rps, n_p99) = best["prevue"], best["nginx"]
        print(f"{'throughput':44s} prevue {p_rps:10.0f} req/s | nginx proxy {n_rps:10.0f} req/s | ratio {p_rps / n_rps:.2f}x (target >= 1.0)")
        print(f"{'p99 latency':44s} prevue {p_p99:10.2f} ms    | nginx proxy {n_p99:10.2f} ms    | ratio {p_p99 / n_p99:.2f}x (target <= 1.0)")
        s_rps, s_p99 = best["protected"]
        print(f"{'protected (link, cookie on every request)':44s} prevue {s_rps:10.0f} req/s | unprotected {p_rps:10.0f} req/s | ratio {s_rps / p_rps:.2f}x (target >= 0.95)")
        print(f"{'protected p99 latency':44s} prevue {s_p99:10.2f} ms    | unprotected {p_p99:10.2f} ms    | ratio {s_p99 / p_p99:.2f}x (target <= 1.05)")
        (k_p50, k_p99), (kn_p50, kn_p99) = (min(keep_alive[n], key=lambda r: r[0]) for n in ("prevue", "nginx"))
        print(f"{'keep-alive latency p50 (1 connection)':44s} prevue {k_p50:10.3f} ms    | nginx proxy {kn_p50:10.3f} ms    | ratio {k_p50 / kn_p50:.2f}x (target <= 1.0)")
        print(f"{'keep-alive latency p99 (1 connection)':44s} prevue {k_p99:10.3f} ms    | nginx proxy {kn_p99:10.3f} ms    | ratio {k_p99 / kn_p99:.2f}x")
    finally:
        if nginx:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
        if daemon:
            daemon.stop()
        subprocess.run([PREVUE, "--state-dir", os.path.join(scratch, "state"), "--provider-dir", PROVIDERS, "gc"],
                       capture_output=True)
        for env in json.loads(subprocess.run([PREVUE, "--state-dir", os.path.join(scratch, "state"), "ls", "--json"],
                                             capture_output=True, text=True).stdout or "[]"):
            subprocess.run([PREVUE, "--state-dir", os.path.join(scratch, "state"), "--provider-dir", PROVIDERS, "down",
                            env["slug"]], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
