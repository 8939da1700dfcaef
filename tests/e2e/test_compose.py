"""The compose provider end to end, on the machine's real Docker Engine:
the reference app's own compose.yaml previewed per pull request through
the daemon and its proxy, images built once per tree, only what changed
recreated, everything (containers, networks, volumes, unshared images)
gone after a merge or a deleted branch, and an orphaned project swept.

Needs `docker info` to answer and the base image scripts/setup-images.sh
makes (scripts/test.sh runs it); without them the tests say so and skip."""

import json
import os
import signal
import subprocess
import unittest

from prevue_e2e import (TEMPLATE_DIR, Daemon, PrevueTestCase, Registry, commit_all, git, make_template_repo, primary_host,
                        processes_mentioning, set_banner)

COMPOSE_MANIFEST = os.path.join(TEMPLATE_DIR, "..", "reference-compose", "prevue.json")
BASE_IMAGE = "prevue/base:bookworm"


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"docker {args} failed: {out.stderr}")
    return out.stdout.split()


def docker_ready():
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
            return "no Docker Engine answers `docker info`"
        if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, timeout=30).returncode != 0:
            return f"the base image {BASE_IMAGE} is missing (scripts/setup-images.sh makes it)"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"docker: {e}"
    return None


def project_objects(slug):
    label = f"label=com.docker.compose.project={slug}"
    return {"containers": docker("ps", "--all", "--quiet", "--filter", label),
            "networks": docker("network", "ls", "--quiet", "--filter", label),
            "volumes": docker("volume", "ls", "--quiet", "--filter", label)}


def container_id(slug, service):
    ids = docker("ps", "--quiet", "--filter", f"label=com.docker.compose.project={slug}", "--filter",
                 f"label=com.docker.compose.service={service}")
    return ids[0] if ids else None


def built_images():
    """The compose reference app's images (the kubernetes suite's, prevue-build/reference-*, are its own to remove)."""
    return set(docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=prevue-build/web",
                      "--filter", "reference=prevue-build/api"))


