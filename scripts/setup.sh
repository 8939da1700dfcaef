#!/usr/bin/env bash
# Installs every Debian 12 package prevue's build, tests, benchmarks and demo need.
# Idempotent: packages already present are skipped.
set -euo pipefail
source "$(dirname "$0")/lib/apt.sh"

install_packages \
  build-essential cmake ninja-build pkg-config git ca-certificates curl openssl \
  libboost1.81-dev libboost-url1.81-dev \
  nlohmann-json3-dev libgit2-dev libspdlog-dev libfmt-dev libsqlite3-dev sqlite3 libssl-dev \
  libcli11-dev libsimdjson-dev libpq-dev libgtest-dev libgmock-dev libbenchmark-dev libldns-dev \
  clang-16 libclang-rt-16-dev llvm-16 \
  knot knot-dnsutils \
  libyaml-cpp-dev docker-registry \
  postgresql postgresql-client \
  python3 procps
