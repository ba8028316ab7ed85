// meterd: the AWS Marketplace Metering Service, self-hosted.
//
//   meterd serve --listen 127.0.0.1:8080 --data ./data --catalog catalog.json
//
// This file wires the components together (the factory role); CLI11 is parsed only here.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "admin/admin_handler.h"
#include "admin/console_handler.h"
#include "audit/audit_trail.h"
#include "auth/sigv4.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/time_util.h"
#include "control/control_plane.h"
#include "http/http_server.h"
#include "json/json.h"
#include "keys/jwt.h"
#include "keys/signing_keys.h"
#include "metering/faults.h"
#include "metering/service.h"
#include "metering/throttle.h"
#include "model/service_model.h"
#include "observability/access_log.h"
#include "observability/log.h"
#include "observability/meterd_metrics.h"
#include "observability/ops_endpoints.h"
#include "protocol/api_handler.h"
#include "store/ledger_dump.h"
#include "store/postgres_store.h"
#include "store/store.h"

namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string admin_listen = "127.0.0.1:8081";
  std::string admin_token_file;  // default: DATA/admin-token
  std::string console_dir;       // default: <bindir>/../console; off: no console
  std::string data_dir = "./data";
  std::string catalog_path;
  std::string store = "embedded";
  std::string clock = "system";
  std::string clock_start;
  int threads = 0;
  int idle_timeout_seconds = 60;
  int request_timeout_seconds = 30;
  int max_connections = 10000;
  double batch_window_hours = 24;
  double batch_month_grace_hours = 6;
  double meter_usage_window_hours = 6;
  double future_skew_minutes = 5;
  double token_ttl_hours = 4;
  int task_metering_interval_seconds = 10;
  std::string throttle = "on";
  meterd::metering::ThrottleSettings throttle_rates;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string access_log = "off";
  double audit_retention_days = meterd::audit::kDefaultRetentionDays;
  int audit_prune_interval_seconds = 60;
};

// Options of the offline subcommands (keys export, verify-token).
struct ToolOptions {
  std::string data_dir = "./data";
  std::string catalog_path;
  std::string product;
  int64_t version = 0;
  std::string format = "pem";
  std::string token;
  std::string public_key_path;
};

// Options of `meterd dump`.
struct DumpOptions {
  std::string data_dir = "./data";
  std::string sqlite_path;
  bool verify = false;
};

// Runs `work` every `interval` on its own thread until stopped (task metering).
class Ticker {
 public:
  Ticker(std::chrono::seconds interval, std::function<void()> work)
      : thread_([this, interval, work = std::move(work)] {
          std::unique_lock<std::mutex> lock(mu_);
          while (!cv_.wait_for(lock, interval, [this] { return stopping_; })) {
            lock.unlock();
            work();
            lock.lock();
          }
        }) {}
  ~Ticker() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// "HOST:PORT" (IPv6 as "[::1]:PORT") into `options`; an error message, or "" when it parsed.
std::string ParseListen(const std::string& listen, meterd::http::HttpServerOptions* options) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return "must be HOST:PORT";
  options->host = listen.substr(0, colon);
  if (options->host.size() > 2 && options->host.front() == '[') {
    options->host = options->host.substr(1, options->host.size() - 2);
  }
  try {
    int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) return "port out of range";
    options->port = static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    return "must be HOST:PORT";
  }
  return "";
}

// Where the console's files are when --console-dir is not given: <bindir>/../console, which is
// where the build puts them (build/bin/meterd, build/console/) and where an install would.
std::string DefaultConsoleDir() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "console";
  return (exe.parent_path().parent_path() / "console").string();
}

int Fail(const std::string& message) {
  meterd::log::Error(message);
  return 1;
}

