// A throwaway PostgreSQL server for tests: initdb in a temp dir, `postgres` on 127.0.0.1 on a
// free port (unix socket in the temp dir too), stopped by PID and removed at the end. Run as
// root (as CI does), the server runs as the `postgres` system user, since PostgreSQL refuses to
// run as root. The server dies with the test process (PR_SET_PDEATHSIG).
//
// Not thread-safe: tests create and stop servers from their own thread.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace meterd::store {

class PostgresTestServer {
 public:
  // The directory holding initdb and postgres ($METERD_PG_BINDIR, else the newest
  // /usr/lib/postgresql/*/bin); empty when PostgreSQL is not installed.
  static std::string FindBinDir();

  // initdb and start; `durable` false turns fsync off (fast, for tests that do not crash it).
  static Result<std::unique_ptr<PostgresTestServer>> Start(bool durable = false);

  // The server every test of this process shares, started on first use. nullptr when the
  // PostgreSQL binaries are absent (`why` says so); a server that fails to start is an error.
  static Result<PostgresTestServer*> Shared(std::string* why);

  ~PostgresTestServer();
  PostgresTestServer(const PostgresTestServer&) = delete;
  PostgresTestServer& operator=(const PostgresTestServer&) = delete;

  // The store a test parametrized by backend opens: `backend` itself ("sqlite", "memory"), or
  // for "postgresql" a new empty database on Shared(). "" when PostgreSQL is not installed
  // (`why` says so: skip the test).
  static Result<std::string> StoreUrlFor(const std::string& backend, std::string* why);

  // A new empty database; returns its connection URL.
  Result<std::string> CreateDatabase();
  // The URL of database `name` on this server.
  std::string Url(const std::string& name) const;

  // Stops the server (fast shutdown: connections are closed) and starts it again on the same
  // port and data dir, to test what clients do when the database goes away.
  void Stop();
  Status Restart();
  bool running() const { return pid_ > 0; }

 private:
  PostgresTestServer() = default;
  Status Launch();

  std::string bin_dir_;
  std::string dir_;  // temp dir: data/, the socket, the log
  int port_ = 0;
  bool durable_ = false;
  pid_t pid_ = -1;
  uid_t uid_ = 0;  // the user the server runs as (when we are root)
  gid_t gid_ = 0;
  bool switch_user_ = false;
  int databases_ = 0;
};

}  // namespace meterd::store
