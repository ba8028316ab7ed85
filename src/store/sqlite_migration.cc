#include "store/sqlite_migration.h"

#include <fcntl.h>
#include <rocksdb/write_batch.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "common/clock.h"
#include "common/time_util.h"
#include "store/ledger_codec.h"
#include "store/ledger_db.h"
#include "store/sqlite_store.h"

namespace meterd::store {

namespace {

namespace fs = std::filesystem;
using ledger::Family;
using ledger::LedgerDb;

// A WriteBatch is written once it holds this many table rows (a ledger row is three entries) or
// this many bytes, whichever comes first: memory stays bounded however large the ledger is.
constexpr int64_t kRowsPerBatch = 4096;
constexpr size_t kBytesPerBatch = size_t{16} << 20;

Status SqlError(sqlite3* db, const std::string& what) {
  const int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_CANTOPEN;
  const StatusCode sc = (code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB
                            ? StatusCode::kCorruption
                            : StatusCode::kIoError;
  return Status(sc, "sqlite: " + what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "no memory"));
}

Status IoError(const std::string& what, const std::error_code& ec) {
  return Status(StatusCode::kIoError, "migration: " + what + ": " + ec.message());
}

// One connection to the SQLite file, closed with the object.
class SqliteFile {
 public:
  SqliteFile() = default;
  SqliteFile(const SqliteFile&) = delete;
  SqliteFile& operator=(const SqliteFile&) = delete;
  ~SqliteFile() {
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }
  Status Open(const std::string& path, int flags) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
      return SqlError(db_, "open " + path);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    return Status::Ok();
  }
  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      return Status(StatusCode::kIoError, std::string("sqlite: ") + sql + ": " + msg);
    }
    return Status::Ok();
  }
  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// A SELECT walked row by row.
class Query {
 public:
  Query() = default;
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;
  ~Query() { sqlite3_finalize(stmt_); }
  Status Prepare(sqlite3* db, const char* sql) {
    db_ = db;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      return SqlError(db, std::string("prepare ") + sql);
    }
    return Status::Ok();
  }
  // True with a row; false at the end (then `status()` tells whether the walk failed).
  bool Next() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) status_ = SqlError(db_, "read");
    return false;
  }
  const Status& status() const { return status_; }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p != nullptr ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
                        : "";
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  Status status_;
};

// The SQLite schema version the file was written with (0: no schema_version table or row yet,
// e.g. a file that a first start created and never finished).
Result<int64_t> ReadSchemaVersion(const std::string& path) {
  SqliteFile file;
  METERD_RETURN_IF_ERROR(file.Open(path, SQLITE_OPEN_READONLY));
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(file.db(), "SELECT max(version) FROM schema_version", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    if (std::string_view(sqlite3_errmsg(file.db())).starts_with("no such table")) {
      return int64_t{0};
    }
    return SqlError(file.db(), "read schema_version");
  }
  int64_t version = 0;
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) version = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlError(file.db(), "read schema_version");
  return version;
}

// Puts rows into the new ledger in WriteBatches of bounded size.
class BatchWriter {
 public:
  explicit BatchWriter(LedgerDb* db) : db_(db) {}
  void Put(Family f, std::string_view key, std::string_view value) {
    batch_.Put(db_->family(f), rocksdb::Slice(key.data(), key.size()),
               rocksdb::Slice(value.data(), value.size()));
  }
  // Ends one table row: writes the batch when it is full.
  Status EndRow() {
    ++rows_in_batch_;
    if (rows_in_batch_ < kRowsPerBatch && batch_.GetDataSize() < kBytesPerBatch) {
      return Status::Ok();
    }
    return Write();
  }
  Status Write() {
    if (batch_.Count() == 0) return Status::Ok();
    rocksdb::WriteOptions options;  // not synced: Finish flushes and syncs everything at the end
    METERD_RETURN_IF_ERROR(ledger::FromRocks(db_->db()->Write(options, &batch_), "write batch"));
    batch_.Clear();
    rows_in_batch_ = 0;
    return Status::Ok();
  }

 private:
  LedgerDb* db_;
  rocksdb::WriteBatch batch_;
  int64_t rows_in_batch_ = 0;
};

struct CopyCounts {
  int64_t usage_rows = 0;
  int64_t max_seq = 0;
  int64_t other_rows = 0;
};

