"""PostgreSQL seeding end to end, on a real PostgreSQL (a cluster per test):
templates/reference-postgres's `postgres` seed (a dump, then a migration
command) gives each preview a database of its own, through the daemon:
from a template built once per seed key, handed over from a warm pool or
cloned; pushes that keep or change the seed; teardown and `prevue gc`;
kill -9 during a template build and during a clone; and seeds that fail.
Then the same app as a Compose project whose own `db` service the seed
fills (on the machine's Docker Engine, with prevue/postgres:bookworm)."""

import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

from prevue_e2e import TEMPLATE_DIR, Daemon, PostgresServer, PrevueTestCase, commit_all, free_port, git, primary_host, write
from test_compose import container_id, docker, docker_ready, project_objects

POSTGRES_TEMPLATE = os.path.join(TEMPLATE_DIR, "..", "reference-postgres")


class SeededPreviewCase(PrevueTestCase):
    """A test with a daemon (self.daemon) whose previews show the notes of their database."""

    def page(self, env):
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        return page

    def step_log(self, slug):
        return self.prevue("logs", slug, state_dir=self.daemon.state_dir).stdout

    def push_a_migration(self, branch):
        """A push to `branch` adding migration 002 (a note 'Added by migration 002'): a new seed key. Its commit."""
        return self.commit_on(branch, lambda: write(self.repo, "migrations/002_more.sql",
                                                    "INSERT INTO notes (body, author) VALUES ('Added by migration 002', 'migrations');\n"),
                              "a migration", new_branch=False)


