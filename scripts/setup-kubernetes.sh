#!/usr/bin/env bash
# Builds the single-node Kubernetes that the kubernetes provider's tests and
# benchmark run on, from the Go module proxy (no release download, no image
# pull): etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy, CoreDNS and the CNI plugins, plus a pause image made
# from a static C program. Debian's containerd is the node's runtime (its CRI
# plugin; a containerd of the node's own, beside Docker's).
#
# The binaries are cached in $PREVUE_K8S_CACHE (default
# ~/.cache/prevue/kubernetes/<version>): about 20 minutes on 2 cores once,
# nothing after. scripts/kube-node.sh starts and stops the node.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
source scripts/lib/kube-versions.sh

install_packages containerd runc iptables conntrack openssl gcc libc6-dev

cache=${PREVUE_K8S_CACHE:-$HOME/.cache/prevue/kubernetes/$KUBE_VERSION}
bin=$cache/bin
wanted=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns
        cni/bridge cni/host-local cni/loopback cni/portmap pause)
missing=0
for b in "${wanted[@]}"; do [[ -x $bin/$b ]] || missing=1; done

if ((missing)); then
  export PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null || { echo "setup-kubernetes: no Go toolchain (/usr/local/go or on the PATH)" >&2; exit 1; }
  export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=-mod=mod CGO_ENABLED=0
  work=$(mktemp -d /tmp/prevue-kube-build.XXXXXX)
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  mkdir -p "$bin/cni"

  # Kubernetes: its go.mod points the k8s.io/* staging modules at its own
  # tree, which the module zip leaves out; they are published as v0.<minor>.
  if [[ ! -x $bin/kube-proxy ]]; then
    echo "setup-kubernetes: building Kubernetes $KUBE_VERSION (the longest part)"
    mkdir "$work/k8s"
    staging=v0.${KUBE_VERSION#v1.}
    {
      echo "module prevue.local/kubebuild"
      echo "go 1.24.0"
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo "replace ("
      go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
      curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$KUBE_VERSION.mod" |
        sed -n "s|^\t\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*|\t\1 => \1 $staging|p"
      echo ")"
    } > "$work/k8s/go.mod"
    major=${KUBE_VERSION#v}; minor=${major#*.}; minor=${minor%%.*}; major=${major%%.*}
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION
      -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor
      -X k8s.io/component-base/version.gitTreeState=clean
      -X k8s.io/component-base/version/verflag.programName=kubernetes"
    (cd "$work/k8s" &&
      for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
        go build -trimpath -ldflags "$ldflags" -o "$bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
        mv "$bin/$c.tmp" "$bin/$c"
      done)
  fi

  if [[ ! -x $bin/etcd ]]; then
    echo "setup-kubernetes: building etcd $ETCD_VERSION"
    mkdir "$work/etcd"
    cat > "$work/etcd/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
    printf 'module prevue.local/etcdbuild\ngo 1.24.0\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$work/etcd/go.mod"
    (cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" . && mv "$bin/etcd.tmp" "$bin/etcd")
  fi

  if [[ ! -x $bin/coredns ]]; then
    echo "setup-kubernetes: building CoreDNS $COREDNS_VERSION"
    src=$(go mod download -json "github.com/coredns/coredns@$COREDNS_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    cp -r "$src" "$work/coredns" && chmod -R u+w "$work/coredns"
    # Only the plugins a cluster's DNS needs: fewer dependencies, a quicker build.
    printf '%s\n' metadata:metadata bind:bind errors:errors log:log health:health ready:ready \
      kubernetes:kubernetes cache:cache loop:loop reload:reload loadbalance:loadbalance \
      forward:forward > "$work/coredns/plugin.cfg"
    (cd "$work/coredns" && go generate coredns.go >/dev/null && go mod tidy >/dev/null 2>&1 || true)
    (cd "$work/coredns" && go build -trimpath -ldflags "-s -w" -o "$bin/coredns.tmp" . && mv "$bin/coredns.tmp" "$bin/coredns")
  fi

  if [[ ! -x $bin/cni/portmap ]]; then
    echo "setup-kubernetes: building the CNI plugins $CNI_PLUGINS_VERSION"
    src=$(go mod download -json "github.com/containernetworking/plugins@$CNI_PLUGINS_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    cp -r "$src" "$work/cni" && chmod -R u+w "$work/cni"
    (cd "$work/cni" &&
      for p in main/bridge ipam/host-local main/loopback meta/portmap; do
        go build -trimpath -ldflags "-s -w" -o "$bin/cni/${p#*/}" "./plugins/$p"
      done)
  fi

  if [[ ! -x $bin/pause ]]; then
    gcc -Os -static -o "$bin/pause.tmp" scripts/lib/pause.c && mv "$bin/pause.tmp" "$bin/pause"
  fi
fi

# The pause image, from the static binary alone (no base image needed).
if docker info >/dev/null 2>&1 && ! docker image inspect "$KUBE_PAUSE_IMAGE" >/dev/null 2>&1; then
  tar -C "$bin" -c --transform 's|^pause$|pause|' pause |
    docker import --change 'ENTRYPOINT ["/pause"]' - "$KUBE_PAUSE_IMAGE" >/dev/null
fi
echo "setup-kubernetes: $KUBE_VERSION ready in $bin"
