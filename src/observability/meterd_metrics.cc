#include "observability/meterd_metrics.h"

#include <cstdio>
#include <cstdlib>

namespace meterd::observability {

namespace {

using enum MetricType;

const std::vector<double> kRequestSeconds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
const std::vector<double> kGroupUnits = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
const std::vector<double> kGroupSeconds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                           0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};

// THE list of meterd's metrics (docs/OBSERVABILITY.md describes each), in Metric order.
const MetricSpec kMeterdMetricTable[] = {
    {"meterd_api_requests_total",
     kCounter,
     "Metering API calls by operation and outcome (Success or the AWS error shape name).",
     {"operation", "outcome"},
     {}},
    {"meterd_api_request_duration_seconds",
     kHistogram,
     "Metering API latency from the request read whole to the response built, by operation.",
     {"operation"},
     kRequestSeconds},
    {"meterd_api_records_total",
     kCounter,
     "Usage records answered, by operation and per-record status (Success, DuplicateRecord, "
     "CustomerNotSubscribed, Unprocessed).",
     {"operation", "status"},
     {}},
    {"meterd_api_throttled_total",
     kCounter,
     "Calls refused by the real throttle (D14), by operation.",
     {"operation"},
     {}},
    {"meterd_api_injected_faults_total",
     kCounter,
     "Calls whose answer an injected fault decided (error, unprocessed records or delay), by "
     "operation.",
     {"operation"},
     {}},
    {"meterd_store_group_commits_total",
     kCounter,
     "Group commits of the store's writer, by result (ok or error).",
     {"result"},
     {}},
    {"meterd_store_group_commit_units",
     kHistogram,
     "Units of work (one per request or background task) committed together in one group.",
     {},
     kGroupUnits},
    {"meterd_store_group_commit_duration_seconds",
     kHistogram,
     "Time of one group's transaction, from begin to durable commit (or rollback).",
     {},
     kGroupSeconds},
    {"meterd_store_errors_total",
     kCounter,
     "Store errors: group commits that failed and were rolled back (every unit answered the "
     "error).",
     {},
     {}},
    {"meterd_store_writer_queue_depth",
     kGauge,
     "Units of work waiting for the store's writer thread.",
     {},
     {}},
    {"meterd_http_connections_open",
     kGauge,
     "Open connections, by listener (api or admin).",
     {"listener"},
     {}},
    {"meterd_http_connections_accepted_total",
     kCounter,
     "Connections accepted, by listener (api or admin).",
     {"listener"},
     {}},
    {"meterd_http_connections_rejected_total",
     kCounter,
     "Connections closed at once because --max-connections were open, by listener.",
     {"listener"},
     {}},
    {"meterd_catalog_version", kGauge, "Version of the catalog in force.", {}, {}},
};
static_assert(std::size(kMeterdMetricTable) == static_cast<size_t>(Metric::kCount),
              "one table entry per Metric");

constexpr std::string_view kOperations[] = {"BatchMeterUsage", "MeterUsage", "RegisterUsage",
                                            "ResolveCustomer"};

std::string_view OperationLabel(const protocol::ApiCall& call) {
  return call.operation.empty() ? std::string_view("unknown") : std::string_view(call.operation);
}

}  // namespace

std::span<const MetricSpec> MeterdMetricTable() { return kMeterdMetricTable; }

MeterdMetrics::MeterdMetrics() : registry_(MeterdMetricTable()) {
  // The series a dashboard always wants exist from the start, at 0.
  for (std::string_view op : kOperations) {
    family(Metric::kApiRequests).With({op, "Success"});
    family(Metric::kApiThrottled).With({op});
    family(Metric::kApiInjectedFaults).With({op});
  }
  for (std::string_view op : {"BatchMeterUsage", "MeterUsage"}) {
    for (std::string_view status :
         {"Success", "DuplicateRecord", "CustomerNotSubscribed", "Unprocessed"}) {
      family(Metric::kApiRecords).With({op, status});
    }
  }
  family(Metric::kStoreGroupCommits).With({"ok"});
  family(Metric::kStoreGroupCommits).With({"error"});
  family(Metric::kStoreGroupUnits).With({});
  family(Metric::kStoreGroupDuration).With({});
  family(Metric::kStoreErrors).With({});
}

void MeterdMetrics::OnApiCall(const protocol::ApiCall& call) {
  const std::string_view op = OperationLabel(call);
  std::string_view outcome = call.error_code;
  std::string fallback;
  if (call.http_status == 200) {
    outcome = "Success";
  } else if (outcome.empty()) {
    fallback = "HTTP" + std::to_string(call.http_status);  // an error without an AWS shape
    outcome = fallback;
  }
  family(Metric::kApiRequests).With({op, outcome}).Add();
  family(Metric::kApiRequestDuration)
      .With({op})
      .Observe(static_cast<double>(call.latency_us) / 1e6);
  const protocol::RecordCounts& r = call.records;
  Family& records = family(Metric::kApiRecords);
  if (r.success > 0) records.With({op, "Success"}).Add(r.success);
  if (r.duplicate > 0) records.With({op, "DuplicateRecord"}).Add(r.duplicate);
  if (r.customer_not_subscribed > 0) {
    records.With({op, "CustomerNotSubscribed"}).Add(r.customer_not_subscribed);
  }
  if (r.unprocessed > 0) records.With({op, "Unprocessed"}).Add(r.unprocessed);
  if (call.throttled) family(Metric::kApiThrottled).With({op}).Add();
  if (call.fault_injected) family(Metric::kApiInjectedFaults).With({op}).Add();
}

void MeterdMetrics::OnGroupCommit(const store::GroupCommit& group) {
  family(Metric::kStoreGroupCommits).With({group.ok ? "ok" : "error"}).Add();
  family(Metric::kStoreGroupUnits).With({}).Observe(static_cast<double>(group.units));
  family(Metric::kStoreGroupDuration)
      .With({})
      .Observe(static_cast<double>(group.duration_us) / 1e6);
  if (!group.ok) family(Metric::kStoreErrors).With({}).Add();
}

void MeterdMetrics::WatchStore(const store::Store* store) {
  registry_.AddCollector([this, store] {
    family(Metric::kStoreQueueDepth).With({}).Set(static_cast<int64_t>(store->Stats().queue_depth));
  });
}

void MeterdMetrics::WatchServer(std::string listener, const http::HttpServer* server) {
  registry_.AddCollector([this, listener = std::move(listener), server] {
    const http::ConnectionStats stats = server->Stats();
    family(Metric::kHttpConnectionsOpen).With({listener}).Set(static_cast<int64_t>(stats.open));
    family(Metric::kHttpConnectionsAccepted)
        .With({listener})
        .Set(static_cast<int64_t>(stats.accepted));
    family(Metric::kHttpConnectionsRejected)
        .With({listener})
        .Set(static_cast<int64_t>(stats.rejected));
  });
}

void MeterdMetrics::WatchCatalogVersion(std::function<int64_t()> catalog_version) {
  registry_.AddCollector([this, catalog_version = std::move(catalog_version)] {
    family(Metric::kCatalogVersion).With({}).Set(catalog_version());
  });
}

}  // namespace meterd::observability