Status CopyUsage(sqlite3* db, BatchWriter* out, CopyCounts* counts) {
  Query q;
  METERD_RETURN_IF_ERROR(q.Prepare(
      db,
      "SELECT seq, record_id, dedup_key, source, region, product_code, seller_account, "
      "customer_identifier, customer_account, license_arn, workload_id, dimension, usage_hour_ms, "
      "timestamp_ms, quantity, allocations, request_id, received_ms FROM usage_records "
      "ORDER BY seq"));
  UsageRow row;
  while (q.Next()) {
    const int64_t seq = q.Int(0);
    row.record_id = q.Text(1);
    row.dedup_key = q.Text(2);
    row.source = q.Text(3);
    row.region = q.Text(4);
    row.product_code = q.Text(5);
    row.seller_account = q.Text(6);
    row.customer_identifier = q.Text(7);
    row.customer_account = q.Text(8);
    row.license_arn = q.Text(9);
    row.workload_id = q.Text(10);
    row.dimension = q.Text(11);
    row.usage_hour_ms = q.Int(12);
    row.timestamp_ms = q.Int(13);
    row.quantity = q.Int(14);
    row.allocations_json = q.Text(15);
    row.request_id = q.Text(16);
    row.received_ms = q.Int(17);
    for (const ledger::Entry& e : ledger::NewUsageEntries(row, seq)) {
      out->Put(e.family, e.key, e.value);
    }
    ++counts->usage_rows;
    counts->max_seq = std::max(counts->max_seq, seq);
    METERD_RETURN_IF_ERROR(out->EndRow());
  }
  return q.status();
}

// Runs `sql` and hands each row to `put` (which Puts its entries), ending a row after each.
template <typename PutRow>
Status CopyTable(sqlite3* db, const char* sql, BatchWriter* out, CopyCounts* counts, PutRow put) {
  Query q;
  METERD_RETURN_IF_ERROR(q.Prepare(db, sql));
  while (q.Next()) {
    METERD_RETURN_IF_ERROR(put(q));
    ++counts->other_rows;
    METERD_RETURN_IF_ERROR(out->EndRow());
  }
  return q.status();
}

Status CopyOtherTables(sqlite3* db, BatchWriter* out, CopyCounts* counts) {
  METERD_RETURN_IF_ERROR(
      CopyTable(db, "SELECT caller, token, fingerprint, record_id, created_ms FROM client_tokens",
                out, counts, [out](const Query& q) {
                  const ClientTokenEntry e{q.Text(0), q.Text(1), q.Text(2), q.Text(3), q.Int(4)};
                  out->Put(ledger::kClientTokens, ledger::PairKey(e.caller, e.token),
                           ledger::EncodeClientToken(e));
                  return Status::Ok();
                }));
  METERD_RETURN_IF_ERROR(
      CopyTable(db, "SELECT workload_id, product_code, started_ms, stopped_ms FROM metered_runs",
                out, counts, [out](const Query& q) {
                  std::optional<int64_t> stopped;
                  if (!q.IsNull(3)) stopped = q.Int(3);
                  out->Put(ledger::kRuns, ledger::PairKey(q.Text(0), q.Text(1)),
                           ledger::EncodeRun(q.Int(2), stopped));
                  return Status::Ok();
                }));
  METERD_RETURN_IF_ERROR(CopyTable(
      db,
      "SELECT token, seller_account, product_code, customer_account, license_arn, issued_ms "
      "FROM registration_tokens",
      out, counts, [out](const Query& q) {
        const RegistrationTokenRow row{q.Text(0), q.Text(1), q.Text(2),
                                       q.Text(3), q.Text(4), q.Int(5)};
        out->Put(ledger::kRegistrationTokens, row.token, ledger::EncodeRegistrationToken(row));
        return Status::Ok();
      }));
  METERD_RETURN_IF_ERROR(CopyTable(
      db, "SELECT version, document, changed_ms, change FROM catalog_versions", out, counts,
      [out](const Query& q) {
        const CatalogVersion v{q.Int(0), q.Text(1), q.Int(2), q.Text(3)};
        out->Put(ledger::kCatalog, ledger::CatalogKey(v.version), ledger::EncodeCatalogVersion(v));
        return Status::Ok();
      }));
  METERD_RETURN_IF_ERROR(
      CopyTable(db, "SELECT workload_id, product_code, first_call_ms FROM workload_entitlements",
                out, counts, [out](const Query& q) {
                  out->Put(ledger::kEntitlements, ledger::PairKey(q.Text(0), q.Text(1)),
                           ledger::FixedValue(q.Int(2)));
                  return Status::Ok();
                }));
  METERD_RETURN_IF_ERROR(CopyTable(
      db,
      "SELECT event_id, event_time_ms, event_source, event_name, account_id, access_key_id, "
      "error_code, event FROM audit_events",
      out, counts, [out](const Query& q) {
        const AuditEventRow row{q.Text(0), q.Int(1),  q.Text(2), q.Text(3),
                                q.Text(4), q.Text(5), q.Text(6), q.Text(7)};
        out->Put(ledger::kAudit, ledger::AuditKey(row.event_time_ms, row.event_id),
                 ledger::EncodeAuditEvent(row));
        return Status::Ok();
      }));
  // Rollups: the totals as they are (Put, not Merge: the merge operator would add them to
  // nothing, but a Put states the total exactly once whatever the family holds).
  return CopyTable(
      db,
      "SELECT granularity, period_ms, product_code, customer_account, dimension, unit, tag_key, "
      "tag_value, quantity, records FROM usage_rollups",
      out, counts, [out](const Query& q) {
        const int64_t g = q.Int(0);
        if (g < 0 || g > static_cast<int64_t>(Granularity::kMonth)) {
          return Status(StatusCode::kCorruption,
                        "migration: usage_rollups has granularity " + std::to_string(g));
        }
        RollupKey key;
        key.granularity = static_cast<Granularity>(g);
        key.period_ms = q.Int(1);
        key.product_code = q.Text(2);
        key.customer_account = q.Text(3);
        key.dimension = q.Text(4);
        key.unit = q.Text(5);
        key.tag_key = q.Text(6);
        key.tag_value = q.Text(7);
        out->Put(ledger::kRollups, ledger::RollupKeyBytes(key),
                 ledger::EncodeRollupDelta(RollupDelta{q.Int(8), q.Int(9)}));
        return Status::Ok();
      });
}

