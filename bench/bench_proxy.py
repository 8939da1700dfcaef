#!/usr/bin/env python3
"""Proxy throughput and p99 latency: prevue's proxy against nginx configured
as the same host-routing proxy (keep-alive to the upstream), in front of the
same upstream (nginx serving a page, started by prevue as the preview's
service), measured with wrk on loopback in the same run; and prevue's proxy
in front of a protected preview (access "link", the share link's cookie on
every request) against the same proxy unprotected. Bounded: each wrk run
lasts --seconds; the whole script stops by itself.

On a shared 2-core machine the speed available drifts by 10-20% within a
minute, more than the difference measured. So the runs are paired: each
round runs every target once, in an order that rotates from round to round,
and a figure is the median over rounds of each round's ratio. Beside it,
the CPU time each proxy spent per request (its processes' utime + stime),
which drifts much less than what the machine lets wrk reach.

Usage: bench/bench_proxy.py [--seconds 6] [--connections 64] [--rounds 5]
Needs: build/prevue, build/providers/local, nginx and wrk (scripts/setup-bench.sh).
"""

import argparse
import statistics
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


def cpu_seconds(pids):
    """utime + stime of these processes so far, in seconds."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(port, host, seconds, threads, connections, cookie=None):
    """wrk's output for one run, which must have had no error answer nor socket error."""
    headers = ["-H", f"Host: {host}"] + (["-H", f"Cookie: {cookie}"] if cookie else [])
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", *headers,
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0 or "Non-2xx or 3xx responses" in out.stdout or "Socket errors" in out.stdout:
        sys.exit(f"bench_proxy: wrk failed or saw errors:\n{out.stdout}{out.stderr}")
    return out.stdout


def latency_ms(output, pct):
    """A percentile of wrk --latency's distribution, in ms."""
    found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", output, re.M)
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]


def wrk(port, host, seconds, connections, cookie=None, pids=()):
    """(requests/s, p99 ms, CPU µs per request of `pids`) of one wrk run."""
    cpu_before = cpu_seconds(pids)
    out = run_wrk(port, host, seconds, 2, connections, cookie)
    cpu = cpu_seconds(pids) - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, latency_ms(out, 99), cpu * 1e6 / max(1, requests)


def nginx_workers(master_pid):
    """The worker processes of the nginx whose master is master_pid."""
    children = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in children]


def keep_alive_latency(port, host, seconds):
    """One connection, one request after another (wrk -t1 -c1): p50 and p99 in ms."""
    out = run_wrk(port, host, seconds, 1, 1)
    return latency_ms(out, 50), latency_ms(out, 99)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
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

        daemon_pid, nginx_pids = [daemon.process.pid], nginx_workers(nginx.pid)
        targets = {"prevue": (serve["proxy_port"], host, None, daemon_pid), "nginx": (nginx_port, host, None, nginx_pids),
                   "protected": (serve["proxy_port"], private_host, cookie, daemon_pid)}
        names = list(targets)
        for port, target, with_cookie, _ in targets.values():
            wrk(port, target, 2, args.connections, with_cookie)  # warm-up
        rounds = []
        for i in range(args.rounds):
            measured = {}
            for name in names[i % len(names):] + names[:i % len(names)]:
                port, target, with_cookie, pids = targets[name]
                measured[name] = wrk(port, target, args.seconds, args.connections, with_cookie, pids)
            rounds.append(measured)
        keep_alive = {"prevue": [], "nginx": []}
        for i in range(args.rounds):
            pair = (("prevue", serve["proxy_port"]), ("nginx", nginx_port))
            for name, port in (pair if i % 2 == 0 else pair[::-1]):
                keep_alive[name].append(keep_alive_latency(port, host, max(2, args.seconds // 2)))

        def median_of(name, field):
            return statistics.median(r[name][field] for r in rounds)

        def median_ratio(a, b, field):
            return statistics.median(r[a][field] / r[b][field] for r in rounds)
        print(f"proxy benchmark: wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} paired rounds (order rotating), "
              f"medians over rounds; upstream nginx static page ({upstream}), host {host}")
        for i, r in enumerate(rounds):
            print(f"  round {i + 1}: " + "; ".join(f"{name} {r[name][0]:.0f} req/s p99 {r[name][1]:.2f} ms {r[name][2]:.1f} µs CPU/req"
                                                    for name in names))
        rows = (("throughput", "prevue", "nginx proxy", "nginx", 0, "req/s", ">= 1.0"),
                ("p99 latency", "prevue", "nginx proxy", "nginx", 1, "ms", "<= 1.0"),
                ("CPU per request", "prevue", "nginx proxy", "nginx", 2, "µs", "<= 1.0"),
                ("protected (link, cookie on every request)", "protected", "unprotected", "prevue", 0, "req/s", ">= 0.95"),
                ("protected p99 latency", "protected", "unprotected", "prevue", 1, "ms", "<= 1.05"))
        for label, mine, theirs_label, theirs, field, unit, target in rows:
            print(f"{label:44s} prevue {median_of(mine, field):10.2f} {unit:5s} | {theirs_label} {median_of(theirs, field):10.2f} {unit:5s} | "
                  f"ratio {median_ratio(mine, theirs, field):.2f}x (target {target})")
        (k_p50, k_p99), (kn_p50, kn_p99) = ((statistics.median(r[0] for r in keep_alive[n]), statistics.median(r[1] for r in keep_alive[n]))
                                            for n in ("prevue", "nginx"))
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
