#include "store/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace meterd::store {

namespace {

constexpr int64_t kSchemaVersion = 1;

// Each migration step is a list of statements, applied in one transaction. The SQL stays within
// what CockroachDB and YugabyteDB accept as well (README.md, "PostgreSQL backend"): plain
// tables, TEXT and BIGINT, primary and unique keys, no triggers, sequences or advisory locks.
// The ledger's key is its record id (a random UUID), not a sequence, so that inserts of several
// nodes do not all land on one hot index page or range.
const std::vector<std::vector<const char*>>& MigrationSteps() {
  static const std::vector<std::vector<const char*>> steps = {
      {
          R"SQL(CREATE TABLE IF NOT EXISTS usage_records (
            record_id TEXT PRIMARY KEY,
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
            usage_hour_ms BIGINT NOT NULL,
            timestamp_ms BIGINT NOT NULL,
            quantity BIGINT NOT NULL,
            allocations TEXT NOT NULL,
            request_id TEXT NOT NULL,
            received_ms BIGINT NOT NULL))SQL",
          R"SQL(CREATE TABLE IF NOT EXISTS client_tokens (
            caller TEXT NOT NULL,
            token TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            record_id TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            PRIMARY KEY (caller, token)))SQL",
          R"SQL(CREATE TABLE IF NOT EXISTS metered_runs (
            workload_id TEXT NOT NULL,
            product_code TEXT NOT NULL,
            started_ms BIGINT NOT NULL,
            stopped_ms BIGINT,
            PRIMARY KEY (workload_id, product_code)))SQL",
          R"SQL(CREATE TABLE IF NOT EXISTS registration_tokens (
            token TEXT PRIMARY KEY,
            seller_account TEXT NOT NULL,
            product_code TEXT NOT NULL,
            customer_account TEXT NOT NULL,
            license_arn TEXT NOT NULL,
            issued_ms BIGINT NOT NULL))SQL",
          R"SQL(CREATE TABLE IF NOT EXISTS catalog_versions (
            version BIGINT PRIMARY KEY,
            document TEXT NOT NULL,
            changed_ms BIGINT NOT NULL,
            change TEXT NOT NULL))SQL",
          R"SQL(CREATE TABLE IF NOT EXISTS workload_entitlements (
            workload_id TEXT NOT NULL,
            product_code TEXT NOT NULL,
            first_call_ms BIGINT NOT NULL,
            PRIMARY KEY (workload_id, product_code)))SQL",
      },
  };
  return steps;
}