Status FsyncPath(const std::string& path, bool directory) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) return IoError("open " + path, std::error_code(errno, std::generic_category()));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return IoError("fsync " + path, std::error_code(err, std::generic_category()));
  return Status::Ok();
}

// Every file of the new database and the directory itself, durable before the rename that
// makes it the store (RocksDB syncs what it writes; this makes it independent of its options).
Status SyncTree(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec)) METERD_RETURN_IF_ERROR(FsyncPath(entry.path().string(), false));
  }
  if (ec) return IoError("list " + dir, ec);
  return FsyncPath(dir, true);
}

// Copies every table of the SQLite file into a new RocksDB database at `path`.
Status BuildLedger(const std::string& sqlite_path, const std::string& path,
                   int64_t original_version, CopyCounts* counts) {
  SqliteFile file;
  METERD_RETURN_IF_ERROR(file.Open(sqlite_path, SQLITE_OPEN_READWRITE));
  // One read transaction for every table (one consistent state); IMMEDIATE also keeps any other
  // writer out while the copy runs.
  METERD_RETURN_IF_ERROR(file.Exec("BEGIN IMMEDIATE"));
  auto opened = LedgerDb::Open(path, ledger::OpenMode::kReadWrite);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<LedgerDb> db = std::move(opened).value();
  BatchWriter out(db.get());
  METERD_RETURN_IF_ERROR(CopyUsage(file.db(), &out, counts));
  METERD_RETURN_IF_ERROR(CopyOtherTables(file.db(), &out, counts));
  out.Put(ledger::kMeta, ledger::kMetaSchema, ledger::FixedValue(ledger::kLayoutVersion));
  out.Put(ledger::kMeta, ledger::kMetaNextSeq, ledger::FixedValue(counts->max_seq + 1));
  out.Put(ledger::kMeta, ledger::kMetaRows, ledger::FixedValue(counts->usage_rows));
  out.Put(ledger::kMeta, ledger::kMetaMigratedFrom,
          "sqlite schema " + std::to_string(original_version) + ", " +
              std::to_string(counts->usage_rows) + " rows, " + FormatIso8601(WallClockMillis()));
  METERD_RETURN_IF_ERROR(out.Write());
  (void)file.Exec("COMMIT");  // a read-only transaction: nothing to keep

  // Durable: every memtable flushed into table files, the WAL synced.
  std::vector<rocksdb::ColumnFamilyHandle*> families;
  families.reserve(ledger::kFamilyCount);
  for (int f = 0; f < ledger::kFamilyCount; ++f) {
    families.push_back(db->family(static_cast<Family>(f)));
  }
  rocksdb::FlushOptions flush;
  flush.wait = true;
  METERD_RETURN_IF_ERROR(ledger::FromRocks(db->db()->Flush(flush, families), "flush"));
  METERD_RETURN_IF_ERROR(ledger::FromRocks(db->db()->SyncWAL(), "sync WAL"));
  db.reset();  // closes it (the handles first, then the database)
  return SyncTree(path);
}

