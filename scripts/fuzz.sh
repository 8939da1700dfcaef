#!/usr/bin/env bash
# Runs prevue's fuzzers for as long as asked:
#   scripts/fuzz.sh [SECONDS [TARGET...]]     (default 600 s each, every target)
# Builds the sanitized fuzzers (build-asan, as scripts/test.sh does), runs each
# target from its seeds and the corpus earlier runs grew (build-asan/fuzz/corpus),
# and prints a line per target: executions, coverage, crashes. A crash leaves
# its input in build-asan/fuzz/crashes/ and makes the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(fuzz_webhook fuzz_manifest fuzz_render fuzz_config fuzz_protocol fuzz_duration_slug)
scripts/setup.sh
PREVUE_BUILD_DIR=build-asan PREVUE_SANITIZE=address,undefined PREVUE_FUZZ=ON scripts/build.sh "${targets[@]}"
workdir=build-asan/fuzz
mkdir -p "$workdir/logs"
failed=0
printf '%-20s %10s %12s %8s %8s %s\n' TARGET SECONDS EXECUTIONS EXEC/S COVERAGE RESULT
for target in "${targets[@]}"; do
  log="$workdir/logs/$target.log"
  if tests/fuzz/run_fuzzer.sh "build-asan/tests/fuzz/$target" "$seconds" "$workdir" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log)"
    failed=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-20s %10s %12s %8s %8s %s\n' "$target" "$seconds" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$result"
done
exit "$failed"
