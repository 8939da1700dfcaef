#!/usr/bin/env bash
# run_fuzzer.sh FUZZER SECONDS WORKDIR: runs one libFuzzer target for that
# long from its seeds (made from the project's test data) and the corpus it
# grew before (kept in WORKDIR/corpus/NAME); exits non-zero on a crash, a
# leak, a timeout or an out-of-memory, leaving the reproducer in WORKDIR.
set -euo pipefail
fuzzer=$1 seconds=$2 workdir=$3
name=$(basename "$fuzzer")
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$workdir/seeds" "$workdir/corpus/$name" "$workdir/crashes"
python3 "$here/seeds.py" "$workdir/seeds"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$workdir/crashes/$name-" "$workdir/corpus/$name" "$workdir/seeds/$name"
