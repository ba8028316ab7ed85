#include "store/ledger_dump.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "store/ledger_codec.h"
#include "store/ledger_db.h"
#include "store/sqlite_schema.h"

namespace meterd::store {

namespace {

namespace fs = std::filesystem;
using ledger::Family;
using ledger::LedgerDb;

Status SqlError(sqlite3* db, const std::string& what) {
  const int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_CANTOPEN;
  const StatusCode sc = (code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB
                            ? StatusCode::kCorruption
                            : StatusCode::kIoError;
  return Status(sc, "dump: sqlite: " + what + ": " + (db != nullptr ? sqlite3_errmsg(db) : ""));
}

Status Corrupt(Family f, const std::string& what) {
  return Status(StatusCode::kCorruption,
                "dump: " + ledger::FamilyNames()[f] + ": " + what + " does not decode");
}

// The secondary's private scratch directory, removed with the object.
class ScratchDir {
 public:
  ScratchDir() = default;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  Status Create() {
    const char* base = std::getenv("TMPDIR");
    std::string templ =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/meterd-dump.XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      return Status(StatusCode::kIoError, "dump: mkdtemp " + templ + ": " + strerror(errno));
    }
    path_ = templ;
    return Status::Ok();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The output file: one connection and its prepared INSERTs.
class Output {
 public:
  Output() = default;
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  ~Output() { (void)Close(); }

  Status Open(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      return SqlError(db_, "open " + path);
    }
    sqlite3_extended_result_codes(db_, 1);
    // A new file that is renamed into place only when complete: no journal needed.
    METERD_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=OFF"));
    METERD_RETURN_IF_ERROR(Exec("PRAGMA synchronous=OFF"));
    METERD_RETURN_IF_ERROR(Exec("BEGIN"));
    METERD_RETURN_IF_ERROR(Exec(kSqliteSchema));
    METERD_RETURN_IF_ERROR(Exec(kSqliteAuditSchema));
    return Exec(("INSERT INTO schema_version (version) VALUES (" +
                 std::to_string(kSqliteSchemaVersion) + ")")
                    .c_str());
  }
  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      return Status(StatusCode::kIoError, std::string("dump: sqlite: ") + sql + ": " + msg);
    }
    return Status::Ok();
  }
  // Prepares `sql` (positional parameters ?1..) as the statement Bind and Run work on.
  Status Prepare(const char* sql) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      return SqlError(db_, "prepare");
    }
    return Status::Ok();
  }
  void Bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, std::optional<int64_t> v) {
    if (v) {
      sqlite3_bind_int64(stmt_, i, *v);
    } else {
      sqlite3_bind_null(stmt_, i);
    }
  }
  Status Run(const char* what) {
    const int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return rc == SQLITE_DONE ? Status::Ok() : SqlError(db_, what);
  }
  Status Commit() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    return Exec("COMMIT");
  }
  Status Close() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    if (db_ == nullptr) return Status::Ok();
    const int rc = sqlite3_close(db_);
    if (rc != SQLITE_OK) {
      Status st = SqlError(db_, "close");
      sqlite3_close_v2(db_);
      db_ = nullptr;
      return st;
    }
    db_ = nullptr;
    return Status::Ok();
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// Walks one family in key order, handing (key, value) to `row`.
template <typename Row>
Status ForEach(const LedgerDb& db, Family f, Row row) {
  rocksdb::ReadOptions options;
  options.fill_cache = false;  // one pass over everything: keep the cache for the server
  std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(options, db.family(f)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    METERD_RETURN_IF_ERROR(row(View(it->key()), View(it->value())));
  }
  return ledger::FromRocks(it->status(), "read " + ledger::FamilyNames()[f]);
}

// What the ledger says of itself, checked against what the dump saw (with `verify`).
struct Tally {
  int64_t usage_rows = 0;
  int64_t max_seq = 0;
  int64_t dedup_entries = 0;
  int64_t account_entries = 0;
  int64_t time_entries = 0;
  std::vector<std::string> problems;
};

