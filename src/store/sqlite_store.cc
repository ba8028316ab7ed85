#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <mutex>

#include "store/rollup.h"
#include "store/sqlite_schema.h"
#include "store/wal_checkpointer.h"

namespace meterd::store {

namespace {

Status SqlError(sqlite3* db, const std::string& what) {
  int code = sqlite3_extended_errcode(db);
  StatusCode sc = (code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB
                      ? StatusCode::kCorruption
                      : StatusCode::kIoError;
  return Status(sc, "sqlite: " + what + ": " + sqlite3_errmsg(db));
}

// A prepared statement that resets itself after each use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  Status Prepare(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      return SqlError(db, "prepare");
    }
    return Status::Ok();
  }
  void Bind(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : "";
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// --- audit trail: the reader, on its own read-only connection ---------------------------------
// WAL mode lets it read the last committed state while the writer commits.
class SqliteAuditReader final : public AuditReader {
 public:
  ~SqliteAuditReader() override {
    if (db_) sqlite3_close_v2(db_);
  }
  Status Open(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      return SqlError(db_, "open (audit read) " + path);
    }
    sqlite3_busy_timeout(db_, 5000);
    return Status::Ok();
  }

  Result<AuditPage> LookupAuditEvents(const AuditQuery& q) override {
    std::string sql =
        "SELECT event_id, event_time_ms, event_source, event_name, account_id, access_key_id, "
        "error_code, event FROM audit_events WHERE 1 = 1";
    std::vector<std::string> texts;
    std::vector<int64_t> numbers;
    // Parameters are numbered: texts first (?1..), then numbers, so binding stays simple.
    struct Param {
      bool is_text;
      size_t index;
    };
    std::vector<Param> params;
    auto text = [&](const char* clause, const std::string& value) {
      texts.push_back(value);
      params.push_back({true, texts.size() - 1});
      sql += clause;
      sql += "?" + std::to_string(params.size());
    };
    auto number = [&](const char* clause, int64_t value) {
      numbers.push_back(value);
      params.push_back({false, numbers.size() - 1});
      sql += clause;
      sql += "?" + std::to_string(params.size());
    };
    if (!q.event_name.empty()) text(" AND event_name = ", q.event_name);
    if (!q.event_source.empty()) text(" AND event_source = ", q.event_source);
    if (!q.account_id.empty()) text(" AND account_id = ", q.account_id);
    if (!q.access_key_id.empty()) text(" AND access_key_id = ", q.access_key_id);
    if (!q.error_code.empty()) text(" AND error_code = ", q.error_code);
    if (q.errors_only) sql += " AND error_code <> ''";
    if (q.from_ms) number(" AND event_time_ms >= ", *q.from_ms);
    if (q.to_ms) number(" AND event_time_ms < ", *q.to_ms);
    if (q.after) {
      number(" AND (event_time_ms < ", q.after->event_time_ms);
      const size_t time_param = params.size();
      sql += " OR (event_time_ms = ?" + std::to_string(time_param);
      text(" AND event_id < ", q.after->event_id);
      sql += "))";
    }
    number(" ORDER BY event_time_ms DESC, event_id DESC LIMIT ", static_cast<int64_t>(q.limit) + 1);

    std::lock_guard<std::mutex> lock(mu_);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      return SqlError(db_, "prepare audit lookup");
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const int slot = static_cast<int>(i + 1);
      if (params[i].is_text) {
        const std::string& v = texts[params[i].index];
        sqlite3_bind_text(stmt, slot, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
      } else {
        sqlite3_bind_int64(stmt, slot, numbers[params[i].index]);
      }
    }
    AuditPage page;
    int rc;
    auto column = [stmt](int col) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
      return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt, col))) : "";
    };
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (page.events.size() == q.limit) {
        page.more = true;
        break;
      }
      page.events.push_back(AuditEventRow{column(0), sqlite3_column_int64(stmt, 1), column(2),
                                          column(3), column(4), column(5), column(6), column(7)});
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlError(db_, "audit lookup");
    return page;
  }

 private:
  sqlite3* db_ = nullptr;
  std::mutex mu_;  // one statement at a time on the connection
};
// --- end of audit trail ----------------------------------------------------------------------