// The statements of the request path, prepared once per connection. Sets of keys travel as
// arrays (`= ANY($1)`, `unnest`), so one statement serves one key or a whole group.
//
// The inserts of rows the group decided on because they were absent (ledger rows, ClientTokens)
// end in a check: `1 / 0` when fewer rows went in than were sent, that is when another node
// inserted one of the keys since the group read it. The division fails the statement and so the
// transaction; its SQLSTATE (22012) tells the writer to run the group again.
struct PreparedStatement {
  const char* name;
  const char* sql;
};
constexpr PreparedStatement kStatements[] = {
    {"find_usage",
     "SELECT dedup_key, record_id, quantity FROM usage_records WHERE dedup_key = ANY($1::TEXT[])"},
    {"find_tokens",
     "SELECT t.caller, t.token, t.fingerprint, t.record_id, t.created_ms FROM client_tokens t "
     "JOIN unnest($1::TEXT[], $2::TEXT[]) AS k (caller, token) "
     "ON t.caller = k.caller AND t.token = k.token"},
    {"find_entitlements",
     "SELECT e.workload_id, e.product_code FROM workload_entitlements e "
     "JOIN unnest($1::TEXT[], $2::TEXT[]) AS k (workload_id, product_code) "
     "ON e.workload_id = k.workload_id AND e.product_code = k.product_code"},
    {"find_registration_tokens",
     "SELECT token, seller_account, product_code, customer_account, license_arn, issued_ms "
     "FROM registration_tokens WHERE token = ANY($1::TEXT[])"},
    {"insert_usage",
     "WITH inserted AS (INSERT INTO usage_records (record_id, dedup_key, source, region, "
     "product_code, seller_account, customer_identifier, customer_account, license_arn, "
     "workload_id, dimension, usage_hour_ms, timestamp_ms, quantity, allocations, request_id, "
     "received_ms) SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], "
     "$5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], "
     "$12::BIGINT[], $13::BIGINT[], $14::BIGINT[], $15::TEXT[], $16::TEXT[], $17::BIGINT[]) "
     "ON CONFLICT (dedup_key) DO NOTHING RETURNING 1) "
     "SELECT 1 / (CASE WHEN count(*) = $18::BIGINT THEN 1 ELSE 0 END) FROM inserted"},
    {"insert_tokens",
     "WITH inserted AS (INSERT INTO client_tokens (caller, token, fingerprint, record_id, "
     "created_ms) SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], "
     "$5::BIGINT[]) ON CONFLICT (caller, token) DO NOTHING RETURNING 1) "
     "SELECT 1 / (CASE WHEN count(*) = $6::BIGINT THEN 1 ELSE 0 END) FROM inserted"},
    {"insert_entitlements",
     "INSERT INTO workload_entitlements (workload_id, product_code, first_call_ms) "
     "SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) "
     "ON CONFLICT (workload_id, product_code) DO NOTHING"},
    {"open_runs",
     "INSERT INTO metered_runs (workload_id, product_code, started_ms) "
     "SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) "
     "ON CONFLICT (workload_id, product_code) DO NOTHING"},
    {"stop_run",
     "UPDATE metered_runs SET stopped_ms = $3::BIGINT WHERE workload_id = $1::TEXT AND "
     "product_code = $2::TEXT AND stopped_ms IS NULL"},
    {"put_registration_tokens",
     "INSERT INTO registration_tokens (token, seller_account, product_code, customer_account, "
     "license_arn, issued_ms) SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], "
     "$4::TEXT[], $5::TEXT[], $6::BIGINT[]) ON CONFLICT (token) DO NOTHING"},
    {"delete_registration_token",
     "DELETE FROM registration_tokens WHERE token = $1::TEXT RETURNING token"},
    {"list_registration_tokens",
     "SELECT token, seller_account, product_code, customer_account, license_arn, issued_ms "
     "FROM registration_tokens ORDER BY issued_ms, token"},
    {"list_open_runs",
     "SELECT workload_id, product_code, started_ms FROM metered_runs WHERE stopped_ms IS NULL "
     "ORDER BY workload_id, product_code"},
    {"latest_catalog",
     "SELECT version, document, changed_ms, change FROM catalog_versions ORDER BY version DESC "
     "LIMIT 1"},
    // A plain INSERT: a second node storing the same version fails on the key (23505), and the
    // re-run group then sees the other node's version and refuses the change.
    {"put_catalog",
     "INSERT INTO catalog_versions (version, document, changed_ms, change) "
     "VALUES ($1::BIGINT, $2::TEXT, $3::BIGINT, $4::TEXT)"},
    {"begin", "BEGIN"},
    {"commit", "COMMIT"},
    {"count_usage", "SELECT count(*) FROM usage_records"},
};

