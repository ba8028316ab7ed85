#include "observability/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "observability/meterd_metrics.h"

namespace meterd::observability {
namespace {

using enum MetricType;

const MetricSpec kTestTable[] = {
    {"test_requests_total",
     kCounter,
     "Requests.\nSecond line with a \\ backslash.",
     {"operation", "outcome"},
     {}},
    {"test_depth", kGauge, "A gauge.", {}, {}},
    {"test_latency_seconds", kHistogram, "Latency.", {"operation"}, {0.005, 0.5, 1}},
};

// The lines of `text` that start with `prefix`.
std::vector<std::string> Lines(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
    start = end + 1;
  }
  return out;
}

TEST(MetricsFormatTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(EscapeHelp("x\\y\nz \"q\""), "x\\\\y\\nz \"q\"");  // quotes stay in HELP
}

TEST(MetricsFormatTest, NumbersAreShortestAndInfinityIsPlusInf) {
  EXPECT_EQ(FormatNumber(0.005), "0.005");
  EXPECT_EQ(FormatNumber(1), "1");
  EXPECT_EQ(FormatNumber(2.5), "2.5");
  EXPECT_EQ(FormatNumber(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatNumber(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatNumber(std::nan("")), "NaN");
}

TEST(MetricsRegistryTest, RendersHelpTypeAndCountersWithEscapedLabels) {
  Registry registry(kTestTable);
  registry.family(0).With({"MeterUsage", "Success"}).Add();
  registry.family(0).With({"MeterUsage", "Success"}).Add(2);
  registry.family(0).With({"Batch\"x\\", "a\nb"}).Add();
  registry.family(1).With({}).Set(-4);
  const std::string text = registry.Render();
  EXPECT_EQ(Lines(text, "# HELP test_requests_total"),
            std::vector<std::string>{
                "# HELP test_requests_total Requests.\\nSecond line with a \\\\ backslash."});
  EXPECT_EQ(
      Lines(text, "# TYPE "),
      (std::vector<std::string>{"# TYPE test_requests_total counter", "# TYPE test_depth gauge",
                                "# TYPE test_latency_seconds histogram"}));
  EXPECT_EQ(Lines(text, "test_requests_total{"),
            (std::vector<std::string>{
                "test_requests_total{operation=\"Batch\\\"x\\\\\",outcome=\"a\\nb\"} 1",
                "test_requests_total{operation=\"MeterUsage\",outcome=\"Success\"} 3"}));
  EXPECT_EQ(Lines(text, "test_depth"), std::vector<std::string>{"test_depth -4"});
  EXPECT_EQ(text.back(), '\n');
}

TEST(MetricsRegistryTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry(kTestTable);
  Series& s = registry.family(2).With({"MeterUsage"});
  for (double v : {0.001, 0.005, 0.2, 0.7, 3.0}) s.Observe(v);  // 0.005 is in le="0.005"
  const std::string text = registry.Render();
  EXPECT_EQ(Lines(text, "test_latency_seconds"),
            (std::vector<std::string>{
                "test_latency_seconds_bucket{operation=\"MeterUsage\",le=\"0.005\"} 2",
                "test_latency_seconds_bucket{operation=\"MeterUsage\",le=\"0.5\"} 3",
                "test_latency_seconds_bucket{operation=\"MeterUsage\",le=\"1\"} 4",
                "test_latency_seconds_bucket{operation=\"MeterUsage\",le=\"+Inf\"} 5",
                // The sum of the observations in the order observed (3.9059999999999997 in
                // binary floating point), written shortest.
                "test_latency_seconds_sum{operation=\"MeterUsage\"} " +
                    FormatNumber(0.001 + 0.005 + 0.2 + 0.7 + 3.0),
                "test_latency_seconds_count{operation=\"MeterUsage\"} 5"}));
  EXPECT_EQ(s.count(), 5u);
}

TEST(MetricsRegistryTest, AHistogramWithoutLabelsHasOnlyLe) {
  const MetricSpec table[] = {{"t_units", kHistogram, "Units.", {}, {1, 2}}};
  Registry registry(table);
  registry.family(0).With({}).Observe(2);
  EXPECT_EQ(Lines(registry.Render(), "t_units_bucket"),
            (std::vector<std::string>{"t_units_bucket{le=\"1\"} 0", "t_units_bucket{le=\"2\"} 1",
                                      "t_units_bucket{le=\"+Inf\"} 1"}));
}

TEST(MetricsRegistryTest, CollectorsRunAtEveryRender) {
  Registry registry(kTestTable);
  int64_t polled = 7;
  registry.AddCollector([&] { registry.family(1).With({}).Set(polled); });
  EXPECT_EQ(Lines(registry.Render(), "test_depth "), std::vector<std::string>{"test_depth 7"});
  polled = 9;
  EXPECT_EQ(Lines(registry.Render(), "test_depth "), std::vector<std::string>{"test_depth 9"});
}

TEST(MetricsRegistryTest, ConcurrentUpdatesFromManyThreadsAreAllCounted) {
  Registry registry(kTestTable);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&registry, t] {
      for (int i = 0; i < 10000; ++i) {
        // New series appear while others are being updated.
        registry.family(0).With({"op" + std::to_string(i % 50), t % 2 ? "a" : "b"}).Add();
        registry.family(2).With({"op"}).Observe(0.1);
      }
    });
  }
  for (auto& t : threads) t.join();
  int64_t total = 0;
  std::set<std::vector<std::string>> seen;
  for (const Series* s : registry.family(0).AllSeries()) {
    total += s->value();
    EXPECT_TRUE(seen.insert(s->label_values()).second) << "a series exists twice";
  }
  EXPECT_EQ(total, 40000);
  EXPECT_EQ(seen.size(), 100u);
  EXPECT_EQ(registry.family(2).With({"op"}).count(), 40000u);
}

