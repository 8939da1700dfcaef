#!/usr/bin/env python3
"""A preview's PostgreSQL database, on a seed of about 200 MB made by the
benchmark, on a PostgreSQL cluster of its own, in one run:

  (a) by hand, a dump restored per pull request: `createdb` + `pg_restore`
      of a `pg_dump -Fc` of the seed;
  (b) `CREATE DATABASE … TEMPLATE … STRATEGY FILE_COPY` of the seed, inline:
      by hand (psql), and prevue's `seed:` step with no pool (pool 0);
  (c) prevue's `seed:` step with a warm pool: a copy and its role renamed.

(b) and (c) are prevue's whole seed step as its log times it (connecting,
checking the template, handing over), with the template built once before
(not timed). Targets: (c) under 50 ms, and at least 20x faster than (a).

Bounded: --rounds rounds of each, every wait at most 300 s.
Needs PostgreSQL (scripts/setup.sh). Usage: bench/bench_postgres_seed.py [--rounds 3] [--rows 1450000]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import ROOT, WatchingServe, clean_up, git, make_repo, step_ms, until

os.environ.setdefault("PREVUE_TEMPLATE_DIR", os.path.join(ROOT, "templates", "reference-app"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from prevue_e2e import PostgresServer  # noqa: E402

SEED_SQL = ("CREATE TABLE items AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS body, "
            "now() - g * interval '1 second' AS created FROM generate_series(1, {rows}) g;\n"
            "ALTER TABLE items ADD PRIMARY KEY (id);\n")


def timed(argv, env=None):
    started = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return (time.monotonic() - started) * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_450_000)  # about 200 MB with its primary key
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="prevue-bench-pgseed-")
    pg = PostgresServer()
    daemons = []
    try:
        admin = pg.admin_url + "?sslmode=disable"
        base = admin.rsplit("/", 1)[0].split("?")[0]
        env = {**os.environ, "PGPASSWORD": PostgresServer.PASSWORD}
        conn = ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres"]

        # The seed, and its dump for (a).
        pg.psql("CREATE DATABASE seed_source")
        pg.psql(SEED_SQL.format(rows=args.rows), database="seed_source")
        size_mb = int(pg.psql("SELECT pg_database_size('seed_source')")) / 1e6
        dump = os.path.join(scratch, "seed.dump")
        subprocess.run(["pg_dump", "-Fc", "--no-owner", "-f", dump, base + "/seed_source"], check=True, capture_output=True)
        pg.psql("ALTER DATABASE seed_source WITH IS_TEMPLATE true")

        restore, clone_by_hand = [], []
        for i in range(args.rounds):
            name = f"restored_{i}"
            restore.append(timed(["createdb", *conn, name], env) + timed(["pg_restore", *conn, "--no-owner", "--no-privileges", "-d", name, dump], env))
            clone_by_hand.append(timed(["psql", *conn, "-d", "postgres", "-c",
                                        f"CREATE DATABASE cloned_{i} TEMPLATE seed_source STRATEGY FILE_COPY"], env))
            pg.psql(f"DROP DATABASE {name}")
            pg.psql(f"DROP DATABASE cloned_{i}")

        # prevue: the same seed as a postgres seed of the reference app.
        repo = make_repo(os.path.join(scratch, "repo"), os.path.join("templates", "reference-postgres"))
        with open(os.path.join(repo, "seed", "big.sql"), "w") as f:
            f.write(SEED_SQL.format(rows=args.rows))
        with open(os.path.join(repo, "prevue.json")) as f:
            manifest = json.load(f)
        manifest["seed"][0]["files"] = ["seed/big.sql"]
        manifest["lease"]["grace"] = "0s"
        with open(os.path.join(repo, "prevue.json"), "w") as f:
            json.dump(manifest, f)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "a 200 MB seed")

        def ready_pool():
            rows = pg.psql("SELECT count(*) FROM pg_database WHERE starts_with(datname, 'prevue_pool_') AND "
                           "shobj_description(oid, 'pg_database') LIKE '% ready'")
            return int(rows)

        def seed_times(pool, label):
            directory = os.path.join(scratch, label)
            os.makedirs(directory)
            daemon = WatchingServe(directory, repo, extra={"postgres": {"main": {"url": admin, "pool": pool}}})
            daemons.append((daemon, directory))
            times, sources = [], []
            for i in range(args.rounds + 1):  # the first builds the template: not timed
                if pool:
                    until(lambda: ready_pool() >= pool, "the pool to fill", timeout=300, poll=0.1)
                branch = f"{label}-{i}"
                git(repo, "checkout", "-q", "-b", branch, "main")
                git(repo, "commit", "-q", "--allow-empty", "-m", branch)
                git(repo, "checkout", "-q", "main")
                daemon.announce()
                env_ = until(lambda: (lambda e: e if e and e["state"] in ("ready", "failed") else None)(daemon.environment(branch)),
                             f"the preview of {branch}", timeout=300, poll=0.05)
                log = daemon.logs(env_["slug"])
                if env_["state"] != "ready":
                    sys.exit(f"bench_postgres_seed: {branch} failed: {env_.get('error')}\n{log}")
                if i:
                    times.append(step_ms(log, "seed: app"))
                    sources.append("pool" if "from the pool" in log else "clone" if "the pool was empty" in log else "?")
            return times, sources

        inline, inline_from = seed_times(0, "no-pool")
        pooled, pooled_from = seed_times(2, "pool")

        a, b, bh, c = (statistics.median(x) for x in (restore, inline, clone_by_hand, pooled))
        print(f"postgres seed of {size_mb:.0f} MB ({args.rows} rows), PostgreSQL {pg.psql('SHOW server_version')}, median of {args.rounds} rounds")
        print(f"  (a) createdb + pg_restore: {[round(x) for x in restore]} ms")
        print(f"  (b) CREATE DATABASE TEMPLATE by hand: {[round(x) for x in clone_by_hand]} ms; prevue, no pool: {inline} ms ({inline_from})")
        print(f"  (c) prevue from the warm pool: {pooled} ms ({pooled_from})")
        print(f"{'database ready, from the warm pool (c)':44s} prevue {c:10.0f} ms   | {'pg_restore of a dump (a)':28s} {a:10.0f} ms   | ratio {a / max(c, 1):.0f}x faster (target >= 20x; (c) target < 50 ms)")
        print(f"{'database ready, inline clone (b)':44s} prevue {b:10.0f} ms   | {'CREATE DATABASE … TEMPLATE':28s} {bh:10.0f} ms   | ratio {b / bh:.2f}x")
    finally:
        for daemon, directory in daemons:
            clean_up(daemon, directory)
        pg.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