int Serve(const ServeOptions& opt) {
  using namespace meterd;
  umask(077);  // every file meterd creates is private (SQLite's -wal and -shm too)
  log::Level log_level;
  log::Format log_format;
  if (!log::ParseLevel(opt.log_level, &log_level)) {
    return Fail("--log-level must be debug, info, warn or error");
  }
  if (!log::ParseFormat(opt.log_format, &log_format))
    return Fail("--log-format must be text or json");
  log::Configure(log_level, log_format);
  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<Clock> clock;
  ManualClock* manual_clock = nullptr;
  if (opt.clock == "system") {
    if (!opt.clock_start.empty()) return Fail("--clock-start needs --clock manual");
    clock = std::make_unique<SystemClock>();
  } else if (opt.clock == "manual") {
    int64_t start = WallClockMillis();
    if (!opt.clock_start.empty()) {
      auto parsed = ParseIso8601(opt.clock_start);
      if (!parsed) return Fail("--clock-start is not an ISO 8601 time: " + opt.clock_start);
      start = *parsed;
    }
    auto manual = std::make_unique<ManualClock>(start);
    manual_clock = manual.get();
    clock = std::move(manual);
    log::Warn("manual test clock at " + FormatIso8601(start) +
              "; business time moves only through the admin API (meterctl clock)");
  } else {
    return Fail("--clock must be system or manual");
  }

  http::HttpServerOptions http_options;
  if (std::string error = ParseListen(opt.listen, &http_options); !error.empty()) {
    return Fail("--listen " + error);
  }
  http::HttpServerOptions admin_options;
  const bool admin_enabled = opt.admin_listen != "off";
  if (admin_enabled) {
    if (std::string error = ParseListen(opt.admin_listen, &admin_options); !error.empty()) {
      return Fail("--admin-listen " + error);
    }
  }

  auto empty = catalog::Catalog::FromJson("{}", clock->NowMillis());
  if (!empty.ok()) return Fail(empty.status().ToString());
  catalog::CatalogHolder holder(*empty);

  // Metrics (docs/OBSERVABILITY.md) see every group commit and every metering API call; declared
  // before the store, whose writer reports to them until it is closed.
  observability::MeterdMetrics metrics;
  store::StoreOptions store_options;
  store_options.data_dir = opt.data_dir;
  // The store and the reader of its ledger (usage reports).
  auto store = store::OpenStoreWithReader(opt.store, store_options);
  if (!store.ok()) return Fail(store.status().ToString());
  // What the admin API shows: never a connection URL, which may hold a password.
  const std::string store_name = store::IsPostgresUrl(opt.store) ? "postgresql" : opt.store;
  store->store->SetCommitObserver(&metrics);
  metrics.WatchStore(store->store.get());

  std::unique_ptr<keys::SigningKeyStore> signing_keys;
  if (opt.store == "memory") {
    signing_keys = keys::NewMemorySigningKeyStore();
  } else {
    auto opened = keys::NewFileSigningKeyStore(opt.data_dir + "/keys");
    if (!opened.ok()) return Fail(opened.status().ToString());
    signing_keys = std::move(opened).value();
  }

  control::Settings flags;
  auto hours = [](double h) { return static_cast<int64_t>(h * 3600 * 1000); };
  flags.service.windows.batch_max_age_ms = hours(opt.batch_window_hours);
  flags.service.windows.batch_month_grace_ms = hours(opt.batch_month_grace_hours);
  flags.service.windows.meter_usage_max_age_ms = hours(opt.meter_usage_window_hours);
  flags.service.windows.max_future_ms = static_cast<int64_t>(opt.future_skew_minutes * 60 * 1000);
  flags.service.token_ttl_ms = hours(opt.token_ttl_hours);
  if (opt.task_metering_interval_seconds < 1) return Fail("--task-metering-interval-seconds >= 1");
  if (opt.throttle != "on" && opt.throttle != "off") return Fail("--throttle must be on or off");
  flags.throttle = opt.throttle_rates;
  flags.throttle.enabled = opt.throttle == "on";
  if (!(opt.audit_retention_days > 0) || opt.audit_prune_interval_seconds < 1) {
    return Fail("--audit-retention-days must be > 0 and --audit-prune-interval-seconds >= 1");
  }
  flags.audit_retention_ms = static_cast<int64_t>(opt.audit_retention_days * audit::kDayMillis);

  const model::ServiceModel& model = model::ServiceModel::Builtin();
  auth::SigV4Verifier verifier(&holder, model.signing_name());
  metering::MeteringService service(&holder, clock.get(), store->store.get(), signing_keys.get(),
                                    flags.service);
  metering::Throttler throttler(clock.get(), flags.throttle);

  // The catalog in force: the stored one, with --catalog applied on top (docs/CONTROL-PLANE.md).
  control::ControlPlaneDeps deps;
  deps.catalog = &holder;
  deps.clock = clock.get();
  deps.manual_clock = manual_clock;
  deps.store = store->store.get();
  deps.service = &service;
  deps.throttler = &throttler;
  deps.signing_keys = signing_keys.get();
  control::ControlPlane control_plane(deps, flags);
  if (Status st = control_plane.Start(opt.catalog_path); !st.ok()) return Fail(st.ToString());
  metrics.WatchCatalogVersion([&control_plane] { return control_plane.version(); });
  observability::OpsEndpoints ops(&metrics, store->store.get(),
                                  [&control_plane] { return control_plane.version(); });

  if (Status st = service.PrepareCatalog(); !st.ok()) return Fail(st.ToString());
  ops.SetCatalogLoaded();
  if (Status st = service.MeterTaskRuns(); !st.ok()) return Fail(st.ToString());
  Ticker task_metering(std::chrono::seconds(opt.task_metering_interval_seconds), [&service] {
    if (Status st = service.MeterTaskRuns(); !st.ok()) {
      log::Error("task metering pass failed (retried next pass)", {{"error", st.ToString()}});
    }
  });
  metering::FaultInjector faults;
  protocol::ApiHandler handler(&holder, &verifier, &service, &model, signing_keys.get(), &throttler,
                               &faults);
  // Whatever watches every metering API call (access log, metrics) is added here, before the
  // listener starts.
  protocol::ApiCallFanout call_observers;
  call_observers.Add(&metrics);
  std::unique_ptr<observability::AccessLog> access_log;
  if (opt.access_log != "off") {
    auto opened = observability::AccessLog::Open(opt.access_log);
    if (!opened.ok()) return Fail(opened.status().ToString());
    access_log = std::move(opened).value();
    call_observers.Add(access_log.get());
  }
  // The audit trail (D17): every metering call and admin change; pruned in the background, one
  // small unit at a time, past the retention in force (a runtime setting).
  // The handler drives it apart from the observers: a call's event is durable before its answer.
  audit::AuditTrail audit_trail(store->store.get(), clock.get());
  handler.SetCallAuditor(&audit_trail);
  Ticker audit_pruning(
      std::chrono::seconds(opt.audit_prune_interval_seconds), [&audit_trail, &control_plane] {
        auto pruned = audit_trail.Prune(control_plane.settings().audit_retention_ms);
        if (!pruned.ok()) {
          log::Error("audit pruning failed (retried next pass)",
                     {{"error", pruned.status().ToString()}});
        }
      });
  if (!call_observers.empty()) handler.SetCallObserver(&call_observers);

  std::unique_ptr<admin::AdminHandler> admin_handler;
  admin::ConsoleFiles console_files;
  std::unique_ptr<admin::ConsoleHandler> console_handler;
  std::unique_ptr<http::HttpServer> admin_server;
  if (admin_enabled) {
    const std::string token_path =
        opt.admin_token_file.empty() ? opt.data_dir + "/admin-token" : opt.admin_token_file;
    bool created = false;
    auto token = admin::LoadOrCreateAdminToken(token_path, &created);
    if (!token.ok()) return Fail(token.status().ToString());
    if (created) {
      // The one secret meterd ever prints, once, to the operator: never through the log.
      std::cerr << "meterd: new admin API token (shown once; kept in " << token_path
                << "): " << *token << std::endl;
    }
    admin_handler = std::make_unique<admin::AdminHandler>(&control_plane, signing_keys.get(),
                                                          &faults, *token, store_name);
    admin_handler->SetOpsEndpoints(&ops);
    admin_handler->SetAuditTrail(&audit_trail);
    admin_handler->SetUsageReports(store->reader.get(), &holder);
    http::HttpHandler* admin_front = admin_handler.get();
    if (opt.console_dir != "off") {
      const std::string dir = opt.console_dir.empty() ? DefaultConsoleDir() : opt.console_dir;
      auto files = admin::ConsoleFiles::Load(dir);
      std::string missing_reason;
      if (files.ok()) {
        console_files = std::move(*files);
      } else if (!opt.console_dir.empty()) {
        return Fail("--console-dir: " + files.status().message());
      } else {
        missing_reason = "the console is not installed: " + files.status().message();
        log::Warn(missing_reason);
      }
      console_handler = std::make_unique<admin::ConsoleHandler>(&console_files, admin_handler.get(),
                                                                std::move(missing_reason));
      admin_front = console_handler.get();
    }
    admin_options.threads = 1;
    admin_options.max_body_bytes = size_t{16} * 1024 * 1024;  // whole catalogs
    admin_server = http::NewBeastServer(admin_options, admin_front);
    auto admin_port = admin_server->Start();
    if (!admin_port.ok()) return Fail("--admin-listen: " + admin_port.status().message());
    metrics.WatchServer("admin", admin_server.get());
    std::printf("meterd: admin API listening on %s:%u\n", admin_options.host.c_str(),
                static_cast<unsigned>(*admin_port));
    if (console_files.size() > 0) {
      std::printf("meterd: console at http://%s:%u/\n", admin_options.host.c_str(),
                  static_cast<unsigned>(*admin_port));
    }
  }

  http_options.threads = opt.threads;
  if (opt.idle_timeout_seconds < 1 || opt.request_timeout_seconds < 1 || opt.max_connections < 1) {
    return Fail("timeouts and --max-connections must be at least 1");
  }
  http_options.idle_timeout_seconds = opt.idle_timeout_seconds;
  http_options.request_timeout_seconds = opt.request_timeout_seconds;
  http_options.max_connections = static_cast<size_t>(opt.max_connections);
  auto server = http::NewBeastServer(http_options, &handler);
  auto port = server->Start();
  if (!port.ok()) return Fail(port.status().message());
  metrics.WatchServer("api", server.get());
  ops.SetServing(true);
  std::printf("meterd: listening on %s:%u\n", http_options.host.c_str(),
              static_cast<unsigned>(*port));
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  ops.SetServing(false);
  log::Info("stopping", {{"signal", std::to_string(received)}});
  // Answer what fault injection still delays, stop taking requests, then let the writer finish
  // (and fsync) what was queued.
  handler.StopDelays();
  if (admin_server) admin_server->Stop();
  server->Stop();
  task_metering.Stop();
  audit_pruning.Stop();
  store->store->Close();
  return 0;
}

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  *ok = static_cast<bool>(in);
  return buffer.str();
}