// SQLSTATEs that running the group again resolves.
bool IsRetryableSqlState(std::string_view state) {
  return state == "23505"      // unique_violation: another node stored the key first
         || state == "22012"   // division_by_zero: the lost-race check of the inserts above
         || state == "40001"   // serialization_failure
         || state == "40P01"   // deadlock_detected
         || state == "42P07"   // duplicate_table: CREATE TABLE IF NOT EXISTS raced (migration)
         || state == "40003";  // statement_completion_unknown (CockroachDB)
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;
struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, ConnDeleter>;

std::string Trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// What went wrong with a statement: the store error, and the SQLSTATE when the server sent one
// (empty for a lost connection).
struct PgFailure {
  Status status;
  std::string sql_state;
  bool connection_lost = false;
};

PgFailure ConnectionFailure(PGconn* conn, const std::string& what) {
  return PgFailure{
      Status(StatusCode::kIoError, "postgresql: " + what + ": " + Trimmed(PQerrorMessage(conn))),
      "", true};
}

PgFailure ResultFailure(PGconn* conn, const PGresult* result, const std::string& what) {
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (state == nullptr || PQstatus(conn) == CONNECTION_BAD) return ConnectionFailure(conn, what);
  std::string sql_state = state;
  // XX001/XX002: the server found corrupted data.
  StatusCode code =
      sql_state == "XX001" || sql_state == "XX002" ? StatusCode::kCorruption : StatusCode::kIoError;
  return PgFailure{
      Status(code, "postgresql: " + what + ": " + Trimmed(PQresultErrorMessage(result)) +
                       " (SQLSTATE " + sql_state + ")"),
      sql_state, false};
}

// One call of a prepared statement with text parameters.
struct Call {
  const char* statement;
  std::vector<std::string> params;
};

// Sends `calls` in one pipeline (one round trip) and returns their results, in order. On
// failure, `failure` holds the first error; the calls after it did not run.
struct PipelineOutcome {
  std::vector<PgResult> results;
  std::optional<PgFailure> failure;
};

PipelineOutcome RunPipeline(PGconn* conn, const std::vector<Call>& calls) {
  PipelineOutcome out;
  if (conn == nullptr) {
    out.failure = PgFailure{Status(StatusCode::kIoError, "postgresql: not connected"), "", true};
    return out;
  }
  auto lost = [&](const std::string& what) {
    out.failure = ConnectionFailure(conn, what);
    return std::move(out);
  };
  if (PQenterPipelineMode(conn) != 1) return lost("entering pipeline mode");
  std::vector<const char*> values;
  for (const Call& call : calls) {
    values.clear();
    for (const std::string& p : call.params) values.push_back(p.c_str());
    if (PQsendQueryPrepared(conn, call.statement, static_cast<int>(values.size()), values.data(),
                            nullptr, nullptr, 0) != 1) {
      return lost(std::string("sending ") + call.statement);
    }
  }
  if (PQpipelineSync(conn) != 1) return lost("sending the pipeline");
  while (PQflush(conn) == 1) {
  }
  out.results.resize(calls.size());
  size_t index = 0;  // the call whose results come next; a NULL result ends one call's results
  int nulls_in_a_row = 0;
  while (true) {
    PgResult result(PQgetResult(conn));
    if (PQstatus(conn) == CONNECTION_BAD) {
      return lost(index < calls.size() ? calls[index].statement : "sync");
    }
    if (!result) {
      if (++nulls_in_a_row > 2) return lost("reading the pipeline");
      ++index;
      continue;
    }
    nulls_in_a_row = 0;
    ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_PIPELINE_SYNC) break;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      if (index < out.results.size()) out.results[index] = std::move(result);
    } else if (status != PGRES_PIPELINE_ABORTED && !out.failure) {
      out.failure = ResultFailure(conn, result.get(),
                                  index < calls.size() ? calls[index].statement : "pipeline");
    }
  }
  if (PQexitPipelineMode(conn) != 1) return lost("leaving pipeline mode");
  return out;
}

// A PostgreSQL array literal of text: {"a","b\"c"}.
class TextArray {
 public:
  void Add(std::string_view value) {
    text_ += text_.empty() ? "{\"" : ",\"";
    for (char c : value) {
      if (c == '"' || c == '\\') text_ += '\\';
      text_ += c;
    }
    text_ += '"';
  }
  void Add(int64_t value) {
    text_ += text_.empty() ? "{" : ",";
    text_ += std::to_string(value);
  }
  std::string Take() {
    if (text_.empty()) return "{}";
    text_ += '}';
    return std::move(text_);
  }

 private:
  std::string text_;
};

std::string Text(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}
int64_t Int(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

using KeyPair = std::pair<std::string, std::string>;

Result<PgConn> Connect(const std::string& url) {
  // Defaults first: the URL's own parameters (expanded from dbname) override them.
  const char* keywords[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"5", "meterd", url.c_str(), nullptr};
  PgConn conn(PQconnectdbParams(keywords, values, 1));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    return Status(
        StatusCode::kIoError,
        "postgresql: connect: " + Trimmed(conn ? PQerrorMessage(conn.get()) : "no memory"));
  }
  // NOTICEs ("relation already exists, skipping") are not errors; errors come with results.
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  return conn;
}

Result<PgResult> Exec(PGconn* conn, const std::string& sql, PgFailure* failure) {
  PgResult result(PQexec(conn, sql.c_str()));
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  *failure = result ? ResultFailure(conn, result.get(), sql.substr(0, 60))
                    : ConnectionFailure(conn, sql.substr(0, 60));
  return failure->status;
}

Status PrepareStatements(PGconn* conn) {
  for (const PreparedStatement& s : kStatements) {
    PgResult result(PQprepare(conn, s.name, s.sql, 0, nullptr));
    if (!result || PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
      return (result ? ResultFailure(conn, result.get(), std::string("prepare ") + s.name)
                     : ConnectionFailure(conn, std::string("prepare ") + s.name))
          .status;
    }
  }
  return Status::Ok();
}

