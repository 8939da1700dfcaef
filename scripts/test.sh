#!/usr/bin/env bash
# The test command: installs what is missing, builds, starts the test
# Kubernetes node (scripts/kube-node.sh), runs every test twice:
#   1. the Release build (build/): unit and end-to-end tests, crash trials;
#   2. an ASan + UBSan build (build-asan/, no benchmarks, compiled while the
#      first runs), with libFuzzer's instrumentation: the same unit and
#      end-to-end tests but the `release-only` suites (Compose, Kubernetes,
#      PostgreSQL, Terraform, Chromium, DNS, git hosts, providers: their
#      time is those programs', and twice would not fit CI's 45 minutes),
#      any sanitizer report failing them (a memory error or undefined behaviour aborts, a leak
#      fails at exit), plus each fuzzer for PREVUE_FUZZ_SECONDS (20) from its
#      seed corpus.
# PREVUE_TEST_SANITIZED=0 skips the second build (a quicker local run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-images.sh  # base images for the container tests (skipped without a Docker Engine)
scripts/setup-terraform.sh  # terraform or tofu for the terraform provider's tests (OpenTofu built once where neither is present)
scripts/setup-browser.sh  # Chromium and chromedriver for the dashboard's browser tests
# The single-node Kubernetes of the kubernetes provider's tests: built once
# (cached), started here on loopback, stopped when the tests end.
kube_node=0
if docker info >/dev/null 2>&1; then
  scripts/setup-kubernetes.sh
  kube_node=1
fi
scripts/build.sh
sanitized=$([[ ${PREVUE_TEST_SANITIZED:-1} != 0 ]] && echo 1 || echo 0)
cleanup() {
  if [[ -n ${sanitized_build:-} ]]; then kill -- "-$sanitized_build" 2>/dev/null || true; fi
  if ((kube_node)); then scripts/kube-node.sh stop; fi
}
trap cleanup EXIT
# The sanitized build compiles while the Release tests run, at the lowest
# priority: it takes the CPU those leave idle (much of it, while they wait
# on Docker and Kubernetes) and slows none of them down.
if ((sanitized)); then
  set -m  # its own process group, killed whole if the tests fail
  PREVUE_BUILD_DIR=build-asan PREVUE_BUILD_TYPE=Sanitized PREVUE_SANITIZE=address,undefined PREVUE_FUZZ=ON PREVUE_BENCH=OFF \
    nice -n 19 scripts/build.sh >build/sanitized-build.log 2>&1 &
  sanitized_build=$!
  set +m
fi
if ((kube_node)); then scripts/kube-node.sh start; fi
ctest --test-dir build --output-on-failure -j 2 --timeout 900
if ((kube_node)); then  # the sanitized stage does not use it
  scripts/kube-node.sh stop
  kube_node=0
fi

if ((sanitized)); then
  echo "== the sanitized build (build/sanitized-build.log)"
  status=0
  wait "$sanitized_build" || status=$?
  sanitized_build=
  tail -n 40 build/sanitized-build.log
  if ((status != 0)); then echo "the sanitized build failed (exit $status)" >&2; exit "$status"; fi
  symbolizer=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
  export ASAN_SYMBOLIZER_PATH=${symbolizer}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  ctest --test-dir build-asan --output-on-failure -j 2 --timeout 900 --label-exclude release-only
fi