class ComposeCase(PrevueTestCase):
    """A repository of the reference app whose manifest is the compose one,
    changed by `adjust`; what the test's daemon and builds leave is removed."""

    def adjust(self, manifest):
        manifest["lease"]["grace"] = "0s"  # a merged preview goes at once

    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        with open(COMPOSE_MANIFEST, encoding="utf-8") as f:
            manifest = json.load(f)
        self.adjust(manifest)
        with open(os.path.join(self.repo, "prevue.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
        commit_all(self.repo, "preview with compose")
        self.images_before = built_images()
        self.daemon = None

    def commit_banner(self, branch, banner, new_branch=True):
        """A commit on `branch` that changes only web's banner; its id. The repository is left on main."""
        git(self.repo, "checkout", "-q", *(["-b", branch] if new_branch else [branch]))
        set_banner(self.repo, banner)
        sha = commit_all(self.repo, banner)
        git(self.repo, "checkout", "-q", "main")
        return sha

    def tearDown(self):
        try:
            if self.daemon:
                self.daemon.stop()
        finally:
            super().tearDown()
            # Images the test built and no preview holds any more.
            for image in built_images() - self.images_before:
                docker("image", "rm", image, check=False)


@unittest.skipIf(docker_ready() is not None, docker_ready() or "")
class Compose(ComposeCase):
    def adjust(self, manifest):
        super().adjust(manifest)
        # A row only the database prevue builds and puts into the api's volume has.
        with open(os.path.join(self.repo, "seed", "002-put-by-prevue.sql"), "w", encoding="utf-8") as f:
            f.write("INSERT INTO items (name) VALUES ('Put into the api volume by prevue');\n")
        manifest["seed"][0]["files"].append("seed/002-put-by-prevue.sql")

    def branch(self, name, start="main"):
        git(self.repo, "checkout", "-q", "-b", name, start)
        git(self.repo, "checkout", "-q", "main")

    def apply_log(self, slug):
        return self.prevue("logs", slug, state_dir=self.daemon.state_dir).stdout

    def test_a_pull_request_as_containers_from_push_to_merge(self):
        first = self.commit_banner("feature", "Compose preview one")
        self.daemon = Daemon(self.scratch, [self.repo]).start()
        env = self.daemon.wait_env(1, "ready", first, timeout=300, fail_fast=True)
        slug = env["slug"]
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Compose preview one", page)
        self.assertIn(first, page)  # PREVUE_COMMIT reached the container
        self.assertIn("Snapshot row: Ada", page)  # the seeded rows, through the api's volume
        self.assertIn("Seeded inside the api container for PR 1", page)  # a seed step run in the api's container
        self.assertIn("Put into the api volume by prevue", page)  # a SQLite database built by prevue, put into the volume
        self.assertTrue(env["routes"][0]["upstream"].startswith("127.0.0.1:"), env["routes"])
        labels = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Labels}}", container_id(slug, "web")],
                                           capture_output=True, text=True, check=True).stdout)
        self.assertEqual(labels["dev.prevue.environment"], slug)
        self.assertEqual(labels["dev.prevue.commit"], first)
        api_container = container_id(slug, "api")
        logs = self.prevue("logs", slug, "--service", "web", state_dir=self.daemon.state_dir).stdout
        self.assertIn("web: listening on 0.0.0.0:8000", logs)  # the container's own output

        # A push that changes only web: web's image is built, api's reused, api's container kept.
        second = self.commit_banner("feature", "Compose preview two", new_branch=False)
        env = self.daemon.wait_env(1, "ready", second, timeout=300, fail_fast=True)
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertIn("Compose preview two", page)
        self.assertEqual(container_id(slug, "api"), api_container, "api was not recreated")
        log = self.apply_log(slug)
        self.assertRegex(log, r"api: image prevue-build/api:\S+ \(reused")
        self.assertRegex(log, r"web: image prevue-build/web:\S+ \(built\)")

        # A second pull request at the same tree (another commit): nothing built at all.
        git(self.repo, "checkout", "-q", "-b", "feature-copy", "feature")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", "same tree, another commit")
        twin_commit = git(self.repo, "rev-parse", "HEAD")
        git(self.repo, "checkout", "-q", "main")
        twin = self.daemon.wait_env(2, "ready", twin_commit, timeout=300, fail_fast=True)
        twin_log = self.apply_log(twin["slug"])
        self.assertNotIn("(built)", twin_log)
        self.assertEqual(len(set(p for p in twin_log.split() if p.startswith("prevue-build/"))), 2, twin_log)

        # Merged: its containers, networks and volumes go; the images the twin uses stay.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
        self.daemon.wait_gone(slug, timeout=120)
        self.assertEqual(project_objects(slug), {"containers": [], "networks": [], "volumes": []})
        self.assertEqual(self.daemon.get(primary_host(env))[0], 404)
        timeline = self.daemon.api_call("GET", f"/api/v1/environments/{slug}/timeline")[1]
        receipt = json.loads(next(t["detail"] for t in timeline if t["kind"] == "receipt"))
        twin_images = set(p.strip("()") for p in twin_log.split() if p.startswith("prevue-build/"))
        images = {item["name"]: item["outcome"] for item in receipt if item["kind"] == "image"}
        for image in twin_images:
            self.assertEqual(images.get(image), "kept: another preview uses it", receipt)
        only_ours = [name for name in images if name not in twin_images]  # the first push's web image
        self.assertTrue(only_ours and all(images[name] == "removed" for name in only_ours), receipt)
        self.assertTrue(any(item["kind"] == "container" and item["outcome"] == "removed" for item in receipt), receipt)

        # The twin's branch deleted: it goes too, and now its images with it.
        git(self.repo, "branch", "-q", "-D", "feature-copy")
        self.daemon.wait_gone(twin["slug"], timeout=120)
        self.assertEqual(project_objects(twin["slug"]), {"containers": [], "networks": [], "volumes": []})
        self.assertFalse(twin_images & built_images(), "the last preview using an image removes it")

    def test_a_container_killed_by_hand_is_noticed_and_brought_back(self):
        git(self.repo, "checkout", "-q", "-b", "sturdy")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", "a pull request")  # a branch level with main is no PR
        git(self.repo, "checkout", "-q", "main")
        liveness = {"scheduler": {"reconcile_interval": "2s", "activity_flush": "300ms", "liveness_interval": "1s"}}
        self.daemon = Daemon(self.scratch, [self.repo], extra=liveness).start()
        env = self.daemon.wait_env(1, "ready", timeout=300, fail_fast=True)
        slug = env["slug"]
        api_container = container_id(slug, "api")
        docker("kill", container_id(slug, "web"))
        # The providers' status says web is not running; the daemon brings it back at the same commit.
        self.daemon.wait_for(lambda: "env.recover slug=" + slug in self.daemon.read_log(), "the killed container noticed", 120)
        env = self.daemon.wait_for(lambda: next((e for e in self.daemon.environments() if e["slug"] == slug and e["state"] == "ready"
                                                 and container_id(slug, "web")), None), "web running again", 300)
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Seeded inside the api container for PR 1", page)  # the data survived: no re-seed, no new volume
        self.assertEqual(container_id(slug, "api"), api_container, "only the dead container was started again")
        self.assertEqual(len(docker("ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={slug}")), 2,
                         "nothing duplicated")

    def test_hostile_branch_names_give_valid_projects_and_run_nothing(self):
        canary = os.path.join(self.scratch, "pwned")
        hostile = [f"x;touch${{IFS}}{canary}", f"$(touch${{IFS}}{canary})-${{HOME}}-$PATH", "`id`-" + "B" * 120]
        for pr, branch in enumerate(hostile, start=20):
            git(self.repo, "checkout", "-q", "-b", branch, "main")
            git(self.repo, "commit", "-q", "--allow-empty", "-m", "hostile")
            git(self.repo, "checkout", "-q", "main")
            env, out = self.up(self.repo, pr, branch)
            self.assertTrue(env["ok"], f"{branch!r}: {out.stdout} {out.stderr}")
            slug = env["slug"]
            self.assertRegex(slug, r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
            web = container_id(slug, "web")
            self.assertTrue(web, f"no compose project named {slug}")
            environment = json.loads(subprocess.run(["docker", "inspect", "--format", "{{json .Config.Env}}", web],
                                                    capture_output=True, text=True, check=True).stdout)
            # The branch reaches the container as it is: not interpolated by Compose, not run by a shell.
            self.assertIn(f"PREVUE_REF={branch}", environment)
            self.prevue("down", slug)
            self.assertEqual(project_objects(slug), {"containers": [], "networks": [], "volumes": []})
        self.assertFalse(os.path.exists(canary))

    def test_daemon_killed_during_compose_up_converges_on_restart(self):
        sha = self.commit_banner("interrupted", "Survived a kill -9")
        self.daemon = Daemon(self.scratch, [self.repo]).start()
        # The moment compose starts creating the project's containers, the daemon dies.
        env = self.daemon.wait_for(lambda: next((e for e in self.daemon.environments() if e["pr"] == 1), None), "PR 1 known", 60)
        slug = env["slug"]
        self.daemon.wait_for(lambda: project_objects(slug)["containers"], "compose up under way", 300)
        self.daemon.stop(signal.SIGKILL)
        self.daemon.start()
        env = self.daemon.wait_env(1, "ready", sha, timeout=300, fail_fast=True)
        self.assertEqual(env["slug"], slug)
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Survived a kill -9", page)
        # Nothing duplicated: one container per service, one network, one volume; no Docker command of the killed run left.
        objects = project_objects(slug)
        self.assertEqual((len(objects["containers"]), len(objects["networks"]), len(objects["volumes"])), (2, 1, 1), objects)
        self.daemon.wait_for(lambda: not processes_mentioning(slug), "no command of the killed run left", 120)
        # Nothing orphaned: the merge takes everything.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge interrupted", "interrupted")
        self.daemon.wait_gone(slug, timeout=120)
        self.assertEqual(project_objects(slug), {"containers": [], "networks": [], "volumes": []})

    def test_an_orphaned_project_is_swept_by_gc(self):
        self.branch("orphan")
        env, out = self.up(self.repo, 9, "orphan")
        self.assertTrue(env["ok"], out.stdout + out.stderr)
        slug = env["slug"]
        containers = project_objects(slug)["containers"]
        self.assertTrue(containers)
        # Another prevue on the same engine (its own state directory) sweeps only its own orphans.
        other = self.prevue("gc", state_dir=os.path.join(self.scratch, "another-prevue"))
        self.assertNotIn(slug, other.stdout)
        self.assertEqual(project_objects(slug)["containers"], containers)
        # The store forgets it (a lost state directory); the containers stay, labelled.
        os.remove(os.path.join(self.state_dir, "prevue.db"))
        gc = self.prevue("gc")
        self.assertIn(f"swept orphan {slug} (compose)", gc.stdout)
        self.assertEqual(project_objects(slug), {"containers": [], "networks": [], "volumes": []})

    def test_a_compose_file_that_does_not_load_fails_the_step_and_leaves_nothing(self):
        git(self.repo, "checkout", "-q", "-b", "broken")
        with open(os.path.join(self.repo, "compose.yaml"), "a", encoding="utf-8") as f:
            f.write("  web: [this is: not valid\n")
        commit_all(self.repo, "broken compose file")
        git(self.repo, "checkout", "-q", "main")
        env, out = self.up(self.repo, 3, "broken")
        self.assertFalse(env["ok"])
        self.assertEqual(env["failed_step"], "apply")
        self.assertIn("the compose files do not load", env["error"])
        self.prevue("down", env["slug"])
        self.assertEqual(project_objects(env["slug"]), {"containers": [], "networks": [], "volumes": []})


@unittest.skipIf(docker_ready() is not None, docker_ready() or "")
class BrokenServices(ComposeCase):
    """What a pull request can break in its containers: each fails the apply
    step with the cause and the log tail, and teardown leaves nothing."""

    def adjust(self, manifest):
        super().adjust(manifest)
        manifest["services"]["web"]["health"]["timeout"] = "20s"

    def broken(self, pr, branch, path, *replacements):
        """Up of a branch whose file at `path` has each (old, new) replaced."""
        git(self.repo, "checkout", "-q", "-b", branch)
        with open(os.path.join(self.repo, path), encoding="utf-8") as f:
            text = f.read()
        for old, new in replacements:
            self.assertIn(old, text)
            text = text.replace(old, new)
        with open(os.path.join(self.repo, path), "w", encoding="utf-8") as f:
            f.write(text)
        commit_all(self.repo, f"break {path}")
        git(self.repo, "checkout", "-q", "main")
        env, out = self.up(self.repo, pr, branch)
        self.assertFalse(env["ok"], out.stdout)
        self.assertEqual(env["failed_step"], "apply", env)
        return env

    def assert_nothing_left(self, slug):
        self.prevue("down", slug)
        self.assertEqual(project_objects(slug), {"containers": [], "networks": [], "volumes": []})

    def test_a_service_whose_build_fails(self):
        containers_before = set(docker("ps", "--all", "--quiet"))
        env = self.broken(1, "no-build", "web/Dockerfile",
                          ("COPY server.py /app/server.py", "COPY server.py /app/server.py\nRUN echo 'the build broke here' && exit 3"))
        self.assertIn("building the image of web failed", env["error"])
        self.assertIn("the build broke here", env["error"])  # the builder's own output
        self.assert_nothing_left(env["slug"])
        self.assertEqual(set(docker("ps", "--all", "--quiet")) - containers_before, set(), "the failed step's container is left")

    def test_an_image_that_exits_at_once(self):
        env = self.broken(2, "exits", "compose.yaml",
                          ("    build: ./api\n",
                           "    build: ./api\n    command: [\"python3\", \"-c\", \"print('api: no configuration, giving up'); exit(3)\"]\n"))
        self.assertIn("service api exited", env["error"])
        self.assertIn("api: no configuration, giving up", env["error"])  # its log tail
        self.assert_nothing_left(env["slug"])

    def test_a_healthcheck_that_never_passes(self):
        env = self.broken(3, "unhealthy", "compose.yaml",
                          ("urllib.request.urlopen('http://127.0.0.1:8001/healthz', timeout=2)\"]", "print('database not ready'); exit(1)\"]"),
                          ("retries: 30", "retries: 3"))
        self.assertIn("service api is unhealthy", env["error"])
        self.assertIn("database not ready", env["error"])  # what the healthcheck printed
        self.assert_nothing_left(env["slug"])

    def test_a_routed_service_that_never_answers_its_health_path(self):
        env = self.broken(4, "no-health", "prevue.json", ('"path": "/healthz"', '"path": "/no-such-page"'))
        self.assertIn("not healthy within 20 s", env["error"])
        self.assertIn("web (running", env["error"])
        self.assert_nothing_left(env["slug"])


def swarm_state():
    return subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], capture_output=True, text=True,
                          timeout=30).stdout.strip()


