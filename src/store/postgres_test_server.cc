#include "store/postgres_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

namespace meterd::store {

namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// fork + exec of `argv`, as `uid`/`gid` when `switch_user`, output appended to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log, bool switch_user,
            uid_t uid, gid_t gid) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls from here on.
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  if (switch_user && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
    _exit(126);
  // After the user switch, which clears it: the server goes when the test process goes.
  prctl(PR_SET_PDEATHSIG, SIGQUIT);
  if (getppid() != parent) _exit(1);
  execv(args[0], args.data());
  _exit(127);
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string ReadLog(const std::string& path) {
  std::string text;
  if (FILE* f = std::fopen(path.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

}  // namespace

std::string PostgresTestServer::FindBinDir() {
  if (const char* env = std::getenv("METERD_PG_BINDIR"); env != nullptr && *env) return env;
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = entry.path().string() + "/bin";
    if (access((bin + "/initdb").c_str(), X_OK) != 0 ||
        access((bin + "/postgres").c_str(), X_OK) != 0) {
      continue;
    }
    int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version) {
      best_version = version;
      best = bin;
    }
  }
  return best;
}

Result<std::unique_ptr<PostgresTestServer>> PostgresTestServer::Start(bool durable) {
  std::unique_ptr<PostgresTestServer> server(new PostgresTestServer());
  server->bin_dir_ = FindBinDir();
  if (server->bin_dir_.empty()) return Status(StatusCode::kNotFound, "no PostgreSQL binaries");
  server->durable_ = durable;
  char tmpl[] = "/tmp/meterd-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Status(StatusCode::kIoError, "mkdtemp failed");
  server->dir_ = tmpl;
  if (geteuid() == 0) {
    // PostgreSQL refuses to run as root: the server runs as the postgres system user.
    passwd* pw = getpwnam("postgres");
    if (pw == nullptr) return Status(StatusCode::kNotFound, "running as root, no postgres user");
    server->switch_user_ = true;
    server->uid_ = pw->pw_uid;
    server->gid_ = pw->pw_gid;
    if (chown(tmpl, pw->pw_uid, pw->pw_gid) != 0) {
      return Status(StatusCode::kIoError, "chown of the temp dir failed");
    }
  }
  const std::string log = server->dir_ + "/initdb.log";
  pid_t pid = Spawn({server->bin_dir_ + "/initdb", "-D", server->dir_ + "/data", "-U", "postgres",
                     "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                    log, server->switch_user_, server->uid_, server->gid_);
  if (pid < 0 || WaitExit(pid) != 0) {
    return Status(StatusCode::kIoError, "initdb failed: " + ReadLog(log));
  }
  server->port_ = FreePort();
  METERD_RETURN_IF_ERROR(server->Launch());
  return server;
}

Result<PostgresTestServer*> PostgresTestServer::Shared(std::string* why) {
  static std::unique_ptr<PostgresTestServer> shared;
  static Status failed;
  if (shared) return shared.get();
  if (!failed.ok()) return failed;
  if (FindBinDir().empty()) {
    *why =
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres; "
        "scripts/install-deps.sh installs it)";
    return static_cast<PostgresTestServer*>(nullptr);
  }
  auto started = Start(false);
  if (!started.ok()) {
    failed = started.status();
    return failed;
  }
  shared = std::move(started).value();
  return shared.get();
}

Result<std::string> PostgresTestServer::StoreUrlFor(const std::string& backend, std::string* why) {
  if (backend != "postgresql") return backend;
  auto server = Shared(why);
  if (!server.ok()) return server.status();
  if (*server == nullptr) return std::string();
  return (*server)->CreateDatabase();
}

Status PostgresTestServer::Launch() {
  const std::string log = dir_ + "/postgres.log";
  std::vector<std::string> argv = {bin_dir_ + "/postgres",
                                   "-D",
                                   dir_ + "/data",
                                   "-p",
                                   std::to_string(port_),
                                   "-k",
                                   dir_,
                                   "-c",
                                   "listen_addresses=127.0.0.1",
                                   "-c",
                                   "max_connections=200"};
  if (!durable_) {
    for (const char* setting : {"fsync=off", "full_page_writes=off", "synchronous_commit=off"}) {
      argv.push_back("-c");
      argv.push_back(setting);
    }
  }
  pid_ = Spawn(argv, log, switch_user_, uid_, gid_);
  if (pid_ < 0) return Status(StatusCode::kIoError, "fork failed");
  const std::string url = Url("postgres");
  for (int i = 0; i < 600; ++i) {
    if (PQping(url.c_str()) == PQPING_OK) return Status::Ok();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status(StatusCode::kIoError, "postgres exited: " + ReadLog(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Stop();
  return Status(StatusCode::kIoError, "postgres did not start in 30 s: " + ReadLog(log));
}

void PostgresTestServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGINT);  // fast shutdown: clients are disconnected, the data is kept
  for (int i = 0; i < 600; ++i) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  WaitExit(pid_);
  pid_ = -1;
}

Status PostgresTestServer::Restart() {
  Stop();
  return Launch();
}

PostgresTestServer::~PostgresTestServer() {
  Stop();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string PostgresTestServer::Url(const std::string& name) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + name;
}

Result<std::string> PostgresTestServer::CreateDatabase() {
  const std::string name =
      "meterd_test_" + std::to_string(getpid()) + "_" + std::to_string(++databases_);
  PGconn* conn = PQconnectdb(Url("postgres").c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* r = PQexec(conn, ("CREATE DATABASE " + name).c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  if (!error.empty()) return Status(StatusCode::kIoError, "create database: " + error);
  return Url(name);
}

}  // namespace meterd::store
