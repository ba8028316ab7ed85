// UsageReader: the read side of the ledger for reports (docs/REPORTS.md). Queries of accepted
// records in keyset order, and the rollups kept at write time (store/rollup.h), so that no
// report scans the ledger. Implementations: SQLite (sqlite_usage_reader.cc: its own read-only
// connections, so reads never wait for the writer nor hold it up; WAL), PostgreSQL
// (postgres_usage_reader.cc: the store's pool of read connections) and memory (the memory
// store's committed state). store::OpenStoreWithReader gives the one that matches the store.
//
// Thread-safe: every method may be called from any thread, concurrently with the writer. A reader
// sees committed transactions only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/rollup.h"
#include "store/store.h"

namespace meterd::store {
class PgReadPool;  // store/postgres_connection.h
}

namespace meterd::store {

// Ledger filters; empty strings and absent times do not filter. Times are the records' usage
// timestamps: from inclusive, to exclusive.
struct UsageFilter {
  std::string product_code;
  std::string customer_identifier;
  std::string customer_account;
  std::string license_arn;
  std::string workload_id;
  std::string dimension;
  std::optional<int64_t> from_ms;
  std::optional<int64_t> to_ms;

  bool Matches(const store::UsageRow& row) const;
};

// A position in the ledger's query order: (timestamp_ms, seq), seq being the insertion order.
struct LedgerPosition {
  int64_t timestamp_ms = 0;
  int64_t seq = 0;
  bool operator<(const LedgerPosition& o) const {
    return timestamp_ms != o.timestamp_ms ? timestamp_ms < o.timestamp_ms : seq < o.seq;
  }
};

struct LedgerRecord {
  LedgerPosition position;
  store::UsageRow row;
};

struct UsagePage {
  std::vector<LedgerRecord> records;
  bool more = false;  // another record matches after the last one
};

struct RollupQuery {
  store::Granularity granularity = store::Granularity::kDay;
  int64_t from_ms = 0;  // period starts in [from_ms, to_ms)
  int64_t to_ms = 0;
  std::string product_code;  // "" = any
  std::string customer_account;
  std::string dimension;
  std::string tag_key;  // "" = the records' whole quantities; else the totals of this tag key
};

struct RollupRow {
  store::RollupKey key;
  int64_t quantity = 0;
  int64_t records = 0;
};

class UsageReader {
 public:
  virtual ~UsageReader() = default;
  // Up to `limit` records matching `filter` after `after` (absent: from the start), in
  // (timestamp_ms, seq) order.
  virtual Result<UsagePage> ListUsage(const UsageFilter& filter,
                                      const std::optional<LedgerPosition>& after, size_t limit) = 0;
  // The rollup rows of the query, ordered by their key.
  virtual Result<std::vector<RollupRow>> ReadRollups(const RollupQuery& query) = 0;
};

// Read-only connections to `<data_dir>/meterd.db` (which must exist, at the current schema).
Result<std::unique_ptr<UsageReader>> OpenSqliteUsageReader(const std::string& data_dir);

// Queries on the PostgreSQL store's read pool (store::PostgresBackendReadPool), of a database
// the store has brought to the current schema.
std::unique_ptr<UsageReader> NewPostgresUsageReader(std::shared_ptr<store::PgReadPool> pool);

}  // namespace meterd::store
