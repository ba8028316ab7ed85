#include "store/postgres_connection.h"

#include <cstdlib>
#include <utility>

namespace meterd::store {

namespace {

std::string Trimmed(const char* message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<PgResult> Checked(PGconn* conn, PgResult result, const std::string& what,
                         PgFailure* failure) {
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  *failure = result ? PgResultFailure(conn, result.get(), what) : PgConnectionFailure(conn, what);
  return failure->status;
}

}  // namespace

PgFailure PgConnectionFailure(PGconn* conn, const std::string& what) {
  return PgFailure{
      Status(StatusCode::kIoError, "postgresql: " + what + ": " + Trimmed(PQerrorMessage(conn))),
      "", true};
}

PgFailure PgResultFailure(PGconn* conn, const PGresult* result, const std::string& what) {
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  if (state == nullptr || PQstatus(conn) == CONNECTION_BAD) return PgConnectionFailure(conn, what);
  std::string sql_state = state;
  // XX001/XX002: the server found corrupted data.
  StatusCode code =
      sql_state == "XX001" || sql_state == "XX002" ? StatusCode::kCorruption : StatusCode::kIoError;
  return PgFailure{
      Status(code, "postgresql: " + what + ": " + Trimmed(PQresultErrorMessage(result)) +
                       " (SQLSTATE " + sql_state + ")"),
      sql_state, false};
}

Result<PgConn> PgConnect(const std::string& url) {
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

Result<PgResult> PgExec(PGconn* conn, const std::string& sql, PgFailure* failure) {
  return Checked(conn, PgResult(PQexec(conn, sql.c_str())), sql.substr(0, 60), failure);
}

Result<PgResult> PgExecParams(PGconn* conn, const std::string& sql,
                              const std::vector<std::string>& params, PgFailure* failure) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const std::string& p : params) values.push_back(p.c_str());
  PgResult result(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0));
  return Checked(conn, std::move(result), sql.substr(0, 60), failure);
}

std::string PgText(const PGresult* r, int row, int col) {
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

int64_t PgInt(const PGresult* r, int row, int col) {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

void PgArray::Add(std::string_view value) {
  text_ += text_.empty() ? "{\"" : ",\"";
  for (char c : value) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void PgArray::Add(int64_t value) {
  text_ += text_.empty() ? "{" : ",";
  text_ += std::to_string(value);
}

std::string PgArray::Take() {
  if (text_.empty()) return "{}";
  text_ += '}';
  return std::move(text_);
}

std::string PgParams::Add(std::string value) {
  values_.push_back(std::move(value));
  return "$" + std::to_string(values_.size());
}

PgReadPool::PgReadPool(std::string url, size_t max_connections)
    : url_(std::move(url)), max_connections_(max_connections) {}

Result<PgConn> PgReadPool::Borrow() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return !idle_.empty() || open_ < max_connections_; });
  if (!idle_.empty()) {
    PgConn conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  ++open_;
  lock.unlock();
  auto conn = PgConnect(url_);
  if (!conn.ok()) {
    std::lock_guard<std::mutex> relock(mu_);
    --open_;
    cv_.notify_one();
  }
  return conn;
}

void PgReadPool::Return(PgConn conn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn && PQstatus(conn.get()) == CONNECTION_OK &&
      PQtransactionStatus(conn.get()) == PQTRANS_IDLE) {
    idle_.push_back(std::move(conn));
  } else {
    // Closed by the PgConn's destructor. The idle ones went through the same server (which
    // likely restarted): they are dropped too, so that the retry gets a new connection.
    open_ -= 1 + idle_.size();
    idle_.clear();
  }
  cv_.notify_one();
}

Result<PgResult> PgReadPool::Query(const std::string& sql, const std::vector<std::string>& params) {
  for (int attempt = 0;; ++attempt) {
    auto conn = Borrow();
    if (!conn.ok()) return conn.status();
    PgFailure failure;
    auto result = PgExecParams(conn->get(), sql, params, &failure);
    const bool lost = !result.ok() && failure.connection_lost;
    Return(std::move(conn).value());
    if (result.ok() || !lost || attempt > 0) return result;
  }
}

}  // namespace meterd::store