class SqliteBackend final : public Backend, public Transaction {
 public:
  ~SqliteBackend() override {
    // The checkpointer's hook and thread first, then the statements, then the connections.
    checkpointer_.reset();
    insert_usage_.reset();
    find_usage_.reset();
    find_token_.reset();
    put_token_.reset();
    find_entitlement_.reset();
    put_entitlement_.reset();
    open_run_.reset();
    open_runs_.reset();
    stop_run_.reset();
    find_reg_token_.reset();
    put_reg_token_.reset();
    list_reg_tokens_.reset();
    delete_reg_token_.reset();
    latest_catalog_.reset();
    put_catalog_.reset();
    put_audit_.reset();
    delete_audit_.reset();
    begin_.reset();
    commit_.reset();
    rollback_.reset();
    count_.reset();
    upsert_rollup_.reset();
    if (db_) sqlite3_close_v2(db_);
    if (read_db_) sqlite3_close_v2(read_db_);
  }

  Status Open(const std::string& data_dir) {
    std::string path = data_dir + "/meterd.db";
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      return SqlError(db_, "open " + path);
    }
    chmod(path.c_str(), 0600);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    METERD_RETURN_IF_ERROR(Exec("PRAGMA journal_mode=WAL"));
    METERD_RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
    METERD_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON"));
    // The writer re-reads index pages for every dedup key; keep them in SQLite's own cache
    // (64 MiB) instead of going through pread for each.
    METERD_RETURN_IF_ERROR(Exec("PRAGMA cache_size=-65536"));
    METERD_RETURN_IF_ERROR(Migrate());
    // Checkpoints out of the commits (wal_checkpointer.h).
    auto checkpointer = WalCheckpointer::Start(path, db_);
    if (!checkpointer.ok()) return checkpointer.status();
    checkpointer_ = std::move(*checkpointer);
    insert_usage_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(insert_usage_->Prepare(db_, R"SQL(
      INSERT INTO usage_records (record_id, dedup_key, source, region, product_code,
        seller_account, customer_identifier, customer_account, license_arn, workload_id,
        dimension, usage_hour_ms, timestamp_ms, quantity, allocations, request_id, received_ms)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
      ON CONFLICT (dedup_key) DO NOTHING)SQL"));
    find_usage_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(find_usage_->Prepare(
        db_, "SELECT record_id, quantity FROM usage_records WHERE dedup_key = ?1"));
    find_token_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(find_token_->Prepare(
        db_,
        "SELECT fingerprint, record_id, created_ms FROM client_tokens WHERE caller = ?1 AND "
        "token = ?2"));
    put_token_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(put_token_->Prepare(
        db_,
        "INSERT INTO client_tokens (caller, token, fingerprint, record_id, created_ms) VALUES "
        "(?1, ?2, ?3, ?4, ?5)"));
    find_entitlement_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(find_entitlement_->Prepare(
        db_, "SELECT 1 FROM workload_entitlements WHERE workload_id = ?1 AND product_code = ?2"));
    put_entitlement_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(put_entitlement_->Prepare(
        db_,
        "INSERT INTO workload_entitlements (workload_id, product_code, first_call_ms) VALUES "
        "(?1, ?2, ?3) ON CONFLICT DO NOTHING"));
    open_run_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(open_run_->Prepare(
        db_,
        "INSERT INTO metered_runs (workload_id, product_code, started_ms) VALUES (?1, ?2, ?3) "
        "ON CONFLICT DO NOTHING"));
    open_runs_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(open_runs_->Prepare(
        db_,
        "SELECT workload_id, product_code, started_ms FROM metered_runs WHERE stopped_ms IS "
        "NULL ORDER BY workload_id, product_code"));
    stop_run_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(stop_run_->Prepare(
        db_,
        "UPDATE metered_runs SET stopped_ms = ?3 WHERE workload_id = ?1 AND product_code = ?2 "
        "AND stopped_ms IS NULL"));
    find_reg_token_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(find_reg_token_->Prepare(
        db_,
        "SELECT seller_account, product_code, customer_account, license_arn, issued_ms FROM "
        "registration_tokens WHERE token = ?1"));
    put_reg_token_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(put_reg_token_->Prepare(
        db_,
        "INSERT INTO registration_tokens (token, seller_account, product_code, customer_account, "
        "license_arn, issued_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING"));
    list_reg_tokens_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(list_reg_tokens_->Prepare(
        db_,
        "SELECT token, seller_account, product_code, customer_account, license_arn, issued_ms "
        "FROM registration_tokens ORDER BY issued_ms, token"));
    delete_reg_token_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(
        delete_reg_token_->Prepare(db_, "DELETE FROM registration_tokens WHERE token = ?1"));
    latest_catalog_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(latest_catalog_->Prepare(
        db_,
        "SELECT version, document, changed_ms, change FROM catalog_versions ORDER BY version "
        "DESC LIMIT 1"));
    put_catalog_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(put_catalog_->Prepare(
        db_,
        "INSERT INTO catalog_versions (version, document, changed_ms, change) VALUES (?1, ?2, ?3, "
        "?4)"));
    // Audit trail.
    put_audit_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(put_audit_->Prepare(db_, R"SQL(
      INSERT INTO audit_events (event_id, event_time_ms, event_source, event_name, account_id,
        access_key_id, error_code, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
      ON CONFLICT (event_id) DO NOTHING)SQL"));
    delete_audit_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(delete_audit_->Prepare(db_, R"SQL(
      DELETE FROM audit_events WHERE event_id IN (
        SELECT event_id FROM audit_events WHERE event_time_ms < ?1
        ORDER BY event_time_ms, event_id LIMIT ?2))SQL"));
    METERD_RETURN_IF_ERROR(audit_reader_.Open(path));

    begin_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(begin_->Prepare(db_, "BEGIN IMMEDIATE"));
    commit_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(commit_->Prepare(db_, "COMMIT"));
    rollback_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(rollback_->Prepare(db_, "ROLLBACK"));

    if (sqlite3_open_v2(path.c_str(), &read_db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      return SqlError(read_db_, "open (read) " + path);
    }
    sqlite3_busy_timeout(read_db_, 5000);
    count_ = std::make_unique<Statement>();
    METERD_RETURN_IF_ERROR(count_->Prepare(read_db_, "SELECT count(*) FROM usage_records"));
    return Status::Ok();
  }

  // Backend
  Status Begin() override {
    rollups_.Clear();
    return Run(*begin_, "begin");
  }
  Transaction& txn() override { return *this; }
  AuditReader& audit_reader() override { return audit_reader_; }
  Status Commit() override {
    METERD_RETURN_IF_ERROR(FlushRollups());
    return Run(*commit_, "commit");
  }
  void Rollback() override {
    rollups_.Clear();
    // Rollback fails harmlessly when SQLite already rolled back (e.g. after SQLITE_FULL).
    if (sqlite3_get_autocommit(db_) == 0) (void)Run(*rollback_, "rollback");
  }
  Result<int64_t> CountUsageRows() override {
    std::lock_guard<std::mutex> lock(read_mu_);
    int rc = count_->Step();
    int64_t n = rc == SQLITE_ROW ? count_->Int(0) : -1;
    count_->Reset();
    if (rc != SQLITE_ROW) return SqlError(read_db_, "count");
    return n;
  }

  // Transaction
  Result<std::optional<ExistingUsage>> InsertUsageIfAbsent(const UsageRow& r) override {
    Statement& s = *insert_usage_;
    s.Bind(1, r.record_id);
    s.Bind(2, r.dedup_key);
    s.Bind(3, r.source);
    s.Bind(4, r.region);
    s.Bind(5, r.product_code);
    s.Bind(6, r.seller_account);
    s.Bind(7, r.customer_identifier);
    s.Bind(8, r.customer_account);
    s.Bind(9, r.license_arn);
    s.Bind(10, r.workload_id);
    s.Bind(11, r.dimension);
    s.Bind(12, r.usage_hour_ms);
    s.Bind(13, r.timestamp_ms);
    s.Bind(14, r.quantity);
    s.Bind(15, r.allocations_json);
    s.Bind(16, r.request_id);
    s.Bind(17, r.received_ms);
    int rc = s.Step();
    s.Reset();
    if (rc != SQLITE_DONE) return SqlError(db_, "insert usage");
    if (sqlite3_changes(db_) == 1) {
      rollups_.Add(r);
      return std::optional<ExistingUsage>();
    }
    auto existing = FindUsage(r.dedup_key);
    if (existing.ok() && !existing->has_value()) {
      return Status(StatusCode::kCorruption, "dedup key vanished");
    }
    return existing;
  }

  Result<std::optional<ExistingUsage>> FindUsage(const std::string& dedup_key) override {
    Statement& f = *find_usage_;
    f.Bind(1, dedup_key);
    int rc = f.Step();
    if (rc == SQLITE_DONE) {
      f.Reset();
      return std::optional<ExistingUsage>();
    }
    if (rc != SQLITE_ROW) {
      f.Reset();
      return SqlError(db_, "find usage");
    }
    ExistingUsage existing{f.Text(0), f.Int(1)};
    f.Reset();
    return std::optional<ExistingUsage>(std::move(existing));
  }

  Result<std::optional<ClientTokenEntry>> FindClientToken(const std::string& caller,
                                                          const std::string& token) override {
    Statement& s = *find_token_;
    s.Bind(1, caller);
    s.Bind(2, token);
    int rc = s.Step();
    if (rc == SQLITE_DONE) {
      s.Reset();
      return std::optional<ClientTokenEntry>();
    }
    if (rc != SQLITE_ROW) {
      s.Reset();
      return SqlError(db_, "find client token");
    }
    ClientTokenEntry e{caller, token, s.Text(0), s.Text(1), s.Int(2)};
    s.Reset();
    return std::optional<ClientTokenEntry>(std::move(e));
  }

  Status PutClientToken(const ClientTokenEntry& e) override {
    Statement& s = *put_token_;
    s.Bind(1, e.caller);
    s.Bind(2, e.token);
    s.Bind(3, e.fingerprint);
    s.Bind(4, e.record_id);
    s.Bind(5, e.created_ms);
    int rc = s.Step();
    s.Reset();
    return rc == SQLITE_DONE ? Status::Ok() : SqlError(db_, "put client token");
  }

  Result<bool> HasEntitlement(const std::string& workload, const std::string& product) override {
    Statement& s = *find_entitlement_;
    s.Bind(1, workload);
    s.Bind(2, product);
    int rc = s.Step();
    s.Reset();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(db_, "find entitlement");
  }

  Status PutEntitlement(const std::string& workload, const std::string& product,
                        int64_t now_ms) override {
    Statement& s = *put_entitlement_;
    s.Bind(1, workload);
    s.Bind(2, product);
    s.Bind(3, now_ms);
    int rc = s.Step();
    s.Reset();
    return rc == SQLITE_DONE ? Status::Ok() : SqlError(db_, "put entitlement");
  }

  Status OpenRunIfAbsent(const MeteredRun& run) override {
    Statement& s = *open_run_;
    s.Bind(1, run.workload_id);
    s.Bind(2, run.product_code);
    s.Bind(3, run.started_ms);
    return Run(s, "open run");
  }

  Result<std::vector<MeteredRun>> ListOpenRuns() override {
    Statement& s = *open_runs_;
    std::vector<MeteredRun> runs;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW)
      runs.push_back(MeteredRun{s.Text(0), s.Text(1), s.Int(2)});
    s.Reset();
    if (rc != SQLITE_DONE) return SqlError(db_, "list runs");
    return runs;
  }

  Status StopRun(const std::string& workload, const std::string& product,
                 int64_t stopped_ms) override {
    Statement& s = *stop_run_;
    s.Bind(1, workload);
    s.Bind(2, product);
    s.Bind(3, stopped_ms);
    return Run(s, "stop run");
  }

  Result<std::optional<RegistrationTokenRow>> FindRegistrationToken(
      const std::string& token) override {
    Statement& s = *find_reg_token_;
    s.Bind(1, token);
    int rc = s.Step();
    if (rc == SQLITE_DONE) {
      s.Reset();
      return std::optional<RegistrationTokenRow>();
    }
    if (rc != SQLITE_ROW) {
      s.Reset();
      return SqlError(db_, "find registration token");
    }
    RegistrationTokenRow row{token, s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Int(4)};
    s.Reset();
    return std::optional<RegistrationTokenRow>(std::move(row));
  }

  Status PutRegistrationToken(const RegistrationTokenRow& row) override {
    Statement& s = *put_reg_token_;
    s.Bind(1, row.token);
    s.Bind(2, row.seller_account);
    s.Bind(3, row.product_code);
    s.Bind(4, row.customer_account);
    s.Bind(5, row.license_arn);
    s.Bind(6, row.issued_ms);
    return Run(s, "put registration token");
  }
  Result<std::vector<RegistrationTokenRow>> ListRegistrationTokens() override {
    Statement& s = *list_reg_tokens_;
    std::vector<RegistrationTokenRow> rows;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      rows.push_back(
          RegistrationTokenRow{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Int(5)});
    }
    s.Reset();
    if (rc != SQLITE_DONE) return SqlError(db_, "list registration tokens");
    return rows;
  }
  Result<bool> DeleteRegistrationToken(const std::string& token) override {
    Statement& s = *delete_reg_token_;
    s.Bind(1, token);
    METERD_RETURN_IF_ERROR(Run(s, "delete registration token"));
    return sqlite3_changes(db_) > 0;
  }
  Result<std::optional<CatalogVersion>> LatestCatalog() override {
    Statement& s = *latest_catalog_;
    int rc = s.Step();
    if (rc == SQLITE_DONE) {
      s.Reset();
      return std::optional<CatalogVersion>();
    }
    if (rc != SQLITE_ROW) {
      s.Reset();
      return SqlError(db_, "latest catalog");
    }
    CatalogVersion v{s.Int(0), s.Text(1), s.Int(2), s.Text(3)};
    s.Reset();
    return std::optional<CatalogVersion>(std::move(v));
  }
  Status PutCatalog(const CatalogVersion& v) override {
    Statement& s = *put_catalog_;
    s.Bind(1, v.version);
    s.Bind(2, v.document);
    s.Bind(3, v.changed_ms);
    s.Bind(4, v.change);
    return Run(s, "put catalog");
  }

  // Audit trail.
  Status PutAuditEvent(const AuditEventRow& row) override {
    Statement& s = *put_audit_;
    s.Bind(1, row.event_id);
    s.Bind(2, row.event_time_ms);
    s.Bind(3, row.event_source);
    s.Bind(4, row.event_name);
    s.Bind(5, row.account_id);
    s.Bind(6, row.access_key_id);
    s.Bind(7, row.error_code);
    s.Bind(8, row.event_json);
    return Run(s, "put audit event");
  }
  Result<int64_t> DeleteAuditEventsBefore(int64_t before_ms, int64_t limit) override {
    Statement& s = *delete_audit_;
    s.Bind(1, before_ms);
    s.Bind(2, limit);
    METERD_RETURN_IF_ERROR(Run(s, "delete audit events"));
    return static_cast<int64_t>(sqlite3_changes(db_));
  }

 private:
  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return Status(StatusCode::kIoError, std::string("sqlite: ") + sql + ": " + msg);
    }
    return Status::Ok();
  }
  Status Run(Statement& s, const char* what) {
    int rc = s.Step();
    s.Reset();
    return rc == SQLITE_DONE ? Status::Ok() : SqlError(db_, what);
  }
  // --- Usage rollups: the group's deltas, written at commit (one upsert per distinct key).
  Status FlushRollups() {
    Statement& s = *upsert_rollup_;
    for (const auto& [key, delta] : rollups_.deltas()) {
      s.Bind(1, static_cast<int64_t>(key.granularity));
      s.Bind(2, key.period_ms);
      s.Bind(3, key.product_code);
      s.Bind(4, key.customer_account);
      s.Bind(5, key.dimension);
      s.Bind(6, key.unit);
      s.Bind(7, key.tag_key);
      s.Bind(8, key.tag_value);
      s.Bind(9, delta.quantity);
      s.Bind(10, delta.records);
      METERD_RETURN_IF_ERROR(Run(s, "upsert rollup"));
    }
    rollups_.Clear();
    return Status::Ok();
  }
  // Upgrade from schema 1: the rollups of every ledger row, once, inside the migration.
  Status BackfillRollups() {
    sqlite3_stmt* q = nullptr;
    if (sqlite3_prepare_v2(db_,
                           "SELECT source, product_code, customer_account, dimension, "
                           "usage_hour_ms, quantity, allocations FROM usage_records",
                           -1, &q, nullptr) != SQLITE_OK) {
      return SqlError(db_, "backfill rollups");
    }
    int rc;
    UsageRow row;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
      auto text = [q](int col) {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(q, col));
        return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(q, col))) : "";
      };
      row.source = text(0);
      row.product_code = text(1);
      row.customer_account = text(2);
      row.dimension = text(3);
      row.usage_hour_ms = sqlite3_column_int64(q, 4);
      row.quantity = sqlite3_column_int64(q, 5);
      row.allocations_json = text(6);
      rollups_.Add(row);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return SqlError(db_, "backfill rollups");
    return FlushRollups();
  }

  Status Migrate() {
    METERD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status st = Exec(kSqliteSchema);
    if (st.ok()) st = Exec(kSqliteAuditSchema);
    if (st.ok()) {
      upsert_rollup_ = std::make_unique<Statement>();
      st = upsert_rollup_->Prepare(db_, kSqliteUpsertRollup);
    }
    if (st.ok()) {
      sqlite3_stmt* q = nullptr;
      sqlite3_prepare_v2(db_, "SELECT max(version) FROM schema_version", -1, &q, nullptr);
      int64_t version = 0;
      if (q && sqlite3_step(q) == SQLITE_ROW) version = sqlite3_column_int64(q, 0);
      sqlite3_finalize(q);
      if (version > kSqliteSchemaVersion) {
        st = Status(StatusCode::kCorruption, "the data dir was written by a newer meterd (schema " +
                                                 std::to_string(version) + ")");
      } else if (version < kSqliteSchemaVersion) {
        // A new database has no rows: the backfill is only work on an upgrade.
        st = BackfillRollups();
        if (st.ok()) {
          st = Exec(("INSERT INTO schema_version (version) VALUES (" +
                     std::to_string(kSqliteSchemaVersion) + ")")
                        .c_str());
        }
      }
    }
    if (!st.ok()) {
      (void)Exec("ROLLBACK");
      return st;
    }
    return Exec("COMMIT");
  }

  sqlite3* db_ = nullptr;
  sqlite3* read_db_ = nullptr;
  std::mutex read_mu_;
  std::unique_ptr<Statement> insert_usage_, find_usage_, find_token_, put_token_, find_entitlement_,
      put_entitlement_, open_run_, open_runs_, stop_run_, find_reg_token_, put_reg_token_,
      list_reg_tokens_, delete_reg_token_, latest_catalog_, put_catalog_, begin_, commit_,
      rollback_, count_;
  std::unique_ptr<Statement> put_audit_, delete_audit_;
  SqliteAuditReader audit_reader_;
  std::unique_ptr<WalCheckpointer> checkpointer_;
  // --- Usage rollups
  std::unique_ptr<Statement> upsert_rollup_;
  RollupAccumulator rollups_;
};

}  // namespace

Result<std::unique_ptr<Backend>> OpenSqliteBackend(const std::string& data_dir) {
  auto backend = std::make_unique<SqliteBackend>();
  METERD_RETURN_IF_ERROR(backend->Open(data_dir));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace meterd::store
