"""The kubernetes provider end to end, on a real single-node cluster
(scripts/kube-node.sh: etcd, the API server, controllers, a kubelet on its
own containerd, kube-proxy and CoreDNS, built from source): the reference
app's manifests (templates/reference-k8s) previewed per pull request in a
namespace of their own, through the daemon and its proxy; only the
Deployment a push changed rolls; a merge or a deleted branch removes the
namespace; orphans swept; broken manifests fail with their cause.

prevue talks to the cluster as the user of docs/kubernetes-rbac.yaml's
ClusterRole, not as an administrator. Without a running node
(scripts/test.sh starts one) the tests say so and skip."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import unittest

from prevue_e2e import (TEMPLATE_DIR, Daemon, PrevueTestCase, Registry, commit_all, git, make_template_repo, primary_host,
                        processes_mentioning, set_banner)

K8S_TEMPLATE = os.path.join(TEMPLATE_DIR, "..", "reference-k8s")
KUBE_STATE = os.environ.get("PREVUE_K8S_STATE", "/var/lib/prevue-kube")
ADMIN_KUBECONFIG = os.path.join(KUBE_STATE, "admin.kubeconfig")
PROVIDER_KUBECONFIG = os.path.join(KUBE_STATE, "provider.kubeconfig")
CONTAINERD = "/run/prevue-kube/containerd.sock"
NODE_IP = "10.245.0.1"
NODE_REGISTRY_PORT = 15000  # the node's containerd pulls from 127.0.0.1:15000 over HTTP (scripts/kube-node.sh)


def kubectl(*args, check=True, kubeconfig=ADMIN_KUBECONFIG):
    out = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=False, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {args} failed: {out.stderr}")
    return out


def kube_json(*args):
    return json.loads(kubectl(*args, "--output", "json").stdout)


def node_ready():
    try:
        if not os.path.exists(PROVIDER_KUBECONFIG) or not os.path.exists(CONTAINERD):
            return "no Kubernetes node runs here (scripts/kube-node.sh start)"
        if kubectl("get", "--raw", "/readyz", check=False).returncode != 0:
            return "the node's API server does not answer"
        if subprocess.run(["docker", "image", "inspect", "prevue/base:bookworm"], capture_output=True, timeout=30).returncode:
            return "the base image prevue/base:bookworm is missing (scripts/setup-images.sh makes it)"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"kubectl: {e}"
    return None


def namespace(name):
    out = kubectl("get", "namespace", name, "--ignore-not-found", "--output", "json")
    return json.loads(out.stdout) if out.stdout.strip() else None


def pods(ns, app):
    return [p for p in kube_json("get", "pods", "--namespace", ns, "--selector", f"app.kubernetes.io/name={app}")["items"]
            if "deletionTimestamp" not in p["metadata"]]


def built_images():
    """The images of templates/reference-k8s (the compose suite's, prevue-build/web and api, are its own to remove)."""
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=prevue-build/reference-*"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


OPERATOR = {"providers": {"kubernetes": {"kubeconfig": PROVIDER_KUBECONFIG, "containerd": CONTAINERD}}}


@unittest.skipIf(node_ready() is not None, node_ready() or "")
class Kubernetes(PrevueTestCase):
    def setUp(self):
        super().setUp()
        self.repo = make_template_repo(self.scratch)
        shutil.copytree(K8S_TEMPLATE, self.repo, dirs_exist_ok=True)
        self.set_manifest(lambda m: m["lease"].update({"grace": "0s"}))  # a merged preview goes at once
        commit_all(self.repo, "preview on kubernetes")
        self.images_before = built_images()
        self.daemon = None

    def tearDown(self):
        try:
            if self.daemon:
                self.daemon.stop()
            # `prevue down` of what is left reaches the cluster the daemon used (the provider remembers it).
        finally:
            super().tearDown()
            for image in built_images() - self.images_before:
                subprocess.run(["docker", "image", "rm", image], capture_output=True, check=False)

    def start_daemon(self, operator=None, **scheduler):
        extra = {"providers": {"kubernetes": operator}} if operator else dict(OPERATOR)
        if scheduler:
            extra["scheduler"] = {"reconcile_interval": "2s", "activity_flush": "300ms", **scheduler}
        self.daemon = Daemon(self.scratch, [self.repo], extra=extra).start()
        return self.daemon

    def edit(self, path, old, new):
        path = os.path.join(self.repo, path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert old in text, (old, path)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))

    def add_resource(self, text):
        with open(os.path.join(self.repo, "k8s", "base", "extra.yaml"), "w", encoding="utf-8") as f:
            f.write(text)
        self.edit("k8s/base/kustomization.yaml", "  - web.yaml\n", "  - web.yaml\n  - extra.yaml\n")

    def page_once_routed(self, env, text, timeout):
        """The preview's page once it answers 200 with `text`. kube-proxy follows a rollout
        within its sync period: until then a new connection to the Service's address may
        reach the old pod (terminating, still serving) or hang while its rules name it."""
        def answering():
            try:
                status, page, _ = self.daemon.get(primary_host(env), timeout=5)
            except OSError:  # timed out
                return None
            return page if status == 200 and text in page else None
        return self.daemon.wait_for(answering, f"the page with {text!r}", timeout)

    def test_a_pull_request_in_its_own_namespace_from_push_to_merge(self):
        first = self.commit_on("feature", lambda: set_banner(self.repo, "Kubernetes preview one"), "one")
        self.start_daemon()
        env = self.daemon.wait_env(1, "ready", first, timeout=300, fail_fast=True)
        slug = env["slug"]
        ns = namespace(slug)
        self.assertIsNotNone(ns, f"no namespace {slug}")
        labels, annotations = ns["metadata"]["labels"], ns["metadata"]["annotations"]
        self.assertEqual(labels["app.kubernetes.io/managed-by"], "prevue")
        self.assertEqual(labels["dev.prevue.environment"], slug)
        self.assertEqual(labels["dev.prevue.pr"], "1")
        self.assertEqual(annotations["dev.prevue.commit"], first)
        self.assertEqual(annotations["dev.prevue.repository"], os.path.realpath(self.repo))
        self.assertRegex(annotations["janitor/expires"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Kubernetes preview one", page)
        self.assertIn(first, page)  # PREVUE_COMMIT reached the pod
        self.assertIn("Snapshot row: Ada", page)  # the database prevue built, put into the api's volume
        self.assertIn("Seeded inside the api pod for PR 1", page)  # a seed command run in the api's pod
        # web reaches api by its Service's name (cluster DNS), once kube-proxy has
        # programmed api's address: that lags api's readiness by a moment.
        self.daemon.wait_for(lambda: "&quot;service&quot;: &quot;api&quot;" in self.daemon.get(primary_host(env))[1],
                             "web reaching api through its Service", 30)
        service_ip = kube_json("get", "service", "web", "--namespace", slug)["spec"]["clusterIP"]
        self.assertEqual(env["routes"][0]["upstream"], f"{service_ip}:8000")
        logs = self.prevue("logs", slug, "--service", "web", state_dir=self.daemon.state_dir).stdout
        self.assertIn("web: listening on 0.0.0.0:8000", logs)
        api_pod = pods(slug, "api")[0]["metadata"]["uid"]
        web_pod = pods(slug, "web")[0]["metadata"]["uid"]

        # A push that changes only web: web's image is built and its Deployment rolls; api's pod stays.
        second = self.commit_on("feature", lambda: set_banner(self.repo, "Kubernetes preview two"), "two", new_branch=False)
        env = self.daemon.wait_env(1, "ready", second, timeout=300, fail_fast=True)
        # The rollout is done; kube-proxy may still send a new connection to the
        # old pod (terminating, still serving) for up to its sync period.
        page = self.page_once_routed(env, "Kubernetes preview two", 30)
        self.assertIn("Snapshot row: Ada", page)  # the volume outlived web's new pod
        self.assertEqual([p["metadata"]["uid"] for p in pods(slug, "api")], [api_pod], "api did not roll")
        self.assertNotIn(web_pod, [p["metadata"]["uid"] for p in pods(slug, "web")], "web rolled")
        log = self.prevue("logs", slug, state_dir=self.daemon.state_dir).stdout
        self.assertRegex(log, r"reference-api: image prevue-build/reference-api:\S+ \(reused")
        self.assertRegex(log, r"reference-web: image prevue-build/reference-web:\S+ \(built\)")

        # A second pull request at the same tree: nothing built; then its branch is deleted.
        git(self.repo, "checkout", "-q", "-b", "feature-copy", "feature")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", "same tree, another commit")
        twin_commit = git(self.repo, "rev-parse", "HEAD")
        git(self.repo, "checkout", "-q", "main")
        twin = self.daemon.wait_env(2, "ready", twin_commit, timeout=300, fail_fast=True)
        self.assertNotIn("(built)", self.prevue("logs", twin["slug"], state_dir=self.daemon.state_dir).stdout)

        # Merged: the namespace goes (and waits for its finalizers), the host answers 404.
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
        self.daemon.wait_gone(slug, timeout=300)
        self.assertIsNone(namespace(slug))
        self.assertEqual(self.daemon.get(primary_host(env))[0], 404)
        timeline = self.daemon.api_call("GET", f"/api/v1/environments/{slug}/timeline")[1]
        receipt = json.loads(next(t["detail"] for t in timeline if t["kind"] == "receipt"))
        self.assertIn({"kind": "namespace", "name": slug, "outcome": "removed"},
                      [{k: item[k] for k in ("kind", "name", "outcome")} for item in receipt])
        self.assertTrue(any(item["name"] == "deployment.apps/web" for item in receipt), receipt)

        # The twin's branch deleted: the same.
        git(self.repo, "branch", "-q", "-D", "feature-copy")
        self.daemon.wait_gone(twin["slug"], timeout=300)
        self.assertIsNone(namespace(twin["slug"]))

    def test_a_deployment_scaled_to_zero_by_hand_is_restored_and_an_orphan_namespace_swept(self):
        git(self.repo, "checkout", "-q", "-b", "sturdy")
        git(self.repo, "commit", "-q", "--allow-empty", "-m", "a pull request")  # a branch level with main is no PR
        git(self.repo, "checkout", "-q", "main")
        self.start_daemon(liveness_interval="1s")
        env = self.daemon.wait_env(1, "ready", timeout=300, fail_fast=True)
        slug = env["slug"]
        kubectl("scale", "deployment", "web", "--replicas", "0", "--namespace", slug)
        self.daemon.wait_for(lambda: "env.recover slug=" + slug in self.daemon.read_log(), "the scaled-down Deployment noticed", 120)
        self.daemon.wait_for(lambda: kube_json("get", "deployment", "web", "--namespace", slug)["status"].get("readyReplicas") == 1,
                             "web back at one replica", 300)
        page = self.page_once_routed(env, "Hello from a prevue preview", 120)
        self.assertIn("Seeded inside the api pod for PR 1", page)  # the data kept: no re-seed, same volume

        # A namespace of this prevue that no environment owns (its state lost): swept by gc.
        orphan = "pr-77-orphan-0000000"
        instance = hashlib.sha256(os.path.join(self.daemon.state_dir, "providers", "kubernetes").encode()).hexdigest()[:16]
        kubectl("create", "namespace", orphan)
        kubectl("label", "namespace", orphan, "app.kubernetes.io/managed-by=prevue", f"dev.prevue.environment={orphan}",
                f"dev.prevue.instance={instance}")
        kubectl("create", "configmap", "left-behind", "--namespace", orphan, "--from-literal=a=b")
        foreign = "pr-78-someone-elses"  # another prevue's: not ours to sweep
        kubectl("create", "namespace", foreign)
        kubectl("label", "namespace", foreign, "app.kubernetes.io/managed-by=prevue", f"dev.prevue.environment={foreign}",
                "dev.prevue.instance=0123456789abcdef")
        try:
            gc = self.prevue("gc", "--config", self.daemon.config_path)
            self.assertIn(f"swept orphan {orphan} (kubernetes)", gc.stdout)
            self.assertNotIn(slug, gc.stdout)
            self.assertIsNone(namespace(orphan))
            self.assertIsNotNone(namespace(foreign))
            self.assertIsNotNone(namespace(slug))
        finally:
            kubectl("delete", "namespace", orphan, foreign, "--ignore-not-found", "--wait=false", check=False)

    def test_the_daemon_killed_mid_rollout_converges_on_restart(self):
        sha = self.commit_on("interrupted", lambda: set_banner(self.repo, "Survived a kill -9"), "interrupted")
        self.start_daemon()
        env = self.daemon.wait_for(lambda: next((e for e in self.daemon.environments() if e["pr"] == 1), None), "PR 1 known", 60)
        slug = env["slug"]
        # The moment the Deployments exist, the daemon dies.
        self.daemon.wait_for(lambda: namespace(slug) and kubectl("get", "deployments", "--namespace", slug, "--output", "name").stdout,
                             "the rollout under way", 300)
        self.daemon.stop(signal.SIGKILL)
        self.daemon.start()
        env = self.daemon.wait_env(1, "ready", sha, timeout=300, fail_fast=True)
        self.assertEqual(env["slug"], slug)
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Survived a kill -9", page)
        # Nothing duplicated: one namespace for the PR, two Deployments, one pod each.
        managed = kube_json("get", "namespaces", "--selector", f"dev.prevue.environment={slug}")["items"]
        self.assertEqual(len(managed), 1)
        self.assertEqual(sorted(d["metadata"]["name"] for d in kube_json("get", "deployments", "--namespace", slug)["items"]),
                         ["api", "web"])
        self.assertEqual((len(pods(slug, "web")), len(pods(slug, "api"))), (1, 1))
        self.daemon.wait_for(lambda: not processes_mentioning(slug), "no command of the killed run left", 120)
        git(self.repo, "merge", "-q", "--no-ff", "-m", "merge interrupted", "interrupted")
        self.daemon.wait_gone(slug, timeout=300)
        self.assertIsNone(namespace(slug))

    def test_broken_manifests_fail_with_their_cause_and_still_tear_down(self):
        cases = {
            # branch: (change, what the error must say)
            "crashes": (lambda: self.edit("k8s/base/web.yaml", '"--api", "http://api:8001"]',
                                          '"--api", "http://api:8001", "--no-such-flag"]'),
                        ["web", "unrecognized arguments: --no-such-flag"]),
            "no-image": (lambda: self.edit("k8s/base/api.yaml", "image: reference-api", "image: 127.0.0.1:9/nothing/here:1"),
                         ["api", "ErrImagePull"]),
            "rejected": (lambda: self.edit("k8s/base/web.yaml", "replicas: 1", "replicas: many"),
                         ["refused the manifests"]),
            # A pull request's manifests cannot reach beyond its namespace, nor into kubectl's options.
            "cluster-wide": (lambda: self.add_resource("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n"
                                                       "metadata: {name: grab}\nrules: []\n"),
                             ["ClusterRole/grab is cluster-scoped"]),
            "hostile-name": (lambda: self.add_resource("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: --kubeconfig=/tmp/x}\n"),
                             ["name '--kubeconfig=/tmp/x' is not a valid object name"]),
        }
        shas = {branch: self.commit_on(branch, change, branch) for branch, (change, _) in cases.items()}
        self.start_daemon()
        for pr, (branch, (_, expected)) in enumerate(cases.items(), start=1):
            env = self.daemon.wait_for(lambda: next((e for e in self.daemon.environments()
                                                     if e["ref"] == branch and e["state"] == "failed" and e["commit"] == shas[branch]), None),
                                       f"{branch} failed", 300)
            for text in expected:
                self.assertIn(text, env["error"], f"{branch}: {env['error']}")
        for branch in cases:
            git(self.repo, "branch", "-q", "-D", branch)
        for env in [e for e in self.daemon.environments() if e["ref"] in cases]:
            self.daemon.wait_gone(env["slug"], timeout=300)
            self.assertIsNone(namespace(env["slug"]))

    def test_images_through_the_operators_registry_and_routing_by_node_port(self):
        registry = Registry(self.scratch, port=NODE_REGISTRY_PORT)
        self.addCleanup(registry.stop)

        def node_port_preview():
            set_banner(self.repo, "Reached by NodePort")
            self.edit("k8s/preview/kustomization.yaml", "patches:\n", "patches:\n  - target: {kind: Service, name: web}\n"
                      "    patch: |-\n      - op: add\n        path: /spec/type\n        value: NodePort\n")
            path = os.path.join(self.repo, "prevue.json")
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
            manifest["kubernetes"]["routing"] = "node-port"
            with open(path, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2)
        sha = self.commit_on("by-node-port", node_port_preview, "node port")
        # The nodes pull from the registry: no image is loaded into the node by prevue.
        self.start_daemon(operator={"kubeconfig": PROVIDER_KUBECONFIG, "registry": registry.address})
        env = self.daemon.wait_env(1, "ready", sha, timeout=300, fail_fast=True)
        slug = env["slug"]
        status, page, _ = self.daemon.get(primary_host(env))
        self.assertEqual(status, 200, page)
        self.assertIn("Reached by NodePort", page)
        node_port = kube_json("get", "service", "web", "--namespace", slug)["spec"]["ports"][0]["nodePort"]
        self.assertEqual(env["routes"][0]["upstream"], f"{NODE_IP}:{node_port}")
        images = [c["image"] for p in pods(slug, "web") + pods(slug, "api") for c in p["spec"]["containers"]]
        self.assertTrue(images and all(i.startswith(registry.address + "/prevue-build/reference-") for i in images), images)
        self.assertEqual(sorted(registry.catalog()), ["prevue-build/reference-api", "prevue-build/reference-web"])
        git(self.repo, "branch", "-q", "-D", "by-node-port")
        self.daemon.wait_gone(slug, timeout=300)
        self.assertIsNone(namespace(slug))

    def test_prevue_is_confined_to_the_namespaces_it_manages(self):
        # docs/kubernetes-rbac.yaml: the ClusterRole binds `admin` only inside prevue's namespaces.
        binding = ("create", "rolebinding", "grab", "--clusterrole", "admin", "--user", "prevue-provider", "--namespace", "kube-system")
        out = kubectl(*binding, check=False, kubeconfig=PROVIDER_KUBECONFIG)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("prevue manages only the namespaces labelled", out.stderr)
        out = kubectl("label", "namespace", "default", "app.kubernetes.io/managed-by=prevue", check=False, kubeconfig=PROVIDER_KUBECONFIG)
        self.assertNotEqual(out.returncode, 0)
        out = kubectl("get", "pods", "--namespace", "kube-system", check=False, kubeconfig=PROVIDER_KUBECONFIG)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("forbidden", out.stderr)


if __name__ == "__main__":
    unittest.main()