// One attempt at bringing the schema to kSchemaVersion. The version row is locked (SELECT ...
// FOR UPDATE) for the whole migration, so of several nodes starting at once one migrates and
// the others wait for it and then find nothing to do.
Status TryMigrate(PGconn* conn, PgFailure* failure) {
  auto exec = [&](const std::string& sql) { return Exec(conn, sql, failure); };
  METERD_RETURN_IF_ERROR(
      exec("CREATE TABLE IF NOT EXISTS schema_version (id INTEGER PRIMARY KEY, version BIGINT "
           "NOT NULL)")
          .status());
  METERD_RETURN_IF_ERROR(
      exec("INSERT INTO schema_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
          .status());
  METERD_RETURN_IF_ERROR(exec("BEGIN").status());
  auto locked = exec("SELECT version FROM schema_version WHERE id = 1 FOR UPDATE");
  if (!locked.ok()) return locked.status();
  const int64_t version = PQntuples(locked->get()) == 1 ? Int(locked->get(), 0, 0) : 0;
  if (version > kSchemaVersion) {
    return Status(StatusCode::kCorruption, "the database was written by a newer meterd (schema " +
                                               std::to_string(version) + ")");
  }
  const auto& steps = MigrationSteps();
  for (int64_t step = version; step < kSchemaVersion; ++step) {
    for (const char* sql : steps[static_cast<size_t>(step)]) {
      METERD_RETURN_IF_ERROR(exec(sql).status());
    }
  }
  if (version < kSchemaVersion) {
    METERD_RETURN_IF_ERROR(exec("UPDATE schema_version SET version = " +
                                std::to_string(kSchemaVersion) + " WHERE id = 1")
                               .status());
  }
  return exec("COMMIT").status();
}

Status Migrate(PGconn* conn) {
  for (int attempt = 1;; ++attempt) {
    PgFailure failure;
    Status st = TryMigrate(conn, &failure);
    if (st.ok()) return st;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) PgResult(PQexec(conn, "ROLLBACK"));
    // Concurrent CREATE TABLE IF NOT EXISTS can fail in PostgreSQL (a catalog unique key); the
    // winner's tables are there on the next attempt.
    const bool raced = IsRetryableSqlState(failure.sql_state) ||
                       failure.sql_state == "42710";  // duplicate_object (the table's type)
    if (!raced || attempt >= 20) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(20 * attempt));
  }
}

class PostgresBackend final : public Backend, public Transaction {
 public:
  explicit PostgresBackend(std::string url) : url_(std::move(url)) {}

  Status Open() {
    auto conn = Connect(url_);
    if (!conn.ok()) return conn.status();
    METERD_RETURN_IF_ERROR(Migrate(conn->get()));
    METERD_RETURN_IF_ERROR(PrepareStatements(conn->get()));
    writer_ = std::move(conn).value();
    return Status::Ok();
  }

  // Backend
  Status Begin() override {
    usage_.clear();
    tokens_.clear();
    entitlements_.clear();
    registration_tokens_.clear();
    ClearWrites();
    in_transaction_ = false;
    sent_writes_ = false;
    retry_group_ = false;
    reconnected_ = false;
    if (!writer_ || PQstatus(writer_.get()) != CONNECTION_OK) {
      writer_.reset();
      auto conn = Connect(url_);
      if (!conn.ok()) return conn.status();
      METERD_RETURN_IF_ERROR(PrepareStatements(conn->get()));
      writer_ = std::move(conn).value();
      reconnected_ = true;
    }
    return Status::Ok();
  }

  Status Prefetch(const std::vector<const ReadKeys*>& reads) override {
    std::vector<std::string> dedup_keys, registration_tokens;
    std::vector<KeyPair> client_tokens, entitlements;
    for (const ReadKeys* r : reads) {
      dedup_keys.insert(dedup_keys.end(), r->dedup_keys.begin(), r->dedup_keys.end());
      client_tokens.insert(client_tokens.end(), r->client_tokens.begin(), r->client_tokens.end());
      entitlements.insert(entitlements.end(), r->entitlements.begin(), r->entitlements.end());
      registration_tokens.insert(registration_tokens.end(), r->registration_tokens.begin(),
                                 r->registration_tokens.end());
    }
    return Fetch(dedup_keys, client_tokens, entitlements, registration_tokens);
  }

  Transaction& txn() override { return *this; }

