#!/usr/bin/env python3
"""Time to preview and teardown latency on the real daemon, for the
reference app: from the event (a push announced by the post-receive hook's
API call) to the first 200 through the proxy showing the new commit, and
from a merge to the route being gone (404). Each figure is printed beside
the time spent in child processes (provider, builds, seeds, health waits:
the work any tool would do), so prevue's own overhead is the difference.
Bounded: --rounds rounds, each waiting at most 60 s.

Usage: bench/bench_time_to_preview.py [--rounds 5]
"""

import argparse
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time

from bench_common import GIT, WatchingServe, clean_up, get, git, make_repo, no_grace, until


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="prevue-bench-ttp-")
    daemon = None
    try:
        repo = make_repo(os.path.join(scratch, "repo"), os.path.join("templates", "reference-app"))
        no_grace(repo)  # a merge tears down at once: that is what is timed
        daemon = WatchingServe(scratch, repo)
        serve, state, announce = daemon.info, daemon.state_dir, daemon.announce

        def child_ms(slug, kind):
            db = sqlite3.connect(os.path.join(state, "prevue.db"))
            row = db.execute("SELECT SUM(s.child_ms) FROM steps s JOIN runs r ON s.run_id = r.id JOIN environments e "
                             "ON r.env_id = e.id WHERE e.slug = ? AND r.kind = ? AND r.id = (SELECT MAX(r2.id) FROM runs r2 "
                             "WHERE r2.env_id = e.id AND r2.kind = ?)", (slug, kind, kind)).fetchone()
            db.close()
            return row[0] or 0

        previews, preview_children, teardowns, teardown_children = [], [], [], []
        for i in range(args.rounds):
            branch = f"feature-{i}"
            git(repo, "checkout", "-q", "-b", branch, "main")
            with open(os.path.join(repo, "web", "server.py"), "a") as f:
                f.write(f"# round {i}\n")
            git(repo, "commit", "-q", "-am", f"round {i}")
            sha = subprocess.run(GIT + ["-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
            git(repo, "checkout", "-q", "main")

            started = time.monotonic()
            announce()

            def ready():
                env = daemon.environment(branch)
                if env and env["routes"]:
                    status, page = get(serve["proxy_port"], env["routes"][-1]["host"])
                    if status == 200 and sha in page:
                        return env
                return None
            env = until(ready, f"the preview of {branch}")
            previews.append((time.monotonic() - started) * 1000)
            preview_children.append(child_ms(env["slug"], "up"))
            host = [r["host"] for r in env["routes"] if r["host"].startswith(env["slug"])][0]

            git(repo, "merge", "-q", "--no-ff", branch, "-m", f"merge {branch}")
            started = time.monotonic()
            announce()
            until(lambda: get(serve["proxy_port"], host)[0] == 404, f"{branch}'s route gone")
            teardowns.append((time.monotonic() - started) * 1000)
            teardown_children.append(child_ms(env["slug"], "down"))

        p, pc = statistics.median(previews), statistics.median(preview_children)
        t, tc = statistics.median(teardowns), statistics.median(teardown_children)
        print(f"time to preview and teardown latency, reference app, median of {args.rounds} rounds")
        print(f"  time to preview (event -> first 200 through the proxy): {p:.0f} ms; child processes {pc:.0f} ms; "
              f"prevue's own {p - pc:.0f} ms  [runs: {', '.join(f'{x:.0f}' for x in previews)}]")
        print(f"  teardown latency (merge event -> route answers 404): {t:.0f} ms; child processes {tc:.0f} ms; "
              f"prevue's own {t - tc:.0f} ms  [runs: {', '.join(f'{x:.0f}' for x in teardowns)}]")
        print(f"{'time to preview':44s} prevue {p:10.0f} ms   | {'provider work alone':28s} {pc:10.0f} ms   | ratio {p / pc:.2f}x of it")
        print(f"{'teardown latency':44s} prevue {t:10.0f} ms   | {'provider work alone':28s} {tc:10.0f} ms   | ratio {t / max(tc, 1):.2f}x of it")
    finally:
        clean_up(daemon, scratch)


if __name__ == "__main__":
    main()
