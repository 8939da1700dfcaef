#!/usr/bin/env bash
# Installs what the benchmarks need beyond scripts/setup.sh: nginx (the
# peer the proxy is measured against) and wrk (the load generator). Neither
# is started by the install; the benchmarks run their own on loopback.
set -euo pipefail
source "$(dirname "$0")/lib/apt.sh"
install_packages nginx-light wrk