class Postgres(SeededPreviewCase):
    def setUp(self):
        super().setUp()
        self.pg = PostgresServer()
        self.addCleanup(self.pg.stop)
        self.repo_from_template(POSTGRES_TEMPLATE, "app")
        self.daemon = None

    # ---- helpers ----

    def start_daemon(self, pool=2, url=None, name="daemon"):
        server = {"url": url or self.pg.admin_url + "?sslmode=disable", "pool": pool, "keep_unused": "0s"}
        self.daemon = Daemon(self.scratch, [self.repo], extra={"postgres": {"main": server}}, name=name).start()
        return self.daemon

    def databases(self, prefix="prevue_"):
        """{name: comment} of the server's databases whose name starts with `prefix`."""
        rows = self.pg.psql("SELECT datname || '|' || coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
                            f"WHERE starts_with(datname, '{prefix}')")
        return dict(line.split("|", 1) for line in rows.splitlines())

    def roles(self, prefix="prevue_"):
        return set(self.pg.psql(f"SELECT rolname FROM pg_roles WHERE starts_with(rolname, '{prefix}')").split())

    def database_of(self, slug):
        found = [name for name, comment in self.databases("prevue_env_").items() if f"env={slug} " in comment]
        self.assertEqual(len(found), 1, (slug, self.databases()))
        return found[0]

    def ready_pool(self):
        return [name for name, comment in self.databases("prevue_pool_").items() if comment.endswith(" ready")]

    def seed_from_operator_snapshot(self, row, dump):
        """A production-like snapshot no repository carries (database `snapshot`, one note `row`),
        dumped to `dump`; the manifest seeds from the operator's dump called `snapshot`. Its URL."""
        self.pg.psql("CREATE DATABASE snapshot")
        self.pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL); "
                     f"INSERT INTO notes (body) VALUES ('{row}')", database="snapshot")
        source = self.pg.admin_url.rsplit("/", 1)[0] + "/snapshot"
        subprocess.run(["pg_dump", "-Fc", "--no-owner", "-f", dump, "-d", source], check=True)
        self.set_manifest(lambda m: (m["seed"][0].pop("dump"), m["seed"][0].update({"server_dump": "snapshot"})))
        commit_all(self.repo, "seed from the operator's snapshot")
        return source

    def receipt(self, slug):
        timeline = self.daemon.api_call("GET", f"/api/v1/environments/{slug}/timeline")[1]
        return json.loads(next(t["detail"] for t in timeline if t["kind"] == "receipt"))

    # ---- tests ----

    def test_each_pull_request_gets_its_own_seeded_database_from_the_pool(self):
        one = self.commit_on("alpha", lambda: write(self.repo, "app/NOTE", "alpha\n"), "alpha")
        self.start_daemon(pool=2)
        env_a = self.daemon.wait_env(1, "ready", one, timeout=120, fail_fast=True)
        page = self.page(env_a)
        for row in ("Seeded row: Ada", "Seeded row: Linus", "Added by migration 001"):
            self.assertIn(row, page)  # the dump, then the migration command
        log = self.step_log(env_a["slug"])
        self.assertIn("template prevue_tpl_", log)
        self.assertIn("the pool was empty: cloned from prevue_tpl_", log)
        db_a = self.database_of(env_a["slug"])
        self.assertIn(db_a, self.roles())  # its own login role
        self.daemon.wait_for(lambda: len(self.ready_pool()) == 2, "the pool refilled to 2", 60)

        # A second pull request: its database comes from the pool, which refills.
        two = self.commit_on("beta", lambda: write(self.repo, "app/NOTE", "beta\n"), "beta")
        env_b = self.daemon.wait_env(2, "ready", two, timeout=120, fail_fast=True)
        self.assertRegex(self.step_log(env_b["slug"]), r"from the pool \(prevue_pool_\w+\), handed over in \d+ ms")
        self.daemon.wait_for(lambda: len(self.ready_pool()) == 2, "the pool refilled after the hand-over", 60)

        # A write in A is A's alone.
        self.pg.psql("INSERT INTO notes (body) VALUES ('written by a reviewer of A')", database=db_a)
        self.assertIn("written by a reviewer of A", self.page(env_a))
        self.assertNotIn("written by a reviewer of A", self.page(env_b))
        # Each role reaches its own database only.
        db_b = self.database_of(env_b["slug"])
        self.assertEqual(self.pg.psql(f"SELECT has_database_privilege('{db_a}', '{db_b}', 'CONNECT'), "
                                      f"has_database_privilege('{db_a}', '{db_a}', 'CONNECT')"), "f|t")
        self.assertNotIn(PostgresServer.PASSWORD, log)

        # A push that leaves the seed alone keeps the data.
        three = self.commit_on("alpha", lambda: write(self.repo, "app/NOTE", "alpha two\n"), "alpha two", new_branch=False)
        env_a = self.daemon.wait_env(1, "ready", three, timeout=120, fail_fast=True)
        self.assertIn("written by a reviewer of A", self.page(env_a))
        self.assertIn(f"database {db_a}: kept", self.step_log(env_a["slug"]))

        # A push that adds a migration: a template at the new key, and A gets a copy of it.
        four = self.push_a_migration("alpha")
        env_a = self.daemon.wait_env(1, "ready", four, timeout=120, fail_fast=True)
        page = self.page(env_a)
        self.assertIn("Added by migration 002", page)
        self.assertIn("Seeded row: Ada", page)
        self.assertIn("the seed changed", self.step_log(env_a["slug"]))
        self.assertEqual(len([d for d in self.databases("prevue_tpl_")]), 2)
        self.assertNotIn("Added by migration 002", self.page(env_b))  # B is at the old key still
        self.assertEqual(self.databases("prevue_old_"), {})  # the previous copy is gone

        # Merged: its database and role are dropped, and named in the receipt.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge alpha", "alpha")
        self.daemon.wait_gone(env_a["slug"], timeout=120)
        self.assertNotIn(db_a, self.databases())
        self.assertNotIn(db_a, self.roles())
        removed = {(item["kind"], item["outcome"]) for item in self.receipt(env_a["slug"]) if db_a in item["name"]}
        self.assertEqual(removed, {("database", "dropped"), ("role", "dropped")})
        self.assertIn("Seeded row: Ada", self.page(env_b))  # B untouched

    def test_a_custom_format_dump_an_exhausted_pool_and_gc_of_unused_templates(self):
        # A dump in pg_dump's custom format, made here from a real database.
        self.pg.psql("CREATE DATABASE source")
        self.pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL); "
                     "INSERT INTO notes (body) VALUES ('From a custom-format dump')", database="source")
        dump = subprocess.run(["pg_dump", "-Fc", "--no-owner", "-d", self.pg.admin_url.rsplit("/", 1)[0] + "/source"],
                              capture_output=True, check=True).stdout
        with open(os.path.join(self.repo, "seed", "notes.dump"), "wb") as f:
            f.write(dump)
        self.set_manifest(lambda m: m["seed"][0].update({"dump": "seed/notes.dump"}))
        commit_all(self.repo, "a custom-format dump")
        first = self.commit_on("first", lambda: write(self.repo, "app/NOTE", "1\n"), "first")
        self.start_daemon(pool=1)
        env = self.daemon.wait_env(1, "ready", first, timeout=120, fail_fast=True)
        self.assertIn("From a custom-format dump", self.page(env))
        self.assertIn("pg_restore", self.step_log(env["slug"]))
        self.daemon.wait_for(lambda: len(self.ready_pool()) == 1, "the pool refilled to 1", 60)

        # Two more with one copy waiting, and the refill held back (a session holding the
        # key's advisory lock, which refills take): one from the pool, one cloned; both right.
        key = next(iter(self.databases("prevue_tpl_")))[len("prevue_tpl_"):]
        with self.holding(f"SELECT pg_advisory_lock(hashtext('prevue template {key}'));"):
            for branch in ("second", "third"):
                # The branch appears at its own commit (made first, off any branch): a poll between
                # `git branch` and `git commit` would start a run for first's commit that the
                # commit then supersedes, and the step log read below would be the second run's.
                tree = git(self.repo, "rev-parse", "first^{tree}")
                own = git(self.repo, "commit-tree", tree, "-p", "first", "-m", branch)
                git(self.repo, "branch", branch, own)
            envs = [self.daemon.wait_env(pr, "ready", timeout=120, fail_fast=True) for pr in (2, 3)]
        logs = [self.step_log(e["slug"]) for e in envs]
        self.assertEqual(sorted("from the pool" in log for log in logs), [False, True], logs)
        self.assertTrue(any("the pool was empty" in log for log in logs))
        for e in envs:
            self.assertIn("From a custom-format dump", self.page(e))
        self.assertEqual(len({self.database_of(e["slug"]) for e in envs + [env]}), 3)

        # Every preview gone: `prevue gc` drops the template nobody uses, and its pool.
        for branch in ("first", "second", "third"):
            git(self.repo, "branch", "-q", "-D", branch)
        for e in envs + [env]:
            self.daemon.wait_gone(e["slug"], timeout=120)
        self.daemon.stop()
        self.daemon = None
        gc = self.prevue("gc", state_dir=os.path.join(self.scratch, "daemon", "state"))
        self.assertIn("postgres: dropped database prevue_tpl_", gc.stdout)
        self.assertEqual(self.databases(), {})
        self.assertEqual(self.roles(), set())

    def test_the_daemon_killed_during_a_template_build_and_during_a_clone_converges(self):
        # A seed big enough to catch in the act: a million rows, and no pool (every copy is cloned inline).
        write(self.repo, "seed/big.sql", "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 1000000) g;\n")
        self.set_manifest(lambda m: m["seed"][0].update({"files": ["seed/big.sql"]}))
        commit_all(self.repo, "a big seed")
        sha = self.commit_on("one", lambda: write(self.repo, "app/NOTE", "1\n"), "one")
        self.start_daemon(pool=0)
        self.daemon.wait_for(lambda: self.running_in("prevue_tplbuild_"), "the template being built", 120)
        self.daemon.stop(sig=signal.SIGKILL)
        self.start_daemon(pool=0, name="daemon")
        env = self.daemon.wait_env(1, "ready", sha, timeout=180, fail_fast=True)
        self.assertIn("Seeded row: Ada", self.page(env))
        self.assertEqual(len(self.databases("prevue_tpl_")), 1)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM big", database=self.database_of(env["slug"])), "1000000")

        # Killed while CREATE DATABASE … TEMPLATE copies the environment's database: a session
        # holding pg_database in SHARE mode holds the copy there (reads go on).
        with self.holding("BEGIN; LOCK TABLE pg_catalog.pg_database IN SHARE MODE;"):
            two = self.commit_on("two", lambda: write(self.repo, "app/NOTE", "2\n"), "two")
            self.daemon.wait_for(lambda: self.running_in("", "CREATE DATABASE \"prevue_env_"), "the clone in progress", 120)
            self.daemon.stop(sig=signal.SIGKILL)
        self.start_daemon(pool=0, name="daemon")
        env2 = self.daemon.wait_env(2, "ready", two, timeout=180, fail_fast=True)
        self.assertIn("Seeded row: Ada", self.page(env2))
        database = self.database_of(env2["slug"])  # exactly one, complete
        self.assertEqual(self.pg.psql("SELECT count(*) FROM big", database=database), "1000000")
        self.daemon.stop()
        self.daemon = None
        self.prevue("gc", state_dir=os.path.join(self.scratch, "daemon", "state"))
        left = set(self.databases())
        self.assertEqual({d for d in left if not d.startswith(("prevue_tpl_", "prevue_env_"))}, set(), left)
        self.assertEqual(len([d for d in left if d.startswith("prevue_env_")]), 2)

    @contextlib.contextmanager
    def holding(self, sql):
        """A session of the test's that runs `sql` (taking a lock) and keeps it while the block runs."""
        holder = subprocess.Popen(["psql", "--no-psqlrc", "-q", "-d", self.pg.admin_url], stdin=subprocess.PIPE, text=True)
        holder.stdin.write(sql + "\nSELECT pg_sleep(600);\n")
        holder.stdin.flush()
        self.pg_wait_for_sleep()
        try:
            yield
        finally:
            # Its backend would sleep on with the lock (a client gone goes unnoticed there): ended.
            self.pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600);'")
            holder.kill()
            holder.wait(timeout=30)

    def pg_wait_for_sleep(self):
        deadline = time.monotonic() + 30
        while self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600);'") == "0":
            if time.monotonic() > deadline:
                raise AssertionError("the lock-holding session did not start")
            time.sleep(0.05)

    def running_in(self, database_prefix, query_prefix=""):
        rows = self.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND "
                            f"starts_with(coalesce(datname, ''), '{database_prefix}') AND starts_with(query, '{query_prefix.replace(chr(39), chr(39) * 2)}')")
        return rows != "0"

    def test_seeds_that_fail_say_why_and_leave_nothing_half_made(self):
        self.start_daemon(pool=1)
        # A dump that does not load.
        self.commit_on("bad-dump", lambda: write(self.repo, "seed/notes.sql", "CREATE TABLE notes (id serial PRIMARY KEY,\n"), "bad dump")
        env = self.daemon.wait_env(1, "failed", timeout=120)
        self.assertEqual(env["failed_step"], "seed: app")
        self.assertIn("loading seed/notes.sql", env["error"])
        self.assertIn("syntax error", env["error"])
        # A migration that fails.
        self.commit_on("bad-migration", lambda: write(self.repo, "migrations/002_bad.sql", "ALTER TABLE nowhere ADD COLUMN x int;\n"),
                       "bad migration")
        env = self.daemon.wait_env(2, "failed", timeout=120)
        self.assertIn("the migration python3 migrate.py failed", env["error"])
        self.assertIn('relation "nowhere" does not exist', env["error"])
        # Nothing half-made: no database being built, no environment's database, no pool for a template that never was.
        self.assertEqual({d for d in self.databases() if not d.startswith("prevue_tpl_")}, set())
        self.assertEqual(self.databases("prevue_tpl_"), {})
        self.assertEqual(self.pg.psql("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, 'prevue_') AND rolcanlogin"), "0")
        self.daemon.stop()

        # A server that refuses the connection.
        self.daemon = None
        refused = f"postgres://postgres:x@127.0.0.1:{free_port()}/postgres"
        self.start_daemon(url=refused, name="refused")
        self.commit_on("refused", lambda: write(self.repo, "app/NOTE", "x\n"), "refused")
        env = self.daemon.wait_env(3, "failed", timeout=120)
        self.assertIn("cannot connect to PostgreSQL at 127.0.0.1", env["error"])
        self.assertNotIn("postgres:x@", self.daemon.read_log())  # the URL's password is in no log

    def test_a_dump_the_operator_keeps_seeds_previews_and_its_change_makes_a_new_template(self):
        # A production-like snapshot no repository carries: a file named in prevue's config.
        dump = os.path.join(self.scratch, "snapshot.dump")
        source = self.seed_from_operator_snapshot("From the operator snapshot", dump)
        sha = self.commit_on("snap", lambda: write(self.repo, "app/NOTE", "x\n"), "snap")
        server = {"url": self.pg.admin_url + "?sslmode=disable", "pool": 0, "dumps": {"snapshot": dump}}
        self.daemon = Daemon(self.scratch, [self.repo], extra={"postgres": {"main": server}}).start()
        env = self.daemon.wait_env(1, "ready", sha, timeout=120, fail_fast=True)
        self.assertIn("From the operator snapshot", self.page(env))
        self.assertIn("Added by migration 001", self.page(env))  # the repository's migrations ran on top
        self.assertIn(f"restored the dump snapshot ({dump})", self.step_log(env["slug"]))
        # The operator refreshes the snapshot: the next push builds a template from it.
        self.pg.psql("INSERT INTO notes (body) VALUES ('In the refreshed snapshot')", database="snapshot")
        subprocess.run(["pg_dump", "-Fc", "--no-owner", "-f", dump + ".new", "-d", source], check=True)
        os.replace(dump + ".new", dump)
        sha = self.commit_on("snap", lambda: write(self.repo, "app/NOTE", "y\n"), "snap two", new_branch=False)
        env = self.daemon.wait_env(1, "ready", sha, timeout=120, fail_fast=True)
        self.assertIn("In the refreshed snapshot", self.page(env))
        self.assertIn("the seed changed", self.step_log(env["slug"]))
        # A manifest naming a dump the operator does not keep fails with a clear message.
        self.set_manifest(lambda m: m["seed"][0].update({"server_dump": "elsewhere"}))
        self.commit_on("other", lambda: None, "another dump")
        failed = self.daemon.wait_env(2, "failed", timeout=120)
        self.assertIn("has no dump called 'elsewhere'", failed["error"])

    def test_a_dump_at_a_url_is_fetched_when_it_changed_and_kept_when_the_url_is_down(self):
        # The operator's snapshot published over HTTP (a loopback server; Last-Modified, If-Modified-Since).
        published = os.path.join(self.scratch, "published")
        os.makedirs(published)
        dump = os.path.join(published, "snapshot.dump")
        source = self.seed_from_operator_snapshot("From the published snapshot", dump)
        requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=published, **kwargs)

            def do_GET(self):
                requests.append(self.headers.get("If-Modified-Since"))
                super().do_GET()

            def log_message(self, *args):
                pass

        web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        self.addCleanup(web.server_close)
        url = f"http://127.0.0.1:{web.server_address[1]}/snapshot.dump"
        sha = self.commit_on("snap", lambda: write(self.repo, "app/NOTE", "x\n"), "snap")
        server = {"url": self.pg.admin_url + "?sslmode=disable", "pool": 0, "dumps": {"snapshot": url}}
        self.daemon = Daemon(self.scratch, [self.repo], extra={"postgres": {"main": server}}).start()
        env = self.daemon.wait_env(1, "ready", sha, timeout=120, fail_fast=True)
        self.assertIn("From the published snapshot", self.page(env))
        self.assertRegex(self.step_log(env["slug"]), r"the dump snapshot: fetched \(\d+ bytes\)")
        self.assertEqual(requests, [None])

        # Unchanged at the URL: asked for conditionally, not fetched, the same template kept.
        sha = self.commit_on("snap", lambda: write(self.repo, "app/NOTE", "y\n"), "snap two", new_branch=False)
        env = self.daemon.wait_env(1, "ready", sha, timeout=120, fail_fast=True)
        log = self.step_log(env["slug"])
        self.assertIn("the dump snapshot: unchanged at its URL", log)
        self.assertIn(": kept", log)
        self.assertIsNotNone(requests[-1])  # If-Modified-Since, from the copy's time
        self.assertEqual(len(self.databases("prevue_tpl_")), 1)

        # Refreshed at the URL: fetched again, and the next push builds a template from it.
        self.pg.psql("INSERT INTO notes (body) VALUES ('In the refreshed snapshot')", database="snapshot")
        subprocess.run(["pg_dump", "-Fc", "--no-owner", "-f", dump + ".new", "-d", source], check=True)
        os.replace(dump + ".new", dump)
        later = time.time() + 5  # a Last-Modified one second apart at least
        os.utime(dump, (later, later))
        sha = self.commit_on("snap", lambda: write(self.repo, "app/NOTE", "z\n"), "snap three", new_branch=False)
        env = self.daemon.wait_env(1, "ready", sha, timeout=120, fail_fast=True)
        self.assertIn("In the refreshed snapshot", self.page(env))
        self.assertIn("the seed changed", self.step_log(env["slug"]))

        # The URL down: the copy kept seeds a new preview, and the step log says so.
        web.shutdown()
        web.server_close()
        sha = self.commit_on("other", lambda: write(self.repo, "app/NOTE", "other\n"), "other")
        env = self.daemon.wait_env(2, "ready", sha, timeout=120, fail_fast=True)
        self.assertIn("In the refreshed snapshot", self.page(env))
        self.assertIn("its URL did not answer", self.step_log(env["slug"]))

    def test_a_manifest_naming_an_unknown_server_fails_with_the_servers_it_knows(self):
        self.set_manifest(lambda m: m["seed"][0].update({"server": "elsewhere"}))
        commit_all(self.repo, "another server")
        self.commit_on("unknown", lambda: write(self.repo, "app/NOTE", "x\n"), "unknown")
        self.start_daemon()
        env = self.daemon.wait_env(1, "failed", timeout=120)
        self.assertIn("no PostgreSQL server 'elsewhere'", env["error"])
        self.assertIn("configured: main", env["error"])


