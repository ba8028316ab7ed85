#!/usr/bin/env bash
# Runs every libFuzzer target for SECONDS each (default 60) on its checked-in corpus, and prints
# executions per target. `make fuzz-smoke` runs it briefly; run it longer by hand:
#   scripts/fuzz.sh build-fuzz 600
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
cd "$(dirname "$0")/.."
status=0
for bin in "$build"/bin/*_fuzz; do
  name=$(basename "$bin" _fuzz)
  corpus=fuzz/corpus/$name
  [ -d "$corpus" ] || { echo "fuzz: no corpus for $name"; exit 1; }
  work=$(mktemp -d)
  if "$bin" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 "$work" "$corpus" \
      >"$work.log" 2>&1; then
    execs=$(grep -m1 "stat::number_of_executed_units" "$work.log" | awk '{print $2}')
    echo "fuzz: $name ok, ${execs:-?} executions in ${seconds}s"
  else
    echo "fuzz: $name FAILED"; tail -40 "$work.log"; status=1
  fi
  rm -rf "$work" "$work.log"
done
exit $status
