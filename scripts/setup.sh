#!/usr/bin/env bash
# Installs every Debian 12 package prevue's build, tests, benchmarks and demo need.
# Idempotent: packages already present are skipped by apt-get itself.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libboost1.81-dev libboost-url1.81-dev
  nlohmann-json3-dev libgit2-dev libspdlog-dev libfmt-dev libsqlite3-dev sqlite3 libssl-dev
  libcli11-dev libsimdjson-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 procps
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