// The name the SQLite file is kept under: meterd.db.migrated, or .migrated.2, .3, ... when a
// file of an earlier migration holds that name.
std::string KeptName(const std::string& data_dir) {
  std::string base = data_dir + "/meterd.db.migrated";
  std::error_code ec;
  if (!fs::exists(base, ec)) return base;
  for (int n = 2;; ++n) {
    std::string name = base + "." + std::to_string(n);
    if (!fs::exists(name, ec)) return name;
  }
}

// Renames meterd.db and its -wal/-shm (those first: the main file is what says a migration has
// yet to finish) to the kept name, durably.
Status KeepSqliteFiles(const std::string& data_dir, std::string* kept) {
  const std::string from = data_dir + "/meterd.db";
  const std::string to = KeptName(data_dir);
  std::error_code ec;
  for (const char* suffix : {"-wal", "-shm"}) {
    if (fs::exists(from + suffix, ec)) {
      fs::rename(from + suffix, to + suffix, ec);
      if (ec) return IoError("rename " + from + suffix, ec);
    }
  }
  fs::rename(from, to, ec);
  if (ec) return IoError("rename " + from, ec);
  METERD_RETURN_IF_ERROR(FsyncPath(data_dir, true));
  *kept = fs::path(to).filename().string();
  return Status::Ok();
}

// Both meterd.db and ledger/ exist: the end of an interrupted migration, or two stores.
Status FinishOrRefuse(const std::string& data_dir, std::string* summary) {
  const std::string path = ledger::LedgerPath(data_dir);
  std::string migrated_from;
  {
    auto opened = LedgerDb::Open(path, ledger::OpenMode::kReadWrite);
    if (!opened.ok()) return opened.status();
    const rocksdb::Status s = (*opened)->db()->Get(
        rocksdb::ReadOptions(), (*opened)->family(ledger::kMeta),
        rocksdb::Slice(ledger::kMetaMigratedFrom.data(), ledger::kMetaMigratedFrom.size()),
        &migrated_from);
    if (s.IsNotFound()) {
      return Status(StatusCode::kInvalidArgument,
                    "the data dir " + data_dir +
                        " holds both meterd.db (SQLite) and ledger/ (not migrated from it): "
                        "move one of them away");
    }
    METERD_RETURN_IF_ERROR(ledger::FromRocks(s, "read " + std::string(ledger::kMetaMigratedFrom)));
  }
  std::string kept;
  METERD_RETURN_IF_ERROR(KeepSqliteFiles(data_dir, &kept));
  *summary =
      "finished the migration from SQLite (" + migrated_from + "): meterd.db kept as " + kept;
  return Status::Ok();
}

}  // namespace

Status MigrateSqliteLayoutIfPresent(const std::string& data_dir, std::string* summary) {
  std::string ignored;
  if (summary == nullptr) summary = &ignored;
  summary->clear();
  const std::string sqlite_path = data_dir + "/meterd.db";
  const std::string ledger_path = ledger::LedgerPath(data_dir);
  const std::string migrating = ledger_path + ".migrating";
  std::error_code ec;
  const bool has_sqlite = fs::exists(sqlite_path, ec);
  if (ec) return IoError("stat " + sqlite_path, ec);
  if (!has_sqlite) return Status::Ok();
  const bool has_ledger = fs::exists(ledger_path, ec);
  if (ec) return IoError("stat " + ledger_path, ec);
  if (has_ledger) return FinishOrRefuse(data_dir, summary);

  // A leftover of an interrupted attempt: start again from scratch.
  fs::remove_all(migrating, ec);
  if (ec) return IoError("remove " + migrating, ec);

  auto original_version = ReadSchemaVersion(sqlite_path);
  if (!original_version.ok()) return original_version.status();
  {
    // The SQLite backend brings the file to the current SQLite schema (a schema-1 file gains its
    // rollups) and checkpoints its WAL when it closes.
    auto backend = OpenSqliteBackend(data_dir);
    if (!backend.ok()) return backend.status();
  }
  CopyCounts counts;
  METERD_RETURN_IF_ERROR(BuildLedger(sqlite_path, migrating, *original_version, &counts));

  fs::rename(migrating, ledger_path, ec);
  if (ec) return IoError("rename " + migrating, ec);
  METERD_RETURN_IF_ERROR(FsyncPath(data_dir, true));
  std::string kept;
  METERD_RETURN_IF_ERROR(KeepSqliteFiles(data_dir, &kept));
  *summary = "migrated meterd.db (sqlite schema " + std::to_string(*original_version) + ", " +
             std::to_string(counts.usage_rows) + " ledger rows, " +
             std::to_string(counts.other_rows) + " other rows) to ledger/; kept it as " + kept;
  return Status::Ok();
}

}  // namespace meterd::store
