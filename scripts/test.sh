#!/usr/bin/env bash
# The test command: installs what is missing, builds, starts the test
# Kubernetes node (scripts/kube-node.sh), runs every test twice:
#   1. the Release build (build/): unit and end-to-end tests, crash trials;
#   2. an ASan + UBSan build (build-asan/), with libFuzzer's instrumentation:
#      the same unit and end-to-end tests (any sanitizer report fails them:
#      a memory error or undefined behaviour aborts, a leak fails at exit),
#      plus each fuzzer for PREVUE_FUZZ_SECONDS (20) from its seed corpus.
# PREVUE_TEST_SANITIZED=0 skips the second build (a quicker local run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-images.sh  # base images for the container tests (skipped without a Docker Engine)
scripts/setup-terraform.sh  # terraform or tofu for the terraform provider's tests (OpenTofu built once where neither is present)
# The single-node Kubernetes of the kubernetes provider's tests: built once
# (cached), started here on loopback, stopped when the tests end.
kube_node=0
if docker info >/dev/null 2>&1; then
  scripts/setup-kubernetes.sh
  kube_node=1
fi
scripts/build.sh
if ((kube_node)); then
  trap 'scripts/kube-node.sh stop' EXIT
  scripts/kube-node.sh start
fi
ctest --test-dir build --output-on-failure -j 2 --timeout 900

if [[ ${PREVUE_TEST_SANITIZED:-1} != 0 ]]; then
  PREVUE_BUILD_DIR=build-asan PREVUE_SANITIZE=address,undefined PREVUE_FUZZ=ON scripts/build.sh
  symbolizer=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
  export ASAN_SYMBOLIZER_PATH=${symbolizer}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  ctest --test-dir build-asan --output-on-failure -j 2 --timeout 900
fi
