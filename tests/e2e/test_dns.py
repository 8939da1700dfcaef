"""DNS for real zones: the daemon publishes each preview's names with RFC 2136
updates signed with TSIG to a real Knot server (started by the test on a
loopback port) and removes them at teardown; a wrong key is a clear error
while the preview still serves and the DNS step is retried; the reconcile
pass (daemon start, `prevue gc`) restores a record deleted behind prevue's
back and removes a stale one, and never deletes a record someone re-pointed.
The `command` backend hands the same work to an executable."""

import json
import os
import subprocess
import sys

from knot_server import KnotServer
from prevue_e2e import (PREVUE, PROVIDER_DIR, Daemon, PrevueTestCase, commit_all, git, make_template_repo, primary_host, set_banner,
                        set_lease)

ZONE = "preview.test"


class RealZone(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.knot = KnotServer(os.path.join(self.scratch, "knot"), zone=ZONE).start()
        self.repo = make_template_repo(self.scratch)
        self.daemon = None

    def tearDown(self):
        if self.daemon:
            self.daemon.stop()
        self.knot.stop()
        super().tearDown()

    def branch(self, name):
        git(self.repo, "checkout", "-q", "-b", name, "main")
        set_lease(self.repo, {"ttl": "1h", "idle": "1h", "end": "destroy", "grace": "0s"})
        set_banner(self.repo, name)
        sha = commit_all(self.repo, name)
        git(self.repo, "checkout", "-q", "main")
        return sha

    def start_daemon(self, key_file=None, **dns):
        settings = {"backend": "rfc2136", "server": f"127.0.0.1:{self.knot.port}", "key_file": key_file or self.knot.key_file,
                    "timeout": "1s", "attempts": 1}
        settings.update(dns)
        if self.daemon is None:
            self.daemon = Daemon(self.scratch, [self.repo], extra={"dns": settings})
            with open(self.daemon.config_path, encoding="utf-8") as f:
                config = json.load(f)
            config["proxy"]["domain"] = ZONE
            with open(self.daemon.config_path, "w", encoding="utf-8") as f:
                json.dump(config, f)
        return self.daemon.start()

    def hosts_of(self, env):
        return [r["host"] for r in env["routes"]] or [env["slug"] + "." + ZONE]

    def gc(self):
        cmd = [PREVUE, "gc", "--config", self.daemon.config_path] + (["--provider-dir", PROVIDER_DIR] if PROVIDER_DIR else [])
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def test_records_follow_previews_and_reconcile_repairs_drift(self):
        self.branch("feature-a")
        self.start_daemon()
        env = self.daemon.wait_env(1, "ready")
        hosts = self.hosts_of(env)
        self.assertEqual(len(hosts), 2, "the reference app routes web and api")
        for host in hosts:
            self.daemon.wait_for(lambda h=host: self.knot.dig(h) == ["127.0.0.1"], f"{host} in DNS")
        self.daemon.wait_for(lambda: self.daemon.environment(env["slug"])["dns"]["state"] == "published", "DNS state published")
        status, timeline = self.daemon.api_call("GET", f"/api/v1/environments/{env['slug']}/timeline")
        self.assertTrue(any(t["kind"] == "dns" and t["detail"].startswith("published") for t in timeline), timeline)

        # Behind prevue's back: its record deleted, a stale one of its own left, a foreign one added.
        self.daemon.stop()
        self.knot.nsupdate([f"update delete {hosts[0]}. A",
                            f"update add pr-99-stale-abcdef.{ZONE}. 60 A 127.0.0.1",
                            f"update add pr-98-foreign-abcdef.{ZONE}. 60 A 192.0.2.55"])
        self.assertEqual(self.knot.dig(hosts[0]), [])
        self.start_daemon()  # the start reconciles against a zone transfer
        self.daemon.wait_for(lambda: self.knot.dig(hosts[0]) == ["127.0.0.1"], "the deleted record restored")
        self.daemon.wait_for(lambda: self.knot.dig(f"pr-99-stale-abcdef.{ZONE}") == [], "the stale record removed")
        self.assertEqual(self.knot.dig(f"pr-98-foreign-abcdef.{ZONE}"), ["192.0.2.55"], "a record pointing elsewhere is not prevue's")
        self.assertEqual(self.knot.dig(f"elsewhere.{ZONE}"), ["192.0.2.10"])

        # `prevue gc` does the same beside the running daemon.
        self.knot.nsupdate([f"update delete {hosts[0]}. A", f"update add pr-97-stale-abcdef.{ZONE}. 60 A 127.0.0.1"])
        run = self.gc()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("checked: dns (rfc2136)", run.stdout)
        self.assertEqual(self.knot.dig(hosts[0]), ["127.0.0.1"])
        self.assertEqual(self.knot.dig(f"pr-97-stale-abcdef.{ZONE}"), [])

        # Teardown removes the records; one re-pointed by someone else is left alone.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge a", "feature-a")
        self.knot.nsupdate([f"update delete {hosts[1]}. A", f"update add {hosts[1]}. 60 A 192.0.2.77"])
        self.daemon.api_call("POST", "/api/v1/repositories/poll", {})
        self.daemon.wait_gone(env["slug"])
        self.daemon.wait_for(lambda: self.knot.dig(hosts[0]) == [], "the record removed at teardown")
        # The teardown's publication is finished (nothing left to publish) before the re-pointed one is judged.
        self.daemon.wait_for(lambda: "dns.published backend=rfc2136 hosts=0" in self.daemon.read_log(), "the teardown's DNS pass")
        self.assertEqual(self.knot.dig(hosts[1]), ["192.0.2.77"], "a re-pointed record is never deleted")

    def test_wrong_key_is_a_clear_error_and_the_preview_still_serves(self):
        wrong = os.path.join(self.scratch, "wrong.key")
        with open(wrong, "w", encoding="utf-8") as f:
            f.write('key "prevue-key" {\n\talgorithm hmac-sha256;\n\tsecret "' + "QUJD" * 11 + '";\n};\n')
        self.branch("feature-b")
        self.start_daemon(key_file=wrong)
        env = self.daemon.wait_env(1, "ready")
        host = primary_host(env)
        code, page, _ = self.daemon.get(host)
        self.assertEqual(code, 200, page[:300])
        self.assertIn("feature-b", page)
        dns = self.daemon.wait_for(lambda: self.daemon.environment(env["slug"])["dns"]["state"] == "failed" and
                                   self.daemon.environment(env["slug"])["dns"], "the DNS step to fail")
        self.assertIn("TSIG", dns["error"])
        self.assertIn("prevue-key", dns["error"])
        # Retried with backoff (1 s, then 2 s): more than one attempt shows in the log.
        self.daemon.wait_for(lambda: self.daemon.read_log().count("dns.failed") >= 2, "a retry", timeout=30)
        self.assertEqual(self.knot.dig(host), [])
        status, timeline = self.daemon.api_call("GET", f"/api/v1/environments/{env['slug']}/timeline")
        self.assertTrue(any(t["kind"] == "dns" and "failed" in t["detail"] for t in timeline), timeline)

    def test_without_zone_transfers_reconcile_queries_each_name(self):
        self.knot.stop()
        self.knot = KnotServer(os.path.join(self.scratch, "knot-noaxfr"), zone=ZONE, allow_transfer=False).start()
        self.branch("feature-c")
        self.start_daemon(zone_transfer=False)
        env = self.daemon.wait_env(1, "ready")
        host = self.hosts_of(env)[0]
        self.daemon.wait_for(lambda: self.knot.dig(host) == ["127.0.0.1"], "the record published")
        self.daemon.stop()
        self.knot.nsupdate([f"update delete {host}. A"])
        self.start_daemon(zone_transfer=False)
        self.daemon.wait_for(lambda: self.knot.dig(host) == ["127.0.0.1"], "the record restored by per-name queries")


class CommandBackend(PrevueTestCase):
    def test_a_script_gets_the_requests(self):
        repo = make_template_repo(self.scratch)
        git(repo, "checkout", "-q", "-b", "feature-d", "main")
        set_banner(repo, "feature-d")
        commit_all(repo, "d")
        git(repo, "checkout", "-q", "main")
        log = os.path.join(self.scratch, "requests.jsonl")
        script = os.path.join(self.scratch, "dns-hook.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write("import json, sys\nrequest = json.load(sys.stdin)\n"
                    f"open({log!r}, 'a').write(json.dumps(request) + '\\n')\n")
        daemon = Daemon(self.scratch, [repo], extra={"dns": {"backend": "command", "command": [sys.executable, script]}}).start()
        try:
            env = daemon.wait_env(1, "ready")

            def requests():
                try:
                    with open(log, encoding="utf-8") as f:
                        return [json.loads(line) for line in f]
                except OSError:
                    return []
            daemon.wait_for(lambda: any(any(h.startswith(env["slug"]) or env["slug"] in h for h in r["hosts"]) for r in requests()),
                            "the script to get the preview's hosts")
            first = requests()[0]
            self.assertEqual(first["verb"], "reconcile")  # the daemon's start
            self.assertEqual(first["address"], "127.0.0.1")
            self.assertEqual(first["domain"], "prevue.localhost")
            self.assertTrue(all(r["verb"] == "sync" for r in requests()[1:]))
        finally:
            daemon.stop()
