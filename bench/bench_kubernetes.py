#!/usr/bin/env python3
"""The kubernetes provider against kubectl by hand, in the same run, on the
reference app's manifests (templates/reference-k8s) and the test node
(scripts/kube-node.sh start):

  1. time to preview: a new pull request at a tree whose images are built,
     from the event to the first 200 (with the commit's page) through
     prevue's proxy, against `kubectl create namespace` + `kubectl apply -k`
     of the same overlay (the same images) + `kubectl rollout status` of its
     Deployments by hand, then the page polled at the Service's address
     until it answers 200 (the same poll either way). prevue's side also
     seeds the database (a put and a command in the api's pod), which the
     by-hand side does not: the figure includes that work. The same is
     measured for a manifest without seed steps (a branch that drops them),
     prevue's own overhead on the same rollout.
  2. teardown: from the merge to the namespace gone, against `kubectl delete
     namespace --wait` by hand.

Bounded: --rounds rounds, each wait at most 300 s.
Usage: bench/bench_kubernetes.py [--rounds 3]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

from bench_common import GIT, ROOT, WatchingServe, clean_up, get, git, make_repo, no_grace, until

KUBE_STATE = os.environ.get("PREVUE_K8S_STATE", "/var/lib/prevue-kube")
ADMIN = ["kubectl", "--kubeconfig", os.path.join(KUBE_STATE, "admin.kubeconfig")]
OPERATOR = {"providers": {"kubernetes": {"kubeconfig": os.path.join(KUBE_STATE, "provider.kubeconfig"),
                                         "containerd": "/run/prevue-kube/containerd.sock"}}}


def kubectl(*args):
    out = subprocess.run(ADMIN + list(args), capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"bench_kubernetes: kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


def namespace_exists(name):
    return bool(subprocess.run(ADMIN + ["get", "namespace", name, "--ignore-not-found", "-o", "name"], capture_output=True,
                               text=True).stdout.strip())


def branch_at(repo, name, start):
    """A branch one empty commit ahead of `start`: the same tree, so the same images; its commit id."""
    git(repo, "checkout", "-q", "-b", name, start)
    git(repo, "commit", "-q", "--allow-empty", "-m", name)
    sha = subprocess.run(GIT + ["-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    git(repo, "checkout", "-q", "main")
    return sha


class ByHand:
    """The same overlay applied by hand with the images prevue built: a
    namespace, `kubectl apply -k`, `kubectl rollout status`, the page."""

    def __init__(self, scratch, repo, images):
        self.overlay = os.path.join(scratch, "by-hand-overlay")
        os.makedirs(self.overlay)
        # kustomize's own way to name the built images: an overlay on the repository's preview overlay.
        with open(os.path.join(self.overlay, "kustomization.yaml"), "w") as f:
            f.write("resources:\n  - " + os.path.relpath(os.path.join(repo, "k8s", "preview"), self.overlay) + "\nimages:\n")
            for name, built in images.items():
                repository, tag = built.rsplit(":", 1)
                f.write(f"  - name: {name}\n    newName: {repository}\n    newTag: \"{tag}\"\n")

    def up(self, namespace):
        started = time.monotonic()
        kubectl("create", "namespace", namespace)
        kubectl("apply", "--namespace", namespace, "-k", self.overlay)
        kubectl("rollout", "status", "--namespace", namespace, "deployment/api", "deployment/web", "--timeout", "300s")
        address = kubectl("get", "service", "web", "--namespace", namespace, "-o", "jsonpath={.spec.clusterIP}")
        until(lambda: urllib_status(f"http://{address}:8000/") == 200, "the page by hand", timeout=300, poll=0.05)
        return (time.monotonic() - started) * 1000

    def down(self, namespace):
        started = time.monotonic()
        kubectl("delete", "namespace", namespace, "--wait=true", "--timeout", "300s")
        return (time.monotonic() - started) * 1000


def urllib_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status
    except OSError:
        return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if subprocess.run(ADMIN + ["get", "--raw", "/readyz"], capture_output=True).returncode != 0:
        raise SystemExit("bench_kubernetes: no test node answers; run scripts/setup-kubernetes.sh and scripts/kube-node.sh start")
    scratch = tempfile.mkdtemp(prefix="prevue-bench-k8s-")
    daemon = None
    by_hand_namespaces = []
    try:
        repo = make_repo(os.path.join(scratch, "repo"), os.path.join("templates", "reference-app"))
        shutil.copytree(os.path.join(ROOT, "templates", "reference-k8s"), repo, dirs_exist_ok=True)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "kubernetes")
        no_grace(repo)
        daemon = WatchingServe(scratch, repo, extra=OPERATOR)
        announce, preview, environment = daemon.announce, daemon.preview, daemon.environment

        # Warm-up (not timed): prevue builds the images and loads them into the node.
        warm = branch_at(repo, "warm-up", "main")
        announce()
        preview("warm-up", warm)
        log = daemon.logs(environment("warm-up")["slug"])
        images = {}
        for line in log.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "image" and parts[2].startswith("prevue-build/"):
                images[parts[0].rstrip(":")] = parts[2]
        by_hand = ByHand(scratch, repo, images)
        by_hand_namespaces.append("bench-by-hand-warm")
        by_hand.up("bench-by-hand-warm")
        by_hand.down("bench-by-hand-warm")

        # A base without seed steps, for the second figure.
        git(repo, "checkout", "-q", "-b", "no-seed", "main")
        with open(os.path.join(repo, "prevue.json")) as f:
            manifest = json.load(f)
        manifest.pop("seed", None)
        with open(os.path.join(repo, "prevue.json"), "w") as f:
            json.dump(manifest, f)
        git(repo, "commit", "-q", "-am", "no seed steps")
        git(repo, "checkout", "-q", "main")

        new_prevue, unseeded_prevue, new_hand, gone_prevue, gone_hand = [], [], [], [], []
        for i in range(args.rounds):
            branch = f"feature-{i}"
            sha = branch_at(repo, branch, "main")
            started = time.monotonic()
            announce()
            env = preview(branch, sha)
            new_prevue.append((time.monotonic() - started) * 1000)
            ns = f"bench-by-hand-{i}"
            by_hand_namespaces.append(ns)
            new_hand.append(by_hand.up(ns))

            git(repo, "merge", "-q", "--no-ff", "-m", f"merge {branch}", branch)
            started = time.monotonic()
            announce()
            until(lambda: not namespace_exists(env["slug"]), f"namespace {env['slug']} gone", timeout=300, poll=0.05)
            gone_prevue.append((time.monotonic() - started) * 1000)
            gone_hand.append(by_hand.down(ns))

            unseeded = f"no-seed-{i}"
            sha = branch_at(repo, unseeded, "no-seed")
            started = time.monotonic()
            announce()
            preview(unseeded, sha)
            unseeded_prevue.append((time.monotonic() - started) * 1000)

        n, nh = statistics.median(new_prevue), statistics.median(new_hand)
        g, gh = statistics.median(gone_prevue), statistics.median(gone_hand)
        u = statistics.median(unseeded_prevue)
        print(f"kubernetes reference app on the test node, median of {args.rounds} rounds")
        print(f"  new PR: prevue {[round(x) for x in new_prevue]} ms, by hand {[round(x) for x in new_hand]} ms")
        print(f"  new PR without seed steps: prevue {[round(x) for x in unseeded_prevue]} ms")
        print(f"  teardown: prevue {[round(x) for x in gone_prevue]} ms, by hand {[round(x) for x in gone_hand]} ms")
        print(f"{'time to preview, new PR (built images)':44s} prevue {n:10.0f} ms   | {'kubectl apply + rollout status':30s} {nh:10.0f} ms   | ratio {n / nh:.2f}x (target < 1.1)")
        print(f"{'  the same without seed steps':44s} prevue {u:10.0f} ms   | {'kubectl apply + rollout status':30s} {nh:10.0f} ms   | ratio {u / nh:.2f}x")
        print(f"{'teardown, merge to namespace gone':44s} prevue {g:10.0f} ms   | {'kubectl delete namespace --wait':30s} {gh:10.0f} ms   | ratio {g / gh:.2f}x")
    finally:
        for ns in by_hand_namespaces:
            subprocess.run(ADMIN + ["delete", "namespace", ns, "--ignore-not-found", "--wait=false"], capture_output=True)
        clean_up(daemon, scratch)


if __name__ == "__main__":
    main()
