// libpq plumbing shared by the PostgreSQL store (postgres_store.cc) and the readers of its
// committed state (the audit reader there, reports/postgres_usage_reader.cc): owned connections
// and results, errors as Status with their SQLSTATE, array and parameter builders, and the pool
// of read connections.
#pragma once

#include <libpq-fe.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace meterd::store {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;
struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;

// What went wrong with a statement: the store error, and the SQLSTATE when the server sent one
// (empty for a lost connection).
struct PgFailure {
  Status status;
  std::string sql_state;
  bool connection_lost = false;
};

PgFailure PgConnectionFailure(PGconn* conn, const std::string& what);
PgFailure PgResultFailure(PGconn* conn, const PGresult* result, const std::string& what);

// Connects to `url` (a libpq connection URI; a 5 s connect timeout unless the URL sets one).
Result<PgConn> PgConnect(const std::string& url);

// Runs `sql` (several statements allowed, no parameters); on failure fills `failure`.
Result<PgResult> PgExec(PGconn* conn, const std::string& sql, PgFailure* failure);
// Runs one statement with text parameters ($1, $2, ...); on failure fills `failure`.
Result<PgResult> PgExecParams(PGconn* conn, const std::string& sql,
                              const std::vector<std::string>& params, PgFailure* failure);

// Column values of a result row.
std::string PgText(const PGresult* r, int row, int col);
int64_t PgInt(const PGresult* r, int row, int col);

// A PostgreSQL array literal: {"a","b\"c"} or {1,2}; one column of a multi-row statement
// (`unnest($1::TEXT[], ...)`).
class PgArray {
 public:
  void Add(std::string_view value);
  void Add(int64_t value);
  std::string Take();

 private:
  std::string text_;
};

// The parameters of a statement built at run time: Add returns the placeholder ("$3") to put in
// the SQL.
class PgParams {
 public:
  std::string Add(std::string value);
  std::string Add(int64_t value) { return Add(std::to_string(value)); }
  const std::vector<std::string>& values() const { return values_; }

 private:
  std::vector<std::string> values_;
};

// Connections for reads from any thread (CountUsageRows, audit lookups, usage reports), apart
// from the writer's: at most `max_connections` open, each used by one query at a time, so reads
// never wait for a group commit nor hold one up. Each query is one statement, so it sees one
// committed snapshot. Thread-safe.
class PgReadPool {
 public:
  explicit PgReadPool(std::string url, size_t max_connections = 4);
  PgReadPool(const PgReadPool&) = delete;
  PgReadPool& operator=(const PgReadPool&) = delete;

  // Runs one read-only statement with text parameters. A pooled connection found lost (the
  // database restarted since it was last used) is replaced and the query sent once more.
  Result<PgResult> Query(const std::string& sql, const std::vector<std::string>& params = {});

 private:
  Result<PgConn> Borrow();
  void Return(PgConn conn);

  const std::string url_;
  const size_t max_connections_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PgConn> idle_;
  size_t open_ = 0;  // idle and borrowed
};

}  // namespace meterd::store
