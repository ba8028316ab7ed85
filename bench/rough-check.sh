#!/usr/bin/env bash
# A first rough throughput check (issue 2): wrk replays distinct, botocore-signed requests
# against a durable meterd (SQLite, synchronous=FULL) on loopback, and the ledger is counted
# afterwards, so only records that were really stored are reported. Throttling (D14) is off:
# one account's 10 requests/s is not what is measured. The full harness is meterd-bench (#7).
#   bench/rough-check.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
command -v wrk >/dev/null || { echo "rough-check: needs wrk (apt-get install wrk)"; exit 1; }
port=18181
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 bench/presign.py --op meter --count 150000 --out "$work/meter.req" --host 127.0.0.1:$port
python3 bench/presign.py --op batch --count 30000 --out "$work/batch.req" --host 127.0.0.1:$port
for op in meter batch; do
  rm -rf "$work/data" && mkdir -p "$work/data"
  build/bin/meterd serve --listen 127.0.0.1:$port --data "$work/data" \
    --catalog tests/fixtures/catalog.test.json --throttle off --admin-listen off >"$work/meterd.log" 2>&1 &
  pid=$!
  sleep 1
  echo "== $op: wrk -t1 -c32 -d${seconds}s"
  REQUESTS="$work/$op.req" wrk -t1 -c32 -d"${seconds}s" -s bench/replay.lua "http://127.0.0.1:$port/" |
    grep -E "Requests/sec|non-200|p50|requests in"
  echo "ledger rows: $(sqlite3 "$work/data/meterd.db" 'select count(*) from usage_records')"
  echo "meterd RSS (KiB): $(ps -o rss= -p $pid)"
  kill $pid
  wait $pid 2>/dev/null || true
done
