#!/usr/bin/env bash
# Installs what the benchmarks need beyond scripts/setup.sh: nginx (the
# peer the proxy is measured against), wrk (the load generator), and
# Compose v2. Neither server is started by the install; the benchmarks run
# their own on loopback.
set -euo pipefail
source "$(dirname "$0")/lib/apt.sh"
install_packages nginx-light wrk
# Compose v2 (bench_compose measures prevue and Compose by hand with it;
# Debian 12 packages only v1). A machine without Go keeps v1.
"$(dirname "$0")/setup-compose-v2.sh" || echo "setup-bench: Compose v2 not built; bench_compose uses v1" >&2
