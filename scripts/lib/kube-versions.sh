# The versions of the test node's parts (scripts/setup-kubernetes.sh, kube-node.sh).
# Kubernetes 1.34: the last minor whose kubelet starts on cgroup v1 by default
# (these machines have no cgroup v2), and one that Debian 12's containerd 1.6 serves.
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.8
COREDNS_VERSION=v1.14.3
CNI_PLUGINS_VERSION=v1.10.0
KUBE_PAUSE_IMAGE=prevue/pause:3.10
