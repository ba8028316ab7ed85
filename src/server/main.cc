// meterd: the AWS Marketplace Metering Service, self-hosted.
//
//   meterd serve --listen 127.0.0.1:8080 --data ./data --catalog catalog.json
//
// This file wires the components together (the factory role); CLI11 is parsed only here.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "auth/sigv4.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/time_util.h"
#include "http/http_server.h"
#include "metering/service.h"
#include "model/service_model.h"
#include "protocol/api_handler.h"
#include "store/store.h"

namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./data";
  std::string catalog_path;
  std::string store = "sqlite";
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
};

int Fail(const std::string& message) {
  std::cerr << "meterd: " << message << std::endl;
  return 1;
}

int Serve(const ServeOptions& opt) {
  using namespace meterd;
  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<Clock> clock;
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
    clock = std::make_unique<ManualClock>(start);
    std::cerr << "meterd: WARNING: manual test clock at " << FormatIso8601(start)
              << "; business time does not move by itself" << std::endl;
  } else {
    return Fail("--clock must be system or manual");
  }

  if (opt.catalog_path.empty()) return Fail("--catalog is required");
  auto catalog = catalog::Catalog::LoadFile(opt.catalog_path, clock->NowMillis());
  if (!catalog.ok()) return Fail(catalog.status().message());
  catalog::CatalogHolder holder(*catalog);

  store::StoreOptions store_options;
  store_options.data_dir = opt.data_dir;
  auto store = store::OpenStore(opt.store, store_options);
  if (!store.ok()) return Fail(store.status().ToString());

  metering::WindowSettings windows;
  auto hours = [](double h) { return static_cast<int64_t>(h * 3600 * 1000); };
  windows.batch_max_age_ms = hours(opt.batch_window_hours);
  windows.batch_month_grace_ms = hours(opt.batch_month_grace_hours);
  windows.meter_usage_max_age_ms = hours(opt.meter_usage_window_hours);
  windows.max_future_ms = static_cast<int64_t>(opt.future_skew_minutes * 60 * 1000);

  const model::ServiceModel& model = model::ServiceModel::Builtin();
  auth::SigV4Verifier verifier(&holder, model.signing_name());
  metering::MeteringService service(&holder, clock.get(), store->get(), windows);
  protocol::ApiHandler handler(&holder, &verifier, &service, &model);

  http::HttpServerOptions http_options;
  size_t colon = opt.listen.rfind(':');
  if (colon == std::string::npos) return Fail("--listen must be HOST:PORT");
  http_options.host = opt.listen.substr(0, colon);
  if (http_options.host.size() > 2 && http_options.host.front() == '[') {
    http_options.host = http_options.host.substr(1, http_options.host.size() - 2);
  }
  try {
    int port = std::stoi(opt.listen.substr(colon + 1));
    if (port < 0 || port > 65535) return Fail("--listen port out of range");
    http_options.port = static_cast<uint16_t>(port);
  } catch (const std::exception&) {
    return Fail("--listen must be HOST:PORT");
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
  std::printf("meterd: listening on %s:%u\n", opt.listen.substr(0, colon).c_str(),
              static_cast<unsigned>(*port));
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  std::cerr << "meterd: stopping (signal " << received << ")" << std::endl;
  // Stop taking requests, then let the writer finish (and fsync) what was queued.
  server->Stop();
  (*store)->Close();
  return 0;
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
  serve->add_option("--catalog", opt.catalog_path, "Catalog JSON file")->required();
  serve->add_option("--store", opt.store, "Store backend: sqlite or memory")->capture_default_str();
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
  CLI11_PARSE(app, argc, argv);
  if (serve->parsed()) return Serve(opt);
  return 0;
}