def stack_objects(slug):
    label = f"label=com.docker.stack.namespace={slug}"
    return {"services": docker("service", "ls", "--quiet", "--filter", label),
            "containers": docker("ps", "--all", "--quiet", "--filter", label),
            "networks": docker("network", "ls", "--quiet", "--filter", label),
            "volumes": docker("volume", "ls", "--quiet", "--filter", label)}


@unittest.skipIf(docker_ready() is not None, docker_ready() or "")
class Swarm(ComposeCase):
    """The same compose file as a stack on a single-node swarm the test makes
    (on loopback) and leaves again."""

    @classmethod
    def setUpClass(cls):
        cls.made_swarm = swarm_state() != "active"
        if cls.made_swarm:
            subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"],
                           capture_output=True, text=True, check=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        if cls.made_swarm:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=120, check=False)
            # The bridge `swarm init` made stays after leaving.
            subprocess.run(["docker", "network", "rm", "docker_gwbridge"], capture_output=True, timeout=120, check=False)

    def adjust(self, manifest):
        super().adjust(manifest)
        manifest["compose"]["mode"] = "swarm"

    def test_a_pull_request_as_a_stack_from_push_to_merge(self):
        first = self.commit_banner("stacked", "Stack preview one")
        self.daemon = Daemon(self.scratch, [self.repo]).start()
        env = self.daemon.wait_env(1, "ready", first, timeout=300, fail_fast=True)
        slug = env["slug"]
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Stack preview one", page)
        self.assertIn(first, page)
        self.assertIn("Seeded inside the api container for PR 1", page)  # exec into the stack's task
        services = docker("service", "ls", "--format", "{{.Name}}", "--filter", f"label=com.docker.stack.namespace={slug}")
        self.assertEqual(sorted(services), [f"{slug}_api", f"{slug}_web"])
        labels = json.loads(subprocess.run(["docker", "service", "inspect", "--format", "{{json .Spec.Labels}}", f"{slug}_web"],
                                           capture_output=True, text=True, check=True).stdout)
        self.assertEqual(labels["dev.prevue.environment"], slug)
        api_service_version = docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", f"{slug}_api")

        # A push to web only: the api service keeps its spec (no new task).
        api_tasks = docker("service", "ps", "--quiet", f"{slug}_api")
        second = self.commit_banner("stacked", "Stack preview two", new_branch=False)
        env = self.daemon.wait_env(1, "ready", second, timeout=300, fail_fast=True)
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertIn("Stack preview two", page)
        self.assertEqual(docker("service", "ps", "--quiet", f"{slug}_api"), api_tasks, "api was not updated")
        self.assertEqual(docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", f"{slug}_api"),
                         api_service_version)

        # Merged: the stack, its networks and its volumes go.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge stacked", "stacked")
        self.daemon.wait_gone(slug, timeout=180)
        self.assertEqual(stack_objects(slug), {"services": [], "containers": [], "networks": [], "volumes": []})
        self.assertEqual(self.daemon.get(primary_host(env))[0], 404)
        timeline = self.daemon.api_call("GET", f"/api/v1/environments/{slug}/timeline")[1]
        receipt = json.loads(next(t["detail"] for t in timeline if t["kind"] == "receipt"))
        removed = {(item["kind"], item["name"]) for item in receipt if item["outcome"] == "removed"}
        self.assertIn(("service", f"{slug}_web"), removed, receipt)
        self.assertIn(("volume", f"{slug}_data"), removed, receipt)


    def test_images_go_through_the_operators_registry(self):
        """A multi-node swarm pulls from a registry: prevue pushes each image to
        the one named in its config and the stack names it there. A real
        registry (Debian's docker-registry) on a loopback port stands in."""
        registry = Registry(self.scratch)
        self.addCleanup(registry.stop)
        sha = self.commit_banner("pushed", "Pulled from the registry")
        self.daemon = Daemon(self.scratch, [self.repo], extra={"providers": {"compose": {"registry": registry.address}}}).start()
        env = self.daemon.wait_env(1, "ready", sha, timeout=300, fail_fast=True)
        slug = env["slug"]
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Pulled from the registry", page)
        image = docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", f"{slug}_web")[0]
        self.assertTrue(image.startswith(f"{registry.address}/prevue-build/web:"), image)
        self.assertIn("@sha256:", image)  # --resolve-image always: every node runs the same digest
        self.assertEqual(set(registry.catalog()), {"prevue-build/api", "prevue-build/web"})
        git(self.repo, "branch", "-q", "-D", "pushed")
        self.daemon.wait_gone(slug, timeout=180)
        self.assertEqual(stack_objects(slug), {"services": [], "containers": [], "networks": [], "volumes": []})
        self.assertFalse([i for i in built_images() if i.startswith(registry.address)], "the local tags of pushed images are removed")


if __name__ == "__main__":
    unittest.main()
