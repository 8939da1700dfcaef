#!/usr/bin/env bash
# Configures and builds prevue (2 jobs: CI machines have 2 cores).
#   scripts/build.sh                 everything: prevue, providers, tests, benchmarks
#   scripts/build.sh TARGET...       only those targets (the demo builds prevue and its providers)
# PREVUE_BUILD_DIR (default build), PREVUE_BUILD_TYPE (default RelWithDebInfo)
# PREVUE_SANITIZE (address,undefined: a sanitized build) and PREVUE_FUZZ (ON:
# with the libFuzzer targets, clang and sanitizers only) choose the build;
# PREVUE_BENCH=OFF leaves the benchmarks out.
# The compiler is clang 16: GCC 12.2 miscompiles coroutines (see
# cmake/CompilerChecks.cmake, which refuses such a compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
export CC=${CC:-clang-16} CXX=${CXX:-clang++-16}
build=${PREVUE_BUILD_DIR:-build}
# A directory configured with another compiler cannot be switched in place.
if [[ -f $build/CMakeCache.txt ]] && ! grep -qx "CMAKE_CXX_COMPILER:[A-Z]*=$(command -v "$CXX")" "$build/CMakeCache.txt"; then
  echo "build: $build was configured with another compiler; configuring it afresh for $CXX"
  rm -rf "$build"
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${PREVUE_BUILD_TYPE:-RelWithDebInfo}" \
  -DPREVUE_SANITIZE="${PREVUE_SANITIZE:-}" -DPREVUE_FUZZ="${PREVUE_FUZZ:-OFF}" \
  -DPREVUE_BENCH="${PREVUE_BENCH:-ON}" >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$build" -j "${PREVUE_JOBS:-2}" "${targets[@]}"