// meterd keys export: the public keys of a product, as PEM (one version) or JWKS (all).
int KeysExport(const ToolOptions& opt) {
  using namespace meterd;
  auto catalog = catalog::Catalog::LoadFile(opt.catalog_path, WallClockMillis());
  if (!catalog.ok()) return Fail(catalog.status().message());
  const catalog::Product* product = (*catalog)->FindProduct(opt.product);
  if (product == nullptr || product->signing_keys.empty()) {
    return Fail("product " + opt.product + " has no signing keys in the catalog");
  }
  auto store = keys::NewFileSigningKeyStore(opt.data_dir + "/keys");
  if (!store.ok()) return Fail(store.status().ToString());
  std::vector<keys::PublicKeyEntry> entries;
  for (const auto& ref : product->signing_keys) {
    if (opt.format == "pem" && opt.version != 0 && ref.version != opt.version) continue;
    if (!ref.private_key_pem.empty()) {
      if (Status st = (*store)->Import(product->code, ref.version, ref.private_key_pem); !st.ok()) {
        return Fail(st.ToString());
      }
    }
    auto key = (*store)->GetOrCreate(product->code, ref.version);
    if (!key.ok()) return Fail(key.status().ToString());
    entries.push_back(keys::PublicKeyEntry{ref.version, *key});
  }
  if (opt.format == "jwks") {
    std::cout << keys::Jwks(entries) << std::endl;
    return 0;
  }
  if (opt.format != "pem") return Fail("--format must be pem or jwks");
  if (opt.version == 0 && entries.size() != 1) return Fail("--version is required for pem");
  if (entries.empty()) return Fail("no key version " + std::to_string(opt.version));
  std::cout << entries[0].key->PublicPem();
  return 0;
}

