// `meterd dump`: the embedded RocksDB ledger (`<data_dir>/ledger/`, ledger_codec.h) written out as
// a new SQLite file in exactly the SQLite layout (sqlite_schema.h), so that people, scripts and
// the test harness can read the store with SQL. It reads the ledger as a RocksDB secondary (a
// read-only follower with a private scratch directory), so it works while a meterd is running
// on the data dir, and the file holds one consistent state (where the secondary caught up).
#pragma once

#include <string>

#include "common/status.h"

namespace meterd::store {

// Writes every row of `<data_dir>/ledger` into a NEW SQLite file at `out_path` (refused when
// `out_path` exists; written as `<out_path>.partial` and renamed when complete): usage_records
// (with each row's seq), client_tokens, metered_runs (stopped_ms NULL while open),
// registration_tokens, catalog_versions, workload_entitlements, usage_rollups (the totals),
// audit_events and schema_version (kSqliteSchemaVersion).
// With `verify`: also checks every table file's checksums (VerifyChecksum) and the ledger's own
// bookkeeping (kMetaRows and the dedup and by-account entries against the ledger rows, every
// seq below kMetaNextSeq), and sets `*report` to "ok" or to the problems found ("; "-separated).
// Without `verify`, `*report` is left empty. A row that does not decode fails the dump
// (kCorruption). `report` may be null.
Status DumpLedgerToSqlite(const std::string& data_dir, const std::string& out_path, bool verify,
                          std::string* report);

}  // namespace meterd::store