TEST(MetricsRegistryTest, LabelCombinationsBeyondTheLimitShareTheOverflowSeries) {
  Registry registry(kTestTable);
  for (size_t i = 0; i < Family::kMaxSeries + 10; ++i) {
    registry.family(1).With({});  // one series only (no labels)
    registry.family(0).With({std::to_string(i), "x"}).Add();
  }
  EXPECT_EQ(registry.family(0).AllSeries().size(), Family::kMaxSeries + 1);
  EXPECT_EQ(registry.family(0).With({"overflow", "overflow"}).value(), 10);
}

TEST(MeterdMetricsTest, TheTableHasUniqueValidNamesAndSortedBuckets) {
  std::set<std::string_view> names;
  for (const MetricSpec& spec : MeterdMetricTable()) {
    EXPECT_TRUE(names.insert(spec.name).second) << spec.name;
    EXPECT_EQ(spec.name.substr(0, 7), "meterd_") << spec.name;
    for (char c : spec.name) EXPECT_TRUE(std::isalnum(c) || c == '_') << spec.name;
    EXPECT_EQ(spec.type == kCounter, spec.name.ends_with("_total")) << spec.name;
    EXPECT_EQ(spec.type == kHistogram, !spec.buckets.empty()) << spec.name;
    EXPECT_TRUE(std::is_sorted(spec.buckets.begin(), spec.buckets.end())) << spec.name;
    EXPECT_FALSE(spec.help.empty()) << spec.name;
  }
  // The enum indexes the table in order.
  MeterdMetrics metrics;
  EXPECT_EQ(metrics.family(Metric::kApiRequests).spec().name, "meterd_api_requests_total");
  EXPECT_EQ(metrics.family(Metric::kStoreQueueDepth).spec().name,
            "meterd_store_writer_queue_depth");
  EXPECT_EQ(metrics.family(Metric::kCatalogVersion).spec().name, "meterd_catalog_version");
}

TEST(MeterdMetricsTest, ACallMovesRequestsLatencyRecordsThrottleAndFaults) {
  MeterdMetrics metrics;
  protocol::ApiCall call;
  call.operation = "BatchMeterUsage";
  call.http_status = 200;
  call.latency_us = 2500;
  call.records = {3, 1, 2, 4};
  metrics.OnApiCall(call);
  protocol::ApiCall refused;  // refused before it was read whole: no operation
  refused.http_status = 413;
  refused.error_code = "ValidationException";
  metrics.OnApiCall(refused);
  protocol::ApiCall throttled;
  throttled.operation = "MeterUsage";
  throttled.http_status = 400;
  throttled.error_code = "ThrottlingException";
  throttled.throttled = true;
  metrics.OnApiCall(throttled);
  protocol::ApiCall injected = throttled;
  injected.throttled = false;
  injected.fault_injected = true;
  metrics.OnApiCall(injected);

  auto value = [&](Metric m, std::initializer_list<std::string_view> labels) {
    return metrics.family(m).With(labels).value();
  };
  EXPECT_EQ(value(Metric::kApiRequests, {"BatchMeterUsage", "Success"}), 1);
  EXPECT_EQ(value(Metric::kApiRequests, {"unknown", "ValidationException"}), 1);
  EXPECT_EQ(value(Metric::kApiRequests, {"MeterUsage", "ThrottlingException"}), 2);
  EXPECT_EQ(value(Metric::kApiRecords, {"BatchMeterUsage", "Success"}), 3);
  EXPECT_EQ(value(Metric::kApiRecords, {"BatchMeterUsage", "DuplicateRecord"}), 1);
  EXPECT_EQ(value(Metric::kApiRecords, {"BatchMeterUsage", "CustomerNotSubscribed"}), 2);
  EXPECT_EQ(value(Metric::kApiRecords, {"BatchMeterUsage", "Unprocessed"}), 4);
  EXPECT_EQ(value(Metric::kApiThrottled, {"MeterUsage"}), 1);
  EXPECT_EQ(value(Metric::kApiInjectedFaults, {"MeterUsage"}), 1);
  Series& latency = metrics.family(Metric::kApiRequestDuration).With({"BatchMeterUsage"});
  EXPECT_EQ(latency.count(), 1u);
  EXPECT_DOUBLE_EQ(latency.sum(), 0.0025);
  EXPECT_EQ(latency.CumulativeBucket(1), 0u);  // le=0.001
  EXPECT_EQ(latency.CumulativeBucket(2), 1u);  // le=0.0025

  metrics.OnGroupCommit({5, 1500, true});
  metrics.OnGroupCommit({2, 300, false});
  EXPECT_EQ(value(Metric::kStoreGroupCommits, {"ok"}), 1);
  EXPECT_EQ(value(Metric::kStoreGroupCommits, {"error"}), 1);
  EXPECT_EQ(value(Metric::kStoreErrors, {}), 1);
  EXPECT_EQ(metrics.family(Metric::kStoreGroupUnits).With({}).count(), 2u);
  EXPECT_DOUBLE_EQ(metrics.family(Metric::kStoreGroupUnits).With({}).sum(), 7);
  EXPECT_DOUBLE_EQ(metrics.family(Metric::kStoreGroupDuration).With({}).sum(), 0.0018);
}

}  // namespace
}  // namespace meterd::observability
