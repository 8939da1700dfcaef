#!/usr/bin/env bash
# A single-node Kubernetes on this machine for the kubernetes provider's tests
# and benchmark, from the binaries scripts/setup-kubernetes.sh built:
#
#   scripts/kube-node.sh start   # etcd, API server, controllers, kubelet on a containerd of
#                                # its own, kube-proxy, CoreDNS; waits until the node is Ready
#   scripts/kube-node.sh stop    # stops them and removes every pod, mount, network and rule
#   scripts/kube-node.sh status
#
# Everything listens on loopback, or on the node's address $KUBE_NODE_IP (a
# /32 on lo that the pods reach through their bridge, never the machine's
# network). No image is pulled: the pause image is made locally and images
# are loaded into the node's containerd (`ctr -n k8s.io images import`).
# Each start is a fresh cluster; the certificates are kept.
#
# Files: $PREVUE_K8S_STATE (default /var/lib/prevue-kube): pki/, the
# kubeconfigs (admin.kubeconfig: cluster-admin; provider.kubeconfig: only
# the ClusterRole of docs/kubernetes-rbac.yaml), logs in log/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
source scripts/lib/kube-versions.sh

bin=${PREVUE_K8S_CACHE:-$HOME/.cache/prevue/kubernetes/$KUBE_VERSION}/bin
state=${PREVUE_K8S_STATE:-/var/lib/prevue-kube}
run=/run/prevue-kube
node_ip=${KUBE_NODE_IP:-10.245.0.1}
node_name=prevue-node
api_port=${KUBE_API_PORT:-16443}
etcd_port=${KUBE_ETCD_PORT:-12379}
registry=127.0.0.1:${KUBE_REGISTRY_PORT:-15000}  # a registry there (the tests start one) is pulled from over HTTP
pod_cidr=10.244.0.0/16
service_cidr=10.96.0.0/16
bridge=prevue-cni0
ctr_sock=$run/containerd.sock
admin_kubeconfig=$state/admin.kubeconfig

log() { echo "kube-node: $*" >&2; }
die() { log "$*"; exit 1; }

# ---- certificates ---------------------------------------------------------
make_pki() {
  local pki=$state/pki
  [[ -f $pki/done ]] && return
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=prevue-kube-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  # name  subject  subjectAltName (servers only)
  local certs=(
    "apiserver|/CN=kube-apiserver|IP:127.0.0.1,IP:$node_ip,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    "kubelet-serving|/CN=$node_name|IP:$node_ip,DNS:$node_name"
    "apiserver-kubelet-client|/O=system:masters/CN=kube-apiserver-kubelet-client|"
    "admin|/O=system:masters/CN=prevue-kube-admin|"
    "provider|/CN=prevue-provider|"
    "kubelet|/O=system:nodes/CN=system:node:$node_name|"
    "controller-manager|/CN=system:kube-controller-manager|"
    "scheduler|/CN=system:kube-scheduler|"
    "kube-proxy|/CN=system:kube-proxy|"
    "coredns|/CN=prevue-kube-coredns|"
  )
  local entry name subject san
  for entry in "${certs[@]}"; do
    IFS='|' read -r name subject san <<<"$entry"
    openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
    local ext=$pki/$name.ext
    if [[ -n $san ]]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' > "$ext"
    fi
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 3650 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr" "$ext"
  done
  touch "$pki/done"
}

# kubeconfig NAME: a kubeconfig for the client certificate NAME.
kubeconfig() {
  local name=$1 pki=$state/pki
  cat > "$state/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: prevue-kube
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $name
  user:
    client-certificate: $pki/$name.crt
    client-key: $pki/$name.key
contexts:
- name: prevue-kube
  context: {cluster: prevue-kube, user: $name}
current-context: prevue-kube
EOF
}

# ---- processes ------------------------------------------------------------
# spawn NAME CMD...: starts CMD in its own session, logs to log/NAME.log.
spawn() {
  local name=$1; shift
  setsid "$@" > "$state/log/$name.log" 2>&1 < /dev/null &
  echo $! > "$run/$name.pid"
}