Status DumpUsage(const LedgerDb& db, Output* out, Tally* tally) {
  METERD_RETURN_IF_ERROR(out->Prepare(
      "INSERT INTO usage_records (seq, record_id, dedup_key, source, region, product_code, "
      "seller_account, customer_identifier, customer_account, license_arn, workload_id, "
      "dimension, usage_hour_ms, timestamp_ms, quantity, allocations, request_id, received_ms) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
      "?18)"));
  UsageRow r;
  return ForEach(db, ledger::kUsage, [&](std::string_view key, std::string_view value) {
    int64_t seq = 0;
    if (!ledger::ParseUsageKey(key, &seq)) return Corrupt(ledger::kUsage, "a key");
    if (!ledger::DecodeUsageRow(value, &r)) {
      return Corrupt(ledger::kUsage, "the row of seq " + std::to_string(seq));
    }
    ++tally->usage_rows;
    tally->max_seq = std::max(tally->max_seq, seq);
    out->Bind(1, seq);
    out->Bind(2, r.record_id);
    out->Bind(3, r.dedup_key);
    out->Bind(4, r.source);
    out->Bind(5, r.region);
    out->Bind(6, r.product_code);
    out->Bind(7, r.seller_account);
    out->Bind(8, r.customer_identifier);
    out->Bind(9, r.customer_account);
    out->Bind(10, r.license_arn);
    out->Bind(11, r.workload_id);
    out->Bind(12, r.dimension);
    out->Bind(13, r.usage_hour_ms);
    out->Bind(14, r.timestamp_ms);
    out->Bind(15, r.quantity);
    out->Bind(16, r.allocations_json);
    out->Bind(17, r.request_id);
    out->Bind(18, r.received_ms);
    return out->Run("insert usage_records");
  });
}

