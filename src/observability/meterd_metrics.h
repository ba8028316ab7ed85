// meterd's metrics: the one declarative table (kMeterdMetricTable in meterd_metrics.cc, listed
// in docs/OBSERVABILITY.md) and what feeds it: every metering API call (ApiCallMetrics, an
// ApiCallObserver), every group commit (a store::CommitObserver) and, at scrape time, the
// writer's queue and the HTTP servers' connection counts.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "http/http_server.h"
#include "observability/metrics.h"
#include "protocol/api_call.h"
#include "store/store.h"

namespace meterd::observability {

// Indexes into the table; the table lists them in this order.
enum class Metric : size_t {
  kApiRequests,
  kApiRequestDuration,
  kApiRecords,
  kApiThrottled,
  kApiInjectedFaults,
  kStoreGroupCommits,
  kStoreGroupUnits,
  kStoreGroupDuration,
  kStoreErrors,
  kStoreQueueDepth,
  kHttpConnectionsOpen,
  kHttpConnectionsAccepted,
  kHttpConnectionsRejected,
  kCatalogVersion,
  kCount
};

// The table: every metric meterd exposes, in Metric order.
std::span<const MetricSpec> MeterdMetricTable();

// The registry of meterd's table, with the feeds. Thread-safe: OnApiCall and OnGroupCommit are
// called from the event loops and the writer thread; Render from the admin listener.
class MeterdMetrics final : public protocol::ApiCallObserver, public store::CommitObserver {
 public:
  MeterdMetrics();

  Family& family(Metric m) { return registry_.family(static_cast<size_t>(m)); }

  void OnApiCall(const protocol::ApiCall& call) override;
  void OnGroupCommit(const store::GroupCommit& group) override;

  // Polled at every scrape. `store`, `servers` and `catalog_version` must outlive this object.
  void WatchStore(const store::Store* store);
  void WatchServer(std::string listener, const http::HttpServer* server);
  void WatchCatalogVersion(std::function<int64_t()> catalog_version);

  std::string Render() { return registry_.Render(); }

 private:
  Registry registry_;
};

}  // namespace meterd::observability