running() { [[ -f $run/$1.pid ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# wait_for WHAT SECONDS CMD...: until CMD succeeds; on timeout, the logs say why.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out waiting for $what; the last lines of each log:"
      for f in "$state"/log/*.log; do echo "== $f"; tail -n 15 "$f"; done >&2
      exit 1
    fi
    sleep 0.2
  done
}

kubectl_admin() { kubectl --kubeconfig "$admin_kubeconfig" "$@"; }

start() {
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns pause; do
    [[ -x $bin/$b ]] || die "$bin/$b is missing: run scripts/setup-kubernetes.sh first"
  done
  if running kube-apiserver; then log "already running"; return; fi
  stop_quietly
  mkdir -p "$state"/{log,etcd,kubelet,cni/net.d,cni/ipam,containerd} "$run"
  make_pki
  for c in admin provider kubelet controller-manager scheduler kube-proxy coredns; do kubeconfig "$c"; done

  # The node's address, and what Docker's FORWARD policy (DROP) would stop.
  ip addr show dev lo | grep -q " $node_ip/32" || ip addr add "$node_ip/32" dev lo
  iptables -C FORWARD -s "$pod_cidr" -j ACCEPT 2>/dev/null || iptables -I FORWARD -s "$pod_cidr" -j ACCEPT
  iptables -C FORWARD -d "$pod_cidr" -j ACCEPT 2>/dev/null || iptables -I FORWARD -d "$pod_cidr" -j ACCEPT
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true

  cat > "$state/cni/net.d/10-prevue.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "prevue-pods", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$state/cni/ipam",
            "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  cat > "$state/containerd.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$run/containerd-state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$ctr_sock"
[ttrpc]
  address = "$run/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/$KUBE_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  # No process here may lower its OOM score (the kubelet asks -998 for sandboxes).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  # Registries on this machine's loopback speak plain HTTP (hosts.toml per registry).
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$state/registry-hosts"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$bin/cni"
    conf_dir = "$state/cni/net.d"
EOF
  mkdir -p "$state/registry-hosts/$registry"
  cat > "$state/registry-hosts/$registry/hosts.toml" <<EOF
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
EOF
  spawn containerd containerd --config "$state/containerd.toml"
  wait_for containerd 30 ctr -a "$ctr_sock" version
  docker image inspect "$KUBE_PAUSE_IMAGE" >/dev/null 2>&1 || bash scripts/setup-kubernetes.sh
  docker save "$KUBE_PAUSE_IMAGE" | ctr -a "$ctr_sock" -n k8s.io images import --no-unpack - >/dev/null

  spawn etcd "$bin/etcd" --name default --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((etcd_port + 1))" \
    --listen-metrics-urls "" --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  local pki=$state/pki
  spawn kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address "$node_ip" \
    --service-cluster-ip-range "$service_cidr" --allow-privileged=true \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority "$pki/ca.crt" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --profiling=false --endpoint-reconciler-type none --kubelet-preferred-address-types InternalIP
  wait_for "the API server" 90 kubectl_admin get --raw /readyz

  spawn kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --controllers '*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller' \
    --concurrent-deployment-syncs 10 --node-monitor-grace-period 40s \
    --enable-hostpath-provisioner
  spawn kube-scheduler "$bin/kube-scheduler" --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" \
    --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false

  kubectl_admin apply --server-side -f "$repo/docs/kubernetes-rbac.yaml" >/dev/null
  kubectl_admin apply --server-side -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prevue-provider}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prevue-provider}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: prevue-provider}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: prevue-kube-coredns}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prevue-kube-coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prevue-kube-coredns}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: prevue-kube-coredns}]
---
# Volumes for PersistentVolumeClaims: directories under /tmp/hostpath_pv,
# made and removed by the controller manager (one node: nothing to share).
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
EOF

  : > "$state/resolv.conf"
  cat > "$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
containerRuntimeEndpoint: unix://$ctr_sock
clusterDNS: [$node_ip]
clusterDomain: cluster.local
resolvConf: $state/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 0s
podLogsDir: $state/pod-logs
EOF
  spawn kubelet "$bin/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
    --root-dir "$state/kubelet" --hostname-override "$node_name" --node-ip "$node_ip" \
    --cert-dir "$state/kubelet/pki" --v 1

  cat > "$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $pod_cidr
hostnameOverride: $node_name
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$node_ip/32]
oomScoreAdj: 0
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {syncPeriod: 30s, minSyncPeriod: 0s}
EOF
  spawn kube-proxy "$bin/kube-proxy" --config "$state/kube-proxy.yaml"

  cat > "$state/Corefile" <<EOF
.:53 {
  bind $node_ip
  errors
  health 127.0.0.1:18181
  ready 127.0.0.1:18182
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $state/coredns.kubeconfig prevue-kube
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  cache 30
  loadbalance
}
EOF
  spawn coredns "$bin/coredns" -conf "$state/Corefile"

  wait_for "the node to be Ready" 120 kubectl_admin wait --for=condition=Ready "node/$node_name" --timeout=1s
  wait_for "the default service account" 60 kubectl_admin -n default get serviceaccount default
  wait_for "cluster DNS" 30 curl -fsS http://127.0.0.1:18182/ready
  log "ready: KUBECONFIG=$admin_kubeconfig (cluster-admin), $state/provider.kubeconfig (prevue's ClusterRole)"
}

# Removes what the node's pods left on the machine: containers, mounts,
# network namespaces, the bridge, kube-proxy's rules.
stop_quietly() {
  local c
  for c in coredns kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if running "$c"; then kill "$(cat "$run/$c.pid")" 2>/dev/null || true; fi
  done
  for c in coredns kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if [[ -f $run/$c.pid ]]; then
      local pid; pid=$(cat "$run/$c.pid")
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$run/$c.pid"
    fi
  done
  if running containerd; then
    local task
    for task in $(ctr -a "$ctr_sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$ctr_sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
    done
    for _ in $(seq 50); do
      [[ -z $(ctr -a "$ctr_sock" -n k8s.io tasks ls -q 2>/dev/null | head -c1) ]] && break
      ctr -a "$ctr_sock" -n k8s.io tasks ls 2>/dev/null | grep -q RUNNING || break
      sleep 0.1
    done
    kill "$(cat "$run/containerd.pid")" 2>/dev/null || true
    for _ in $(seq 50); do running containerd || break; sleep 0.1; done
  fi
  rm -f "$run/containerd.pid"
  # Shims outlive containerd: each serves one pod's containers.
  pkill -9 -f "containerd-shim-runc-v2 -namespace k8s.io -id [^ ]+ -address $ctr_sock" 2>/dev/null || true
  if [[ -x $bin/kube-proxy ]]; then "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  # The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY): the jumps to them, then them.
  local table rule chain
  for table in filter nat mangle; do
    while read -r rule; do
      eval "iptables -t $table ${rule/#-A/-D}" 2>/dev/null || true  # iptables' own output, quoting included
    done < <(iptables -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' || true)
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do iptables -t "$table" -F "$chain" 2>/dev/null || true; done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do iptables -t "$table" -X "$chain" 2>/dev/null || true; done
  done
  local target
  for target in $(findmnt -rn -o TARGET | grep -E "^($state|$run|/run/netns/cni-)" | sort -r); do
    umount -l "$target" 2>/dev/null || true
  done
  for target in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do ip netns delete "$target" 2>/dev/null || true; done
  ip link delete "$bridge" 2>/dev/null || true
  iptables -D FORWARD -s "$pod_cidr" -j ACCEPT 2>/dev/null || true
  iptables -D FORWARD -d "$pod_cidr" -j ACCEPT 2>/dev/null || true
  ip addr del "$node_ip/32" dev lo 2>/dev/null || true
  rm -rf /tmp/hostpath_pv
  if [[ -d $state ]]; then
    find "$state" -mindepth 1 -maxdepth 1 ! -name pki ! -name log -exec rm -rf {} + 2>/dev/null || true
  fi
  rm -rf "$run"
}

stop() {
  stop_quietly
  log "stopped"
}

status() {
  local c ok=1
  for c in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns; do
    if running "$c"; then echo "$c: running"; else echo "$c: stopped"; ok=0; fi
  done
  ((ok)) && kubectl_admin get nodes
  ((ok))
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