Status DumpOtherTables(const LedgerDb& db, Output* out) {
  METERD_RETURN_IF_ERROR(
      out->Prepare("INSERT INTO client_tokens (caller, token, fingerprint, record_id, created_ms) "
                   "VALUES (?1, ?2, ?3, ?4, ?5)"));
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kClientTokens, [&](std::string_view key, std::string_view value) {
        ClientTokenEntry e;
        if (!ledger::ParsePairKey(key, &e.caller, &e.token) ||
            !ledger::DecodeClientToken(value, &e)) {
          return Corrupt(ledger::kClientTokens, "a row");
        }
        out->Bind(1, e.caller);
        out->Bind(2, e.token);
        out->Bind(3, e.fingerprint);
        out->Bind(4, e.record_id);
        out->Bind(5, e.created_ms);
        return out->Run("insert client_tokens");
      }));

  METERD_RETURN_IF_ERROR(
      out->Prepare("INSERT INTO metered_runs (workload_id, product_code, started_ms, stopped_ms) "
                   "VALUES (?1, ?2, ?3, ?4)"));
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kRuns, [&](std::string_view key, std::string_view value) {
        std::string workload, product;
        int64_t started_ms = 0;
        std::optional<int64_t> stopped_ms;
        if (!ledger::ParsePairKey(key, &workload, &product) ||
            !ledger::DecodeRun(value, &started_ms, &stopped_ms)) {
          return Corrupt(ledger::kRuns, "a row");
        }
        out->Bind(1, workload);
        out->Bind(2, product);
        out->Bind(3, started_ms);
        out->Bind(4, stopped_ms);
        return out->Run("insert metered_runs");
      }));

  METERD_RETURN_IF_ERROR(
      out->Prepare("INSERT INTO registration_tokens (token, seller_account, product_code, "
                   "customer_account, license_arn, issued_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kRegistrationTokens, [&](std::string_view key, std::string_view value) {
        RegistrationTokenRow row;
        row.token = std::string(key);
        if (!ledger::DecodeRegistrationToken(value, &row)) {
          return Corrupt(ledger::kRegistrationTokens, "a row");
        }
        out->Bind(1, row.token);
        out->Bind(2, row.seller_account);
        out->Bind(3, row.product_code);
        out->Bind(4, row.customer_account);
        out->Bind(5, row.license_arn);
        out->Bind(6, row.issued_ms);
        return out->Run("insert registration_tokens");
      }));

  METERD_RETURN_IF_ERROR(
      out->Prepare("INSERT INTO catalog_versions (version, document, changed_ms, change) VALUES "
                   "(?1, ?2, ?3, ?4)"));
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kCatalog, [&](std::string_view key, std::string_view value) {
        CatalogVersion v;
        ledger::Reader k(key);
        if (!k.OrderedInt(&v.version) || !k.done() || !ledger::DecodeCatalogVersion(value, &v)) {
          return Corrupt(ledger::kCatalog, "a version");
        }
        out->Bind(1, v.version);
        out->Bind(2, v.document);
        out->Bind(3, v.changed_ms);
        out->Bind(4, v.change);
        return out->Run("insert catalog_versions");
      }));

  METERD_RETURN_IF_ERROR(
      out->Prepare("INSERT INTO workload_entitlements (workload_id, product_code, first_call_ms) "
                   "VALUES (?1, ?2, ?3)"));
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kEntitlements, [&](std::string_view key, std::string_view value) {
        std::string workload, product;
        int64_t first_call_ms = 0;
        if (!ledger::ParsePairKey(key, &workload, &product) ||
            !ledger::ParseFixedValue(value, &first_call_ms)) {
          return Corrupt(ledger::kEntitlements, "a row");
        }
        out->Bind(1, workload);
        out->Bind(2, product);
        out->Bind(3, first_call_ms);
        return out->Run("insert workload_entitlements");
      }));

  METERD_RETURN_IF_ERROR(
      out->Prepare("INSERT INTO audit_events (event_id, event_time_ms, event_source, event_name, "
                   "account_id, access_key_id, error_code, event) VALUES (?1, ?2, ?3, ?4, ?5, "
                   "?6, ?7, ?8)"));
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kAudit, [&](std::string_view key, std::string_view value) {
        AuditEventRow row;
        if (!ledger::ParseAuditKey(key, &row.event_time_ms, &row.event_id) ||
            !ledger::DecodeAuditEvent(value, &row)) {
          return Corrupt(ledger::kAudit, "an event");
        }
        out->Bind(1, row.event_id);
        out->Bind(2, row.event_time_ms);
        out->Bind(3, row.event_source);
        out->Bind(4, row.event_name);
        out->Bind(5, row.account_id);
        out->Bind(6, row.access_key_id);
        out->Bind(7, row.error_code);
        out->Bind(8, row.event_json);
        return out->Run("insert audit_events");
      }));

  // The iterator applies the merge operator: each key's value is its total.
  METERD_RETURN_IF_ERROR(
      out->Prepare("INSERT INTO usage_rollups (granularity, period_ms, product_code, "
                   "customer_account, dimension, unit, tag_key, tag_value, quantity, records) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
  return ForEach(db, ledger::kRollups, [&](std::string_view key, std::string_view value) {
    RollupKey k;
    RollupDelta d;
    if (!ledger::ParseRollupKey(key, &k) || !ledger::DecodeRollupDelta(value, &d)) {
      return Corrupt(ledger::kRollups, "a rollup");
    }
    out->Bind(1, static_cast<int64_t>(k.granularity));
    out->Bind(2, k.period_ms);
    out->Bind(3, k.product_code);
    out->Bind(4, k.customer_account);
    out->Bind(5, k.dimension);
    out->Bind(6, k.unit);
    out->Bind(7, k.tag_key);
    out->Bind(8, k.tag_value);
    out->Bind(9, d.quantity);
    out->Bind(10, d.records);
    return out->Run("insert usage_rollups");
  });
}

// Reads a fixed64 meta counter; nullopt when absent.
Result<std::optional<int64_t>> MetaCounter(const LedgerDb& db, std::string_view key) {
  std::string value;
  const rocksdb::Status s = db.db()->Get(rocksdb::ReadOptions(), db.family(ledger::kMeta),
                                         rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<int64_t>();
  METERD_RETURN_IF_ERROR(ledger::FromRocks(s, "read meta " + std::string(key)));
  int64_t v = 0;
  if (!ledger::ParseFixedValue(value, &v)) return Corrupt(ledger::kMeta, std::string(key));
  return std::optional<int64_t>(v);
}

// The ledger's bookkeeping against its rows (with `verify`).
Status CheckBookkeeping(const LedgerDb& db, Tally* tally) {
  // Each dedup entry names a row whose own dedup key has the entry's digest.
  std::string row_bytes;
  UsageRow row;
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kDedup, [&](std::string_view key, std::string_view value) {
        int64_t seq = 0;
        if (!ledger::DecodeDedupValue(value, &seq)) return Corrupt(ledger::kDedup, "an entry");
        ++tally->dedup_entries;
        const rocksdb::Status s = db.db()->Get(rocksdb::ReadOptions(), db.family(ledger::kUsage),
                                               ledger::UsageKey(seq), &row_bytes);
        if (!s.ok() && !s.IsNotFound())
          return ledger::FromRocks(s, "read the row of a dedup entry");
        if (s.IsNotFound() || !ledger::DecodeUsageRow(row_bytes, &row) ||
            ledger::DedupKey(row.dedup_key) != key) {
          tally->problems.push_back("the dedup entry of seq " + std::to_string(seq) +
                                    " does not match its row");
        }
        return Status::Ok();
      }));
  METERD_RETURN_IF_ERROR(ForEach(db, ledger::kUsageByTime, [&](std::string_view, std::string_view) {
    ++tally->time_entries;
    return Status::Ok();
  }));
  METERD_RETURN_IF_ERROR(
      ForEach(db, ledger::kUsageByAccount, [&](std::string_view, std::string_view) {
        ++tally->account_entries;
        return Status::Ok();
      }));
  auto rows = MetaCounter(db, ledger::kMetaRows);
  if (!rows.ok()) return rows.status();
  auto next_seq = MetaCounter(db, ledger::kMetaNextSeq);
  if (!next_seq.ok()) return next_seq.status();
  const std::string n = std::to_string(tally->usage_rows);
  if (rows->value_or(0) != tally->usage_rows) {
    tally->problems.push_back("meta " + std::string(ledger::kMetaRows) + " is " +
                              std::to_string(rows->value_or(0)) + ", the ledger holds " + n +
                              " rows");
  }
  if (tally->dedup_entries != tally->usage_rows) {
    tally->problems.push_back(std::to_string(tally->dedup_entries) + " dedup entries for " + n +
                              " ledger rows");
  }
  if (tally->time_entries != tally->usage_rows) {
    tally->problems.push_back(std::to_string(tally->time_entries) + " by-time entries for " + n +
                              " ledger rows");
  }
  if (tally->account_entries != tally->usage_rows) {
    tally->problems.push_back(std::to_string(tally->account_entries) + " by-account entries for " +
                              n + " ledger rows");
  }
  if (tally->usage_rows > 0 && next_seq->value_or(0) <= tally->max_seq) {
    tally->problems.push_back("meta " + std::string(ledger::kMetaNextSeq) + " is " +
                              std::to_string(next_seq->value_or(0)) + ", at or below seq " +
                              std::to_string(tally->max_seq) + " of the ledger");
  }
  return Status::Ok();
}

