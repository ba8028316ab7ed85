// The SQLite layout (`<data_dir>/meterd.db`): the DDL of every table, written down once. The SQLite
// backend (sqlite_store.cc) creates and upgrades it; the migration to the embedded RocksDB layout
// (sqlite_migration.cc) reads it; `meterd dump` (ledger_dump.cc) writes a new file in exactly
// this layout from a RocksDB ledger, so tools and tests that read SQL keep working.
#pragma once

namespace meterd::store {

// 1: the ledger and the control plane. 2: usage rollups and the ledger's query indexes
// (issue 5, docs/REPORTS.md); an upgrade from 1 backfills the rollups from the ledger once.
inline constexpr int kSqliteSchemaVersion = 2;

// The ledger is append-only: triggers refuse UPDATE and DELETE, so no code path (ours or a
// hand-run query) can change what was acknowledged.
inline constexpr const char* kSqliteSchema =
    R"SQL(
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS usage_records (
  seq INTEGER PRIMARY KEY,
  record_id TEXT NOT NULL UNIQUE,
  dedup_key TEXT NOT NULL UNIQUE,
  source TEXT NOT NULL,
  region TEXT NOT NULL,
  product_code TEXT NOT NULL,
  seller_account TEXT NOT NULL,
  customer_identifier TEXT NOT NULL,
  customer_account TEXT NOT NULL,
  license_arn TEXT NOT NULL,
  workload_id TEXT NOT NULL,
  dimension TEXT NOT NULL,
  usage_hour_ms INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  allocations TEXT NOT NULL,
  request_id TEXT NOT NULL,
  received_ms INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS usage_records_no_update BEFORE UPDATE ON usage_records
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS usage_records_no_delete BEFORE DELETE ON usage_records
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE IF NOT EXISTS client_tokens (
  caller TEXT NOT NULL,
  token TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  record_id TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (caller, token)
);
CREATE TABLE IF NOT EXISTS metered_runs (
  workload_id TEXT NOT NULL,
  product_code TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  stopped_ms INTEGER,
  PRIMARY KEY (workload_id, product_code)
);
CREATE TABLE IF NOT EXISTS registration_tokens (
  token TEXT NOT NULL PRIMARY KEY,
  seller_account TEXT NOT NULL,
  product_code TEXT NOT NULL,
  customer_account TEXT NOT NULL,
  license_arn TEXT NOT NULL,
  issued_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS catalog_versions (
  version INTEGER PRIMARY KEY,
  document TEXT NOT NULL,
  changed_ms INTEGER NOT NULL,
  change TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workload_entitlements (
  workload_id TEXT NOT NULL,
  product_code TEXT NOT NULL,
  first_call_ms INTEGER NOT NULL,
  PRIMARY KEY (workload_id, product_code)
);
)SQL"
    // --- Usage reports (schema 2): rollups kept at write time, and the indexes of ledger queries
    // (keyset order (timestamp_ms, seq); filters by buyer account). Every index costs ingest
    // (docs/REPORTS.md):
    // a product filter walks the time index instead (a seller has few products).
    R"SQL(
CREATE TABLE IF NOT EXISTS usage_rollups (
  granularity INTEGER NOT NULL,
  period_ms INTEGER NOT NULL,
  product_code TEXT NOT NULL,
  customer_account TEXT NOT NULL,
  dimension TEXT NOT NULL,
  unit TEXT NOT NULL,
  tag_key TEXT NOT NULL,
  tag_value TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  records INTEGER NOT NULL,
  PRIMARY KEY (granularity, period_ms, product_code, customer_account, dimension, unit, tag_key,
               tag_value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_records_by_time ON usage_records (timestamp_ms);
CREATE INDEX IF NOT EXISTS usage_records_by_account ON usage_records (customer_account,
                                                                      timestamp_ms);
)SQL";

// The audit trail (D17): events with the filterable facts in columns, indexes that serve the
// lookup filters newest first. Standard SQL (PostgreSQL accepts it too). Created on every start
// (IF NOT EXISTS), so data directories of earlier versions gain it.
inline constexpr const char* kSqliteAuditSchema = R"SQL(
CREATE TABLE IF NOT EXISTS audit_events (
  event_id TEXT NOT NULL PRIMARY KEY,
  event_time_ms BIGINT NOT NULL,
  event_source TEXT NOT NULL,
  event_name TEXT NOT NULL,
  account_id TEXT NOT NULL,
  access_key_id TEXT NOT NULL,
  error_code TEXT NOT NULL,
  event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (event_time_ms, event_id);
CREATE INDEX IF NOT EXISTS audit_events_by_name
  ON audit_events (event_name, event_time_ms, event_id);
CREATE INDEX IF NOT EXISTS audit_events_by_account
  ON audit_events (account_id, event_time_ms, event_id);
CREATE INDEX IF NOT EXISTS audit_events_by_access_key
  ON audit_events (access_key_id, event_time_ms, event_id);
CREATE INDEX IF NOT EXISTS audit_events_by_error
  ON audit_events (error_code, event_time_ms, event_id);
)SQL";
// Adds a transaction's rollup deltas: one statement per distinct key (portable upsert: SQLite
// >= 3.24 and PostgreSQL).
inline constexpr const char* kSqliteUpsertRollup = R"SQL(
INSERT INTO usage_rollups (granularity, period_ms, product_code, customer_account, dimension,
  unit, tag_key, tag_value, quantity, records)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (granularity, period_ms, product_code, customer_account, dimension, unit, tag_key,
  tag_value)
DO UPDATE SET quantity = usage_rollups.quantity + excluded.quantity,
  records = usage_rollups.records + excluded.records)SQL";

}  // namespace meterd::store
