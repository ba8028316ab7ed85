#!/usr/bin/env bash
# The crash-durability kill test, full form (issue "Reliability and security", item 1; D16).
#
# Clients send known BatchMeterUsage batches (1..25 records, all dedup keys distinct) and
# AgentCore MeterUsage calls (unique ClientTokens), resending every unit whose outcome is unknown,
# while meterd (throttle off) is SIGKILLed at seeded random moments and restarted on the same
# store. At the end: every acknowledged record is in the ledger exactly once with its acknowledged
# MeteringRecordId, nothing unsent is there, every retry got the idempotent answer, and the store's
# integrity check says ok (also checked after every kill): the embedded store (the default):
# `meterd dump --verify` (RocksDB checksums, the ledger's counters and index entries against its
# rows); every answered call's audit event is there too; PostgreSQL (--backend postgresql: a throwaway
# PostgreSQL server that keeps running while meterd is killed, tests/lib/pg_server.py): amcheck.
# Prints one summary line and exits non-zero on any violation (the data dir is then kept):
#   kills=100 units=... records_acknowledged=... lost=0 duplicated=0 unexpected=0 retries=...
#   integrity=ok seed=... unknown_outcomes=... idempotent_hits=... replays=... rows=... ...
#
# Usage: scripts/kill-test.sh [--backend embedded|postgresql] [--kills N] [--clients C] [--seed S] [--min-delay SEC]
#                             [--max-delay SEC] [--tail-units N] [--replay-fraction F]
#                             [--batch-fraction F] [--max-units N] [--deadline SEC]
#                             [--no-check-each-kill] [--data-dir DIR] [--keep-data]
#                             [--report FILE]
#   scripts/kill-test.sh                          # 100 kills, 8 clients (the defaults here)
#   scripts/kill-test.sh --kills 50
#   scripts/kill-test.sh --backend postgresql     # the same against PostgreSQL
#   scripts/kill-test.sh --seed 1234 --kills 20   # replay a run's kill moments and work
# METERD_BIN selects the binary (default build/bin/meterd). `make test` runs the bounded smoke form,
# tests/e2e/test_kill_durability.py (20 kills, 4 clients), on both backends.
set -euo pipefail
cd "$(dirname "$0")/.."
export METERD_BIN=${METERD_BIN:-build/bin/meterd}
[ -x "$METERD_BIN" ] || { echo "kill-test: $METERD_BIN is not built (run make build)" >&2; exit 2; }
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) export METERD_STORE_BACKEND="${2:?--backend needs embedded or postgresql}"; shift 2 ;;
    --backend=*) export METERD_STORE_BACKEND="${1#--backend=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
has() { local a; for a in "${args[@]}"; do [[ "$a" == "$1" || "$a" == "$1="* ]] && return 0; done; return 1; }
has --kills || args+=(--kills 100)
has --clients || args+=(--clients 8)
exec python3 tests/reliability/kill_test.py "${args[@]}"