Status FsyncFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status(StatusCode::kIoError, "dump: open " + path + ": " + strerror(errno));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return Status(StatusCode::kIoError, "dump: fsync " + path + ": " + strerror(err));
  return Status::Ok();
}

Status WriteDump(const LedgerDb& db, const std::string& partial, Tally* tally) {
  Output out;
  METERD_RETURN_IF_ERROR(out.Open(partial));
  METERD_RETURN_IF_ERROR(DumpUsage(db, &out, tally));
  METERD_RETURN_IF_ERROR(DumpOtherTables(db, &out));
  METERD_RETURN_IF_ERROR(out.Commit());
  METERD_RETURN_IF_ERROR(out.Close());
  return FsyncFile(partial);
}

// The ledger as a secondary, caught up with what the primary (a running meterd, if any) has
// written by now; the view stays there. A running primary may delete a WAL or table file the
// secondary is about to read (a flush or compaction in between): a few attempts.
Result<std::unique_ptr<LedgerDb>> OpenCaughtUp(const std::string& path,
                                               const std::string& scratch) {
  Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) usleep(200 * 1000);
    auto opened = LedgerDb::Open(path, ledger::OpenMode::kSecondary, scratch);
    if (!opened.ok()) {
      last = opened.status();
      continue;
    }
    last = ledger::FromRocks((*opened)->db()->TryCatchUpWithPrimary(), "catch up with the primary");
    if (last.ok()) return opened;
  }
  return last;
}

}  // namespace

Status DumpLedgerToSqlite(const std::string& data_dir, const std::string& out_path, bool verify,
                          std::string* report) {
  std::string ignored;
  if (report == nullptr) report = &ignored;
  report->clear();
  const std::string path = ledger::LedgerPath(data_dir);
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return Status(StatusCode::kNotFound, "dump: no embedded ledger at " + path);
  }
  if (fs::exists(out_path, ec)) {
    return Status(StatusCode::kInvalidArgument, "dump: " + out_path + " exists already");
  }
  ScratchDir scratch;
  METERD_RETURN_IF_ERROR(scratch.Create());
  auto opened = OpenCaughtUp(path, scratch.path());
  if (!opened.ok()) return opened.status();
  const std::unique_ptr<LedgerDb> db = std::move(opened).value();

  Tally tally;
  if (verify) {
    // A running primary may delete a file (a compaction's input) between the catch-up and the
    // check: then the file set is a stale one, not a corrupt one. Catch up and check again.
    rocksdb::Status checksums = db->db()->VerifyChecksum();
    for (int again = 0; again < 3 && checksums.IsPathNotFound(); ++again) {
      if (!db->db()->TryCatchUpWithPrimary().ok()) break;
      checksums = db->db()->VerifyChecksum();
    }
    if (!checksums.ok()) tally.problems.push_back("checksums: " + checksums.ToString());
  }
  const std::string partial = out_path + ".partial";
  fs::remove(partial, ec);
  Status st = WriteDump(*db, partial, &tally);
  if (st.ok() && verify) st = CheckBookkeeping(*db, &tally);
  if (st.ok()) {
    fs::rename(partial, out_path, ec);
    if (ec) st = Status(StatusCode::kIoError, "dump: rename " + partial + ": " + ec.message());
  }
  if (!st.ok()) {
    fs::remove(partial, ec);
    return st;
  }
  if (verify) {
    if (tally.problems.empty()) {
      *report = "ok";
    } else {
      for (const std::string& p : tally.problems) {
        if (!report->empty()) *report += "; ";
        *report += p;
      }
    }
  }
  return Status::Ok();
}

}  // namespace meterd::store