// meterd verify-token: checks a RegisterUsage signature offline with a public key PEM.
int VerifyToken(const ToolOptions& opt) {
  using namespace meterd;
  bool ok = false;
  std::string pem = ReadFile(opt.public_key_path, &ok);
  if (!ok) return Fail("cannot read " + opt.public_key_path);
  auto verified = keys::VerifyPs256Jwt(opt.token, pem);
  if (!verified.ok()) {
    std::cerr << "meterd: token is NOT valid: " << verified.status().message() << std::endl;
    return 1;
  }
  if (!opt.product.empty()) {
    auto payload = json::Parse(verified->payload_json);
    const json::Value* code = payload.ok() ? payload->Find("productCode") : nullptr;
    if (code == nullptr || !code->is_string() || code->text() != opt.product) {
      std::cerr << "meterd: token is NOT for product " << opt.product << std::endl;
      return 1;
    }
  }
  std::cout << verified->payload_json << std::endl;
  return 0;
}

// meterd dump: the embedded ledger (DATA/ledger) as a new SQLite file in the SQLite layout; works
// while a meterd runs on the data dir. With --verify, prints "ok" or the problems found on stdout
// (exit status 3 when there are problems).
int Dump(const DumpOptions& opt) {
  umask(077);  // the dump holds the ledger: as private as the store
  std::string report;
  const meterd::Status st =
      meterd::store::DumpLedgerToSqlite(opt.data_dir, opt.sqlite_path, opt.verify, &report);
  if (!st.ok()) {
    std::cerr << "meterd: dump failed: " << st.ToString() << std::endl;
    return 1;
  }
  std::cerr << "meterd: dumped " << opt.data_dir << "/ledger to " << opt.sqlite_path << std::endl;
  if (!opt.verify) return 0;
  std::cout << report << std::endl;
  return report == "ok" ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meterd: a self-hosted AWS Marketplace Metering Service"};
  app.require_subcommand(1);
  ServeOptions opt;
  CLI::App* serve = app.add_subcommand("serve", "Serve the metering API");
  serve->add_option("--listen", opt.listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  serve->add_option("--data", opt.data_dir, "Data directory (the embedded store)")
      ->capture_default_str();
  serve->add_option("--catalog", opt.catalog_path,
                    "Catalog JSON file, applied over the stored catalog at start (optional)");
  serve
      ->add_option("--admin-listen", opt.admin_listen,
                   "HOST:PORT of the admin API (port 0: any free port; off: no admin API)")
      ->capture_default_str();
  serve->add_option("--admin-token-file", opt.admin_token_file,
                    "The admin API's bearer token file (default DATA/admin-token; created once)");
  serve->add_option("--console-dir", opt.console_dir,
                    "The web console's files, served at / of the admin listener (default "
                    "<bindir>/../console; off: no console)");
  serve
      ->add_option("--store", opt.store,
                   "Store backend: embedded (RocksDB in --data; migrates a data dir of the SQLite "
                   "layout once), sqlite (the previous embedded engine, in --data/meterd.db), "
                   "postgresql://... (a libpq URI: a database several nodes share) or memory")
      ->capture_default_str();
  serve->add_option("--threads", opt.threads, "HTTP event loops (0: one per core)");
  serve
      ->add_option("--idle-timeout-seconds", opt.idle_timeout_seconds,
                   "Close a keep-alive connection idle this long")
      ->capture_default_str();
  serve
      ->add_option("--request-timeout-seconds", opt.request_timeout_seconds,
                   "Cut off a client that takes longer than this to send one request")
      ->capture_default_str();
  serve
      ->add_option("--max-connections", opt.max_connections,
                   "Open connections at most; more are closed at once")
      ->capture_default_str();
  serve->add_option("--clock", opt.clock, "system, or manual (a test clock; never in production)")
      ->capture_default_str();
  serve->add_option("--clock-start", opt.clock_start,
                    "With --clock manual: the start time (ISO 8601)");
  serve
      ->add_option("--batch-window-hours", opt.batch_window_hours,
                   "BatchMeterUsage: how far back a record may be (D1)")
      ->capture_default_str();
  serve
      ->add_option("--batch-month-grace-hours", opt.batch_month_grace_hours,
                   "BatchMeterUsage: hours into a month that the previous month is still accepted")
      ->capture_default_str();
  serve
      ->add_option("--meter-usage-window-hours", opt.meter_usage_window_hours,
                   "MeterUsage: how far back a record may be (D1)")
      ->capture_default_str();
  serve
      ->add_option("--future-skew-minutes", opt.future_skew_minutes,
                   "How far ahead of now a record may be stamped")
      ->capture_default_str();
  serve
      ->add_option("--token-ttl-hours", opt.token_ttl_hours,
                   "ResolveCustomer: how long a registration token resolves (D12)")
      ->capture_default_str();
  serve
      ->add_option("--task-metering-interval-seconds", opt.task_metering_interval_seconds,
                   "How often the hours of running container tasks are written (D11)")
      ->capture_default_str();

  serve->add_option("--throttle", opt.throttle, "Throttling (D14): on or off")
      ->capture_default_str();
  const std::pair<const char*, double*> kThrottleRates[] = {
      {"BatchMeterUsage", &opt.throttle_rates.batch_meter_usage},
      {"MeterUsage", &opt.throttle_rates.meter_usage},
      {"RegisterUsage", &opt.throttle_rates.register_usage},
      {"ResolveCustomer", &opt.throttle_rates.resolve_customer}};
  for (const auto& [operation, rate] : kThrottleRates) {
    // --throttle-batch-meter-usage, --throttle-meter-usage, ...
    std::string flag = "--throttle";
    for (const char* c = operation; *c != '\0'; ++c) {
      if (std::isupper(static_cast<unsigned char>(*c))) flag += '-';
      flag += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
    }
    serve->add_option(flag, *rate, std::string(operation) + " requests/s per account and region")
        ->capture_default_str();
  }
  serve->add_option("--log-level", opt.log_level, "Server log level: debug, info, warn or error")
      ->capture_default_str();
  serve->add_option("--log-format", opt.log_format, "Server log format: text or json")
      ->capture_default_str();
  serve
      ->add_option("--access-log", opt.access_log,
                   "JSON access log of metering API calls: off, stderr, stdout or a file path")
      ->capture_default_str();
  serve
      ->add_option("--throttle-burst-seconds", opt.throttle_rates.burst_factor,
                   "A full bucket holds this many seconds of its rate")
      ->capture_default_str();

  serve
      ->add_option("--audit-retention-days", opt.audit_retention_days,
                   "How long audit events are kept (D17; the setting auditRetentionDays wins)")
      ->capture_default_str();
  serve
      ->add_option("--audit-prune-interval-seconds", opt.audit_prune_interval_seconds,
                   "How often expired audit events are deleted (in small batches)")
      ->capture_default_str();

  ToolOptions tool;
  CLI::App* keys_cmd = app.add_subcommand("keys", "Signing keys of container products");
  keys_cmd->require_subcommand(1);
  CLI::App* keys_export = keys_cmd->add_subcommand("export", "Print a product's public keys");
  keys_export->add_option("--data", tool.data_dir, "Data directory")->capture_default_str();
  keys_export->add_option("--catalog", tool.catalog_path, "Catalog JSON file")->required();
  keys_export->add_option("--product", tool.product, "Product code")->required();
  keys_export->add_option("--version", tool.version, "Key version (pem)");
  keys_export->add_option("--format", tool.format, "pem or jwks")->capture_default_str();

  CLI::App* verify = app.add_subcommand(
      "verify-token", "Verify a RegisterUsage signature (JWT, PS256) with a public key");
  verify->add_option("--token", tool.token, "The Signature returned by RegisterUsage")->required();
  verify->add_option("--public-key", tool.public_key_path, "Public key PEM file")->required();
  verify->add_option("--product", tool.product, "Also require this productCode");

  DumpOptions dump_opt;
  CLI::App* dump = app.add_subcommand(
      "dump", "Write the embedded ledger (DATA/ledger) into a new SQLite file (SQLite layout)");
  dump->add_option("--data", dump_opt.data_dir, "Data directory")->capture_default_str();
  dump->add_option("--sqlite", dump_opt.sqlite_path, "The SQLite file to create (must not exist)")
      ->required();
  dump->add_flag("--verify", dump_opt.verify,
                 "Also verify checksums and the ledger's counters; print ok or the problems");

  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) return Serve(opt);
  if (keys_export->parsed()) return KeysExport(tool);
  if (verify->parsed()) return VerifyToken(tool);
  if (dump->parsed()) return Dump(dump_opt);
  return 0;
}