  Status Commit() override {
    if (!in_transaction_ && !HasWrites()) return Status::Ok();  // read only: nothing to commit
    std::vector<Call> calls = TakeWrites();
    if (!in_transaction_) calls.insert(calls.begin(), Call{"begin", {}});
    calls.push_back(Call{"commit", {}});
    sent_writes_ = true;
    in_transaction_ = true;
    PipelineOutcome out = RunPipeline(writer_.get(), calls);
    if (out.failure) return Fail(*out.failure);
    // A COMMIT of a transaction that had failed answers ROLLBACK instead of failing.
    const char* tag = out.results.back() ? PQcmdStatus(out.results.back().get()) : "";
    if (std::string_view(tag) != "COMMIT") {
      return Status(StatusCode::kIoError, std::string("postgresql: commit answered ") + tag);
    }
    in_transaction_ = false;
    return Status::Ok();
  }

  void Rollback() override {
    ClearWrites();
    if (!writer_) return;
    if (PQstatus(writer_.get()) != CONNECTION_OK) {
      writer_.reset();  // reconnect on the next group
      return;
    }
    if (PQtransactionStatus(writer_.get()) != PQTRANS_IDLE) {
      PgResult result(PQexec(writer_.get(), "ROLLBACK"));
      if (!result || PQresultStatus(result.get()) != PGRES_COMMAND_OK) writer_.reset();
    }
    in_transaction_ = false;
  }

  bool ShouldRetryGroup() const override { return retry_group_; }

