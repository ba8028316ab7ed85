// The operations endpoints on the admin listener (docs/OBSERVABILITY.md):
//   GET /healthz  200 while the process answers (liveness); no bearer token.
//   GET /readyz   200 when ready for metering traffic, else 503 with the failing checks; no
//                 bearer token. Checks: the catalog is loaded, the metering API listens, the
//                 store answers a read through its writer within 2 s, and no group commit
//                 failed in the last 10 s.
//   GET /metrics  the Prometheus text format; the admin handler asks for the bearer token first.
// The admin handler routes these paths here (AdminHandler::SetOpsEndpoints).
//
// Thread-safe. Serve blocks (up to the store probe's timeout) on the admin listener's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

#include "common/http_message.h"
#include "observability/meterd_metrics.h"
#include "store/store.h"

namespace meterd::observability {

class OpsEndpoints {
 public:
  static constexpr std::chrono::milliseconds kStoreProbeTimeout{2000};
  static constexpr std::chrono::milliseconds kStoreErrorWindow{10000};

  // Not owned; all must outlive this object. `catalog_version`: the version in force.
  OpsEndpoints(MeterdMetrics* metrics, store::Store* store,
               std::function<int64_t()> catalog_version)
      : metrics_(metrics), store_(store), catalog_version_(std::move(catalog_version)) {}

  // Start-up and shutdown facts /readyz reports.
  void SetCatalogLoaded() { catalog_loaded_.store(true); }
  void SetServing(bool serving) { serving_.store(serving); }

  // The answer for an ops path; nullopt for any other path (the admin API's). `path` is the
  // request target without its query.
  static bool IsProbe(std::string_view path) { return path == "/healthz" || path == "/readyz"; }
  static bool IsScrape(std::string_view path) { return path == "/metrics"; }
  HttpResponse Serve(const HttpRequest& request, std::string_view path);

 private:
  HttpResponse Readyz();
  // ok, or why the store is not usable.
  std::string CheckStore();

  MeterdMetrics* metrics_;
  store::Store* store_;
  std::function<int64_t()> catalog_version_;
  std::atomic<bool> catalog_loaded_{false};
  std::atomic<bool> serving_{false};
};

}  // namespace meterd::observability
