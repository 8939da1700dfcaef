#!/usr/bin/env python3
"""DNS records published per second against a real Knot server (started here
on a loopback port, with a TSIG key), in the same run:
  1. prevue's RFC 2136 backend, records batched in UPDATE messages,
  2. the same backend, one UPDATE per record,
  3. `knsupdate` run once per record (how a script around nsupdate does it).
Then, on the real daemon with the rfc2136 backend: how long after an
environment's `ready` its route records are published (timeline entries).
Targets: batched >= 20,000 records/s; records within 50 ms of ready.

Each batched size is run three times and the median used (see the comment
in main()). Usage: bench/bench_dns.py [--records 5000] [--single 300] [--knsupdate 100] [--previews 4]
Needs: build/bench/bench_dns_updates, build/prevue, knotd and knsupdate (scripts/setup.sh).
"""

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import BUILD, ROOT, Serve, branch_with_commit, make_repo, until

sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from knot_server import KnotServer  # noqa: E402

UPDATES = os.path.join(BUILD, "bench", "bench_dns_updates")
ZONE = "preview.test"


def updates(knot, count, mode):
    out = subprocess.run([UPDATES, str(knot.port), knot.key_file, ZONE, str(count), mode], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        sys.exit(f"bench_dns: bench_dns_updates {mode}: {out.stderr}")
    _, n, add, remove = out.stdout.split()
    return int(n), float(add), float(remove)


def knsupdate_per_record(knot, count):
    started = time.perf_counter()
    for i in range(count):
        knot.nsupdate([f"update add pr-{i}-k.{ZONE}. 60 A 127.0.0.1"])
    return time.perf_counter() - started


def publication_delays(db_path):
    """ms from each environment's `ready` to the first DNS publication after it (its route records)."""
    if not os.path.exists(db_path):
        return []
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT env_id, kind, detail, at FROM timeline WHERE kind IN ('ready', 'dns') ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        rows = []
    db.close()
    ready, delays = {}, []
    for env, kind, detail, at in rows:
        if kind == "ready":
            ready[env] = at
        elif env in ready and detail.startswith("published"):
            delays.append(at - ready.pop(env))
    return delays


def ready_to_published(scratch, knot, previews, together):
    """Previews one after another (each alone on the machine when it turns
    ready), or all branches at once (builds compete with the DNS server for
    the two cores)."""
    name = "together" if together else "one-by-one"
    work = os.path.join(scratch, name)
    os.makedirs(work)
    repo = make_repo(os.path.join(work, "repo"), os.path.join("templates", "reference-app"))
    if together:
        for i in range(previews):
            branch_with_commit(repo, f"{name}-{i}")
    state = os.path.join(work, "state")
    daemon = Serve(work, {"state_dir": state, "api": {"listen": "127.0.0.1:0"},
                          "proxy": {"listen": "127.0.0.1:0", "domain": ZONE}, "concurrency": 2,
                          "dns": {"backend": "rfc2136", "server": f"127.0.0.1:{knot.port}", "key_file": knot.key_file},
                          "repositories": [{"url": repo, "poll_interval": "100ms"}]})
    db_path = os.path.join(state, "prevue.db")
    try:
        for i in range(previews if not together else 1):
            if not together:
                branch_with_commit(repo, f"{name}-{i}")
            wanted = previews if together else i + 1
            until(lambda: len(publication_delays(db_path)) >= wanted, "the previews' DNS records; see " + daemon.log_path,
                  timeout=120, poll=0.05)
        return publication_delays(db_path)
    finally:
        daemon.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--knsupdate", type=int, default=100)
    parser.add_argument("--previews", type=int, default=4)
    parser.add_argument("--journal", choices=["robust", "asynchronous"], default="robust",
                        help="Knot's journal-db-mode: robust syncs each change to disk (the default), asynchronous does not")
    parser.add_argument("--knot-dir", help="where Knot keeps its zone and journal (e.g. /dev/shm, to keep disk syncs out)")
    args = parser.parse_args()
    for tool in ("knotd", "knsupdate"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            sys.exit(f"bench_dns: {tool} is missing: run scripts/setup.sh")
    if not os.path.exists(UPDATES):
        sys.exit("bench_dns: build first (scripts/build.sh): " + UPDATES)
    scratch = tempfile.mkdtemp(prefix="prevue-bench-dns-")
    knot_dir = os.path.join(args.knot_dir or scratch, "knot-" + str(os.getpid()))
    knot = KnotServer(knot_dir, zone=ZONE, journal_mode=args.journal).start()
    try:
        # Three rounds, the median used: now and then one UPDATE waits about a
        # second for Knot's answer (its own log shows the change applied in
        # milliseconds), and one such wait would decide a single round.
        rounds = [updates(knot, args.records, "batched") for _ in range(3)]
        n = rounds[0][0]
        batched_add = statistics.median(r[1] for r in rounds)
        batched_remove = statistics.median(r[2] for r in rounds)
        s, single_add, single_remove = updates(knot, args.single, "single")
        k_seconds = knsupdate_per_record(knot, args.knsupdate)
        batched_rate = n / batched_add
        single_rate = s / single_add
        k_rate = args.knsupdate / k_seconds
        alone = ready_to_published(scratch, knot, args.previews, together=False)
        together = ready_to_published(scratch, knot, args.previews, together=True)

        print(f"DNS records added per second against Knot on loopback (TSIG hmac-sha256, same server, same run)")
        print(f"  prevue batched:  {n} records, 3 rounds: added in " + ", ".join(f"{r[1] * 1000:.0f}" for r in rounds) +
              " ms, removed in " + ", ".join(f"{r[2] * 1000:.0f}" for r in rounds) + " ms (each removal with a value prerequisite)")
        print(f"                   median {batched_rate:,.0f} added/s, {n / batched_remove:,.0f} removed/s")
        print(f"  prevue one UPDATE per record: {s} in {single_add:.2f} s ({single_rate:,.0f}/s)")
        print(f"  knsupdate once per record:    {args.knsupdate} in {k_seconds:.2f} s ({k_rate:,.0f}/s)")
        print(f"  ready -> route records published, {len(alone)} previews one after another: "
              f"median {statistics.median(alone):.0f} ms, max {max(alone):.0f} ms")
        print(f"  ready -> route records published, {len(together)} previews built at once (builds and Knot share 2 cores): "
              f"median {statistics.median(together):.0f} ms, max {max(together):.0f} ms")
        print(f"{'records/s, batched':40s} prevue {batched_rate:10,.0f} /s   | {'knsupdate per record':24s} {k_rate:10,.0f} /s   | "
              f"ratio {batched_rate / k_rate:.0f}x")
        print(f"{'records/s, batched':40s} prevue {batched_rate:10,.0f} /s   | {'target':24s} {20000:10,.0f} /s   | "
              f"ratio {batched_rate / 20000:.2f}x")
        print(f"{'ready -> published (median, alone)':40s} prevue {statistics.median(alone):10.0f} ms   | {'target':24s} {50:10.0f} ms   | "
              f"ratio {statistics.median(alone) / 50:.2f}x")
    finally:
        knot.stop()
        shutil.rmtree(knot_dir, ignore_errors=True)
        if os.environ.get("PREVUE_BENCH_KEEP") is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