  Result<int64_t> CountUsageRows() override {
    PgConn conn;
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (!pool_.empty()) {
        conn = std::move(pool_.back());
        pool_.pop_back();
      }
    }
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
      auto opened = Connect(url_);
      if (!opened.ok()) return opened.status();
      conn = std::move(opened).value();
    }
    PgFailure failure;
    auto result = Exec(conn.get(), "SELECT count(*) FROM usage_records", &failure);
    if (!result.ok()) return result.status();
    const int64_t n = Int(result->get(), 0, 0);
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (pool_.size() < kMaxPooledReaders) pool_.push_back(std::move(conn));
    return n;
  }

  // Transaction
  Result<std::optional<ExistingUsage>> InsertUsageIfAbsent(const UsageRow& row) override {
    auto existing = FindUsage(row.dedup_key);
    if (!existing.ok() || existing->has_value()) return existing;
    usage_[row.dedup_key] = ExistingUsage{row.record_id, row.quantity};
    usage_writes_.push_back(row);
    return std::optional<ExistingUsage>();
  }

  Result<std::optional<ExistingUsage>> FindUsage(const std::string& dedup_key) override {
    if (!usage_.count(dedup_key)) METERD_RETURN_IF_ERROR(Fetch({dedup_key}, {}, {}, {}));
    return usage_.at(dedup_key);
  }

  Result<std::optional<ClientTokenEntry>> FindClientToken(const std::string& caller,
                                                          const std::string& token) override {
    KeyPair key(caller, token);
    if (!tokens_.count(key)) METERD_RETURN_IF_ERROR(Fetch({}, {key}, {}, {}));
    return tokens_.at(key);
  }

  Status PutClientToken(const ClientTokenEntry& entry) override {
    tokens_[KeyPair(entry.caller, entry.token)] = entry;
    token_writes_.push_back(entry);
    return Status::Ok();
  }

  Result<bool> HasEntitlement(const std::string& workload, const std::string& product) override {
    KeyPair key(workload, product);
    if (!entitlements_.count(key)) METERD_RETURN_IF_ERROR(Fetch({}, {}, {key}, {}));
    return entitlements_.at(key);
  }

  Status PutEntitlement(const std::string& workload, const std::string& product,
                        int64_t now_ms) override {
    KeyPair key(workload, product);
    auto known = entitlements_.find(key);
    if (known != entitlements_.end() && known->second) return Status::Ok();  // nothing to add
    entitlements_[key] = true;
    entitlement_writes_.push_back({std::move(key), now_ms});
    return Status::Ok();
  }

  Status OpenRunIfAbsent(const MeteredRun& run) override {
    if (opened_runs_.insert(KeyPair(run.workload_id, run.product_code)).second) {
      run_writes_.push_back(run);
    }
    return Status::Ok();
  }

  Result<std::vector<MeteredRun>> ListOpenRuns() override {
    auto result = RunInTransaction(Call{"list_open_runs", {}});
    if (!result.ok()) return result.status();
    const PGresult* r = result->get();
    std::vector<MeteredRun> runs;
    runs.reserve(static_cast<size_t>(PQntuples(r)));
    for (int i = 0; i < PQntuples(r); ++i) {
      runs.push_back(MeteredRun{Text(r, i, 0), Text(r, i, 1), Int(r, i, 2)});
    }
    return runs;
  }

  Status StopRun(const std::string& workload, const std::string& product,
                 int64_t stopped_ms) override {
    other_writes_.push_back(Call{"stop_run", {workload, product, std::to_string(stopped_ms)}});
    return Status::Ok();
  }

  Result<std::optional<RegistrationTokenRow>> FindRegistrationToken(
      const std::string& token) override {
    if (!registration_tokens_.count(token)) METERD_RETURN_IF_ERROR(Fetch({}, {}, {}, {token}));
    return registration_tokens_.at(token);
  }

  Status PutRegistrationToken(const RegistrationTokenRow& row) override {
    auto existing = FindRegistrationToken(row.token);
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) return Status::Ok();  // the first issue time wins
    registration_tokens_[row.token] = row;
    registration_token_writes_.push_back(row);
    return Status::Ok();
  }

  Result<std::vector<RegistrationTokenRow>> ListRegistrationTokens() override {
    auto result = RunInTransaction(Call{"list_registration_tokens", {}});
    if (!result.ok()) return result.status();
    const PGresult* r = result->get();
    std::vector<RegistrationTokenRow> rows;
    rows.reserve(static_cast<size_t>(PQntuples(r)));
    for (int i = 0; i < PQntuples(r); ++i) rows.push_back(RegistrationTokenAt(r, i));
    return rows;
  }

  Result<bool> DeleteRegistrationToken(const std::string& token) override {
    auto result = RunInTransaction(Call{"delete_registration_token", {token}}, true);
    if (!result.ok()) return result.status();
    registration_tokens_[token] = std::nullopt;
    return PQntuples(result->get()) > 0;
  }

  Result<std::optional<CatalogVersion>> LatestCatalog() override {
    auto result = RunInTransaction(Call{"latest_catalog", {}});
    if (!result.ok()) return result.status();
    const PGresult* r = result->get();
    if (PQntuples(r) == 0) return std::optional<CatalogVersion>();
    return std::optional<CatalogVersion>(
        CatalogVersion{Int(r, 0, 0), Text(r, 0, 1), Int(r, 0, 2), Text(r, 0, 3)});
  }

  Status PutCatalog(const CatalogVersion& v) override {
    other_writes_.push_back(
        Call{"put_catalog",
             {std::to_string(v.version), v.document, std::to_string(v.changed_ms), v.change}});
    return Status::Ok();
  }

  // Merge step: the audit trail comes to this backend in the next commit.
  Status PutAuditEvent(const AuditEventRow&) override { return Status::Ok(); }
  Result<int64_t> DeleteAuditEventsBefore(int64_t, int64_t) override { return int64_t{0}; }
  AuditReader& audit_reader() override { return unimplemented_audit_; }

 private:
  static constexpr size_t kMaxPooledReaders = 4;

  static RegistrationTokenRow RegistrationTokenAt(const PGresult* r, int i) {
    return RegistrationTokenRow{Text(r, i, 0), Text(r, i, 1), Text(r, i, 2),
                                Text(r, i, 3), Text(r, i, 4), Int(r, i, 5)};
  }

  // Records a failed statement: whether the group should run again, and drops a connection
  // that is gone (Begin opens a new one).
  Status Fail(const PgFailure& failure) {
    if (failure.connection_lost) {
      // Nothing of this attempt can have committed unless writes were sent: then the outcome
      // is unknown and the group fails (its clients retry; dedup keys make that safe).
      // Otherwise one more attempt on a fresh connection (the database may just have
      // restarted, leaving this connection stale).
      retry_group_ = !sent_writes_ && !reconnected_;
      writer_.reset();
    } else {
      retry_group_ = IsRetryableSqlState(failure.sql_state);
    }
    return failure.status;
  }

  // Reads the given keys at once (one round trip) into the group's snapshot. A key without a
  // row is remembered as absent.
  Status Fetch(const std::vector<std::string>& dedup_keys, const std::vector<KeyPair>& tokens,
               const std::vector<KeyPair>& entitlements,
               const std::vector<std::string>& registration_tokens) {
    std::vector<Call> calls;
    std::vector<int> kinds;
    auto pair_arrays = [](const std::vector<KeyPair>& keys) {
      TextArray first, second;
      for (const auto& [a, b] : keys) {
        first.Add(a);
        second.Add(b);
      }
      return std::vector<std::string>{first.Take(), second.Take()};
    };
    auto text_array = [](const std::vector<std::string>& keys) {
      TextArray array;
      for (const auto& k : keys) array.Add(k);
      return std::vector<std::string>{array.Take()};
    };
    if (!dedup_keys.empty()) {
      calls.push_back(Call{"find_usage", text_array(dedup_keys)});
      kinds.push_back(0);
    }
    if (!tokens.empty()) {
      calls.push_back(Call{"find_tokens", pair_arrays(tokens)});
      kinds.push_back(1);
    }
    if (!entitlements.empty()) {
      calls.push_back(Call{"find_entitlements", pair_arrays(entitlements)});
      kinds.push_back(2);
    }
    if (!registration_tokens.empty()) {
      calls.push_back(Call{"find_registration_tokens", text_array(registration_tokens)});
      kinds.push_back(3);
    }
    if (calls.empty()) return Status::Ok();
    PipelineOutcome out = RunPipeline(writer_.get(), calls);
    if (out.failure) return Fail(*out.failure);
    // Absent until a row says otherwise; keys the group already knows keep what it knows (its
    // own writes included).
    for (const auto& k : dedup_keys) usage_.try_emplace(k, std::nullopt);
    for (const auto& k : tokens) tokens_.try_emplace(k, std::nullopt);
    for (const auto& k : entitlements) entitlements_.try_emplace(k, false);
    for (const auto& k : registration_tokens) registration_tokens_.try_emplace(k, std::nullopt);
    for (size_t c = 0; c < calls.size(); ++c) {
      const PGresult* r = out.results[c].get();
      for (int i = 0; r != nullptr && i < PQntuples(r); ++i) {
        switch (kinds[c]) {
          case 0:
            usage_[Text(r, i, 0)] = ExistingUsage{Text(r, i, 1), Int(r, i, 2)};
            break;
          case 1:
            tokens_[KeyPair(Text(r, i, 0), Text(r, i, 1))] = ClientTokenEntry{
                Text(r, i, 0), Text(r, i, 1), Text(r, i, 2), Text(r, i, 3), Int(r, i, 4)};
            break;
          case 2:
            entitlements_[KeyPair(Text(r, i, 0), Text(r, i, 1))] = true;
            break;
          default:
            registration_tokens_[Text(r, i, 0)] = RegistrationTokenAt(r, i);
            break;
        }
      }
    }
    return Status::Ok();
  }

  // Runs `call` (a write when `writes`) inside the group's transaction, after the writes
  // buffered so far (which it may need to see), all in one round trip.
  Result<PgResult> RunInTransaction(Call call, bool writes = false) {
    std::vector<Call> calls = TakeWrites();
    // From the first write on, a lost connection leaves the outcome to the server.
    if (writes || !calls.empty()) sent_writes_ = true;
    if (!in_transaction_) calls.insert(calls.begin(), Call{"begin", {}});
    calls.push_back(std::move(call));
    in_transaction_ = true;
    PipelineOutcome out = RunPipeline(writer_.get(), calls);
    if (out.failure) return Fail(*out.failure);
    return std::move(out.results.back());
  }

  bool HasWrites() const {
    return !usage_writes_.empty() || !token_writes_.empty() || !entitlement_writes_.empty() ||
           !run_writes_.empty() || !registration_token_writes_.empty() || !other_writes_.empty();
  }

  void ClearWrites() {
    usage_writes_.clear();
    token_writes_.clear();
    entitlement_writes_.clear();
    run_writes_.clear();
    opened_runs_.clear();
    registration_token_writes_.clear();
    other_writes_.clear();
  }

  // The buffered writes as multi-row statements, in a fixed order of tables and, within one
  // table, in key order, so that two nodes inserting overlapping keys wait for each other
  // instead of deadlocking.
  std::vector<Call> TakeWrites() {
    std::vector<Call> calls;
    if (!usage_writes_.empty()) {
      std::sort(usage_writes_.begin(), usage_writes_.end(),
                [](const UsageRow& a, const UsageRow& b) { return a.dedup_key < b.dedup_key; });
      TextArray cols[17];
      for (const UsageRow& r : usage_writes_) {
        cols[0].Add(r.record_id);
        cols[1].Add(r.dedup_key);
        cols[2].Add(r.source);
        cols[3].Add(r.region);
        cols[4].Add(r.product_code);
        cols[5].Add(r.seller_account);
        cols[6].Add(r.customer_identifier);
        cols[7].Add(r.customer_account);
        cols[8].Add(r.license_arn);
        cols[9].Add(r.workload_id);
        cols[10].Add(r.dimension);
        cols[11].Add(r.usage_hour_ms);
        cols[12].Add(r.timestamp_ms);
        cols[13].Add(r.quantity);
        cols[14].Add(r.allocations_json);
        cols[15].Add(r.request_id);
        cols[16].Add(r.received_ms);
      }
      Call call{"insert_usage", {}};
      for (TextArray& col : cols) call.params.push_back(col.Take());
      call.params.push_back(std::to_string(usage_writes_.size()));
      calls.push_back(std::move(call));
    }
    if (!token_writes_.empty()) {
      std::sort(token_writes_.begin(), token_writes_.end(),
                [](const ClientTokenEntry& a, const ClientTokenEntry& b) {
                  return std::tie(a.caller, a.token) < std::tie(b.caller, b.token);
                });
      TextArray cols[5];
      for (const ClientTokenEntry& e : token_writes_) {
        cols[0].Add(e.caller);
        cols[1].Add(e.token);
        cols[2].Add(e.fingerprint);
        cols[3].Add(e.record_id);
        cols[4].Add(e.created_ms);
      }
      Call call{"insert_tokens", {}};
      for (TextArray& col : cols) call.params.push_back(col.Take());
      call.params.push_back(std::to_string(token_writes_.size()));
      calls.push_back(std::move(call));
    }
    if (!entitlement_writes_.empty()) {
      std::sort(entitlement_writes_.begin(), entitlement_writes_.end());
      TextArray cols[3];
      for (const auto& [key, now_ms] : entitlement_writes_) {
        cols[0].Add(key.first);
        cols[1].Add(key.second);
        cols[2].Add(now_ms);
      }
      Call call{"insert_entitlements", {}};
      for (TextArray& col : cols) call.params.push_back(col.Take());
      calls.push_back(std::move(call));
    }
    if (!run_writes_.empty()) {
      TextArray cols[3];
      for (const MeteredRun& run : run_writes_) {
        cols[0].Add(run.workload_id);
        cols[1].Add(run.product_code);
        cols[2].Add(run.started_ms);
      }
      Call call{"open_runs", {}};
      for (TextArray& col : cols) call.params.push_back(col.Take());
      calls.push_back(std::move(call));
    }
    if (!registration_token_writes_.empty()) {
      TextArray cols[6];
      for (const RegistrationTokenRow& row : registration_token_writes_) {
        cols[0].Add(row.token);
        cols[1].Add(row.seller_account);
        cols[2].Add(row.product_code);
        cols[3].Add(row.customer_account);
        cols[4].Add(row.license_arn);
        cols[5].Add(row.issued_ms);
      }
      Call call{"put_registration_tokens", {}};
      for (TextArray& col : cols) call.params.push_back(col.Take());
      calls.push_back(std::move(call));
    }
    for (Call& call : other_writes_) calls.push_back(std::move(call));
    ClearWrites();
    return calls;
  }

  const std::string url_;
  PgConn writer_;  // the writer thread's connection; null after a lost connection
  bool in_transaction_ = false;
  bool sent_writes_ = false;  // this attempt sent statements that may commit
  bool retry_group_ = false;
  bool reconnected_ = false;  // Begin opened a new connection for this attempt

  // The group's snapshot: what the database held when the group read a key, with the group's
  // own writes applied. std::nullopt (false) = read and absent.
  std::map<std::string, std::optional<ExistingUsage>> usage_;
  std::map<KeyPair, std::optional<ClientTokenEntry>> tokens_;
  std::map<KeyPair, bool> entitlements_;
  std::map<std::string, std::optional<RegistrationTokenRow>> registration_tokens_;

  // The group's writes, sent at the commit (or before a read inside the transaction).
  std::vector<UsageRow> usage_writes_;
  std::vector<ClientTokenEntry> token_writes_;
  std::vector<std::pair<KeyPair, int64_t>> entitlement_writes_;
  std::vector<MeteredRun> run_writes_;
  std::set<KeyPair> opened_runs_;
  std::vector<RegistrationTokenRow> registration_token_writes_;
  std::vector<Call> other_writes_;  // stops of runs, catalog versions: in the order made

  std::mutex pool_mu_;
  std::vector<PgConn> pool_;  // idle reader connections (CountUsageRows)
  class UnimplementedAuditReader final : public AuditReader {
    Result<AuditPage> LookupAuditEvents(const AuditQuery&) override {
      return Status(StatusCode::kIoError, "postgresql: no audit trail yet");
    }
  } unimplemented_audit_;
};

}  // namespace

bool IsPostgresUrl(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

Result<std::unique_ptr<Backend>> OpenPostgresBackend(const std::string& url) {
  auto backend = std::make_unique<PostgresBackend>(url);
  METERD_RETURN_IF_ERROR(backend->Open());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace meterd::store