POSTGRES_IMAGE = "prevue/postgres:bookworm"


def postgres_image_missing():
    why = docker_ready()
    if why is None and subprocess.run(["docker", "image", "inspect", POSTGRES_IMAGE], capture_output=True, timeout=30).returncode != 0:
        why = f"the image {POSTGRES_IMAGE} is missing (scripts/setup-images.sh makes it)"
    return why


@unittest.skipIf(postgres_image_missing() is not None, postgres_image_missing() or "")
class PostgresInCompose(SeededPreviewCase):
    """templates/reference-postgres/prevue.compose.json: the app and its PostgreSQL as one compose project per preview."""

    def setUp(self):
        super().setUp()
        self.repo_from_template(POSTGRES_TEMPLATE, "app")
        shutil.copy(os.path.join(self.repo, "prevue.compose.json"), os.path.join(self.repo, "prevue.json"))
        self.set_manifest(lambda m: m["lease"].update({"grace": "0s"}))
        commit_all(self.repo, "the app as its own compose project")
        self.daemon = Daemon(self.scratch, [self.repo])
        self.web_images = set(docker("images", "--quiet", "--filter", "reference=prevue-build/web"))

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            for image in set(docker("images", "--quiet", "--filter", "reference=prevue-build/web")) - self.web_images:
                docker("image", "rm", "--force", image, check=False)

    def psql(self, slug, sql, database="app"):
        """`sql` run in the preview's own db container, as the seed runs its tools there."""
        out = subprocess.run(["docker", "exec", container_id(slug, "db"), "psql", "--no-psqlrc", "-XAt", "-U", "postgres", "-d", database,
                              "-c", sql], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout.strip()

    def test_the_environments_own_postgres_service_is_seeded_kept_and_reseeded(self):
        one = self.commit_on("alpha", lambda: write(self.repo, "app/NOTE", "alpha\n"), "alpha")
        self.daemon.start()
        env_a = self.daemon.wait_env(1, "ready", one, timeout=300, fail_fast=True)
        page = self.page(env_a)
        for row in ("Seeded row: Ada", "Seeded row: Linus", "Added by migration 001"):
            self.assertIn(row, page)  # the dump in the db container, the migration run in web against it
        slug_a = env_a["slug"]
        self.assertIn("database app in db: seeded", self.step_log(slug_a))
        self.assertNotIn("prevue_build_", self.psql(slug_a, "SELECT string_agg(datname, ' ') FROM pg_database", "postgres"))

        two = self.commit_on("beta", lambda: write(self.repo, "app/NOTE", "beta\n"), "beta")
        env_b = self.daemon.wait_env(2, "ready", two, timeout=300, fail_fast=True)
        # A write in A is A's alone: each preview has a server of its own.
        self.psql(slug_a, "INSERT INTO notes (body) VALUES ('written by a reviewer of A')")
        self.assertIn("written by a reviewer of A", self.page(env_a))
        self.assertNotIn("written by a reviewer of A", self.page(env_b))

        # A push that leaves the seed alone keeps the database, and the reviewer's row.
        three = self.commit_on("alpha", lambda: write(self.repo, "app/NOTE", "alpha two\n"), "alpha two", new_branch=False)
        env_a = self.daemon.wait_env(1, "ready", three, timeout=300, fail_fast=True)
        self.assertIn("written by a reviewer of A", self.page(env_a))
        self.assertIn("database app in db: kept", self.step_log(slug_a))

        # A push that adds a migration: the database is built again at the new key.
        four = self.push_a_migration("alpha")
        env_a = self.daemon.wait_env(1, "ready", four, timeout=300, fail_fast=True)
        page = self.page(env_a)
        self.assertIn("Added by migration 002", page)
        self.assertIn("Seeded row: Ada", page)
        self.assertIn("database app in db: seeded", self.step_log(slug_a))

        # A migration that fails: the step says why, the database B had is kept, nothing half-built is left.
        self.commit_on("beta", lambda: write(self.repo, "migrations/002_bad.sql", "ALTER TABLE nowhere ADD COLUMN x int;\n"),
                       "a bad migration", new_branch=False)
        failed = self.daemon.wait_env(2, "failed", timeout=300)
        self.assertEqual(failed["failed_step"], "seed: app")
        self.assertIn("the migration python3 /app/migrate.py", failed["error"])
        self.assertIn('relation "nowhere" does not exist', failed["error"])
        slug_b = env_b["slug"]
        self.assertEqual(self.psql(slug_b, "SELECT count(*) FROM pg_database WHERE starts_with(datname, 'prevue_')", "postgres"), "0")
        self.assertIn("Seeded row: Ada", self.psql(slug_b, "SELECT string_agg(body, ',') FROM notes"))

        # Merged: the project goes whole, its database volume with it.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge alpha", "alpha")
        self.daemon.wait_gone(slug_a, timeout=120)
        self.assertEqual(project_objects(slug_a), {"containers": [], "networks": [], "volumes": []})


if __name__ == "__main__":
    unittest.main()
