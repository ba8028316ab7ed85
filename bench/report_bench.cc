// meterd-report-bench: usage reports at scale (docs/REPORTS.md). Fills a ledger through the
// store's real write path (OpenStoreWithReader + Submit: group commit, SQLite synchronous=FULL,
// rollups in the same transactions), then measures
//   - the monthly report (GET /v1/reports/usage?granularity=month minus HTTP): median and p99,
//   - the daily report of the same month,
//   - the export rate of the whole ledger as CSV and JSON Lines (records/s, MB/s), through the
//     same streams the admin API sends.
//
//   meterd-report-bench --data DIR [--records 10000000] [--queries 100]
//
// The records: one product with four dimensions (two priced), 2,000 buyers, one record per
// (buyer, dimension, hour) from 2026-10-01 on (every dedup key new), one in ten with tagged
// UsageAllocations.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto.h"
#include "common/time_util.h"
#include "metering/dedup_key.h"
#include "reports/report.h"
#include "store/store.h"

namespace {

using meterd::store::UsageRow;
using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kBuyers = 2000;
constexpr int64_t kDims = 4;
constexpr const char* kDimensions[kDims] = {"api_calls", "storage_gb", "active_users", "jobs"};
constexpr const char* kProduct = "8b4wbtr6ojt0nizd6fd3o3wjr";
constexpr int64_t kUnitRecords = 2000;
constexpr int64_t kInflight = 8;

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "meterd-report-bench: %s\n"
               "usage: meterd-report-bench --data DIR [--records 10000000] [--queries 100]\n",
               error.c_str());
  std::exit(2);
}

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

UsageRow MakeRow(int64_t i, int64_t start_ms) {
  UsageRow row;
  const int64_t buyer = i % kBuyers;
  const int64_t dim = (i / kBuyers) % kDims;
  const int64_t hour = i / (kBuyers * kDims);
  row.record_id = meterd::RandomUuid();
  row.source = "BatchMeterUsage";
  row.region = "us-east-1";
  row.product_code = kProduct;
  row.seller_account = "111122223333";
  row.customer_account = std::to_string(100000000000 + buyer * 7919);
  row.dimension = kDimensions[dim];
  row.usage_hour_ms = start_ms + hour * meterd::kMillisPerHour;
  row.timestamp_ms = row.usage_hour_ms + (i * 7919) % meterd::kMillisPerHour;
  row.dedup_key = meterd::metering::BatchDedupKey(
      row.region, row.product_code, row.customer_account, "", row.dimension, row.usage_hour_ms);
  row.quantity = 1 + (i % 1000);
  if (i % 10 == 0) {
    const int64_t a = row.quantity / 3;
    row.allocations_json = "[{\"AllocatedUsageQuantity\":" + std::to_string(a) +
                           ",\"Tags\":[{\"Key\":\"team\",\"Value\":\"t" + std::to_string(i % 7) +
                           "\"}]},{\"AllocatedUsageQuantity\":" + std::to_string(row.quantity - a) +
                           "}]";
  }
  row.request_id = "bench";
  row.received_ms = row.timestamp_ms;
  return row;
}

struct Percentiles {
  double median = 0, p99 = 0;
};
Percentiles Of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Percentiles p;
  if (v.empty()) return p;
  p.median = v[v.size() / 2];
  p.p99 = v[std::min(v.size() - 1, (v.size() * 99) / 100)];
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data_dir;
  int64_t records = 10'000'000;
  int queries = 100;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (i + 1 >= argc) Usage("missing value for " + std::string(flag));
    const char* value = argv[++i];
    if (flag == "--data") {
      data_dir = value;
    } else if (flag == "--records") {
      records = std::atoll(value);
    } else if (flag == "--queries") {
      queries = std::atoi(value);
    } else {
      Usage("unknown option " + std::string(flag));
    }
  }
  if (data_dir.empty() || records < 1 || queries < 1) Usage("--data is required");
  std::error_code ec;
  if (std::filesystem::exists(data_dir, ec) && !std::filesystem::is_empty(data_dir, ec)) {
    Usage("--data " + data_dir + " is not empty");
  }
  meterd::store::StoreOptions options;
  options.data_dir = data_dir;
  auto opened = meterd::store::OpenStoreWithReader("sqlite", options);
  if (!opened.ok()) Usage(opened.status().ToString());
  meterd::store::Store* store = opened->store.get();
  meterd::reports::UsageReader* reader = opened->reader.get();

  // --- Fill.
  const int64_t start_ms = *meterd::ParseIso8601("2026-10-01T00:00:00Z");
  std::mutex mu;
  std::condition_variable cv;
  int64_t inflight = 0, acknowledged = 0;
  bool failed = false;
  const auto fill_start = SteadyClock::now();
  for (int64_t next = 0; next < records;) {
    auto rows = std::make_shared<std::vector<UsageRow>>();
    for (int64_t n = 0; n < kUnitRecords && next < records; ++n)
      rows->push_back(MakeRow(next++, start_ms));
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return inflight < kInflight; });
      ++inflight;
    }
    meterd::store::WriteUnit unit;
    unit.apply = [rows](meterd::store::Transaction& txn) {
      for (const UsageRow& row : *rows) {
        auto existing = txn.InsertUsageIfAbsent(row);
        if (!existing.ok()) return existing.status();
      }
      return meterd::Status::Ok();
    };
    unit.done = [&, n = static_cast<int64_t>(rows->size())](const meterd::Status& st) {
      std::lock_guard<std::mutex> lock(mu);
      --inflight;
      if (st.ok())
        acknowledged += n;
      else
        failed = true;
      cv.notify_all();
    };
    store->Submit(std::move(unit));
    if (next % 1'000'000 == 0) {
      std::fprintf(stderr, "  filled %lld records (%.0f s)\n", static_cast<long long>(next),
                   Seconds(SteadyClock::now() - fill_start));
    }
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return inflight == 0; });
  }
  const double fill_s = Seconds(SteadyClock::now() - fill_start);
  if (failed || acknowledged != records) Usage("the fill failed");
  std::printf("fill: %lld records in %.1f s (%.0f records/s, rollups included)\n",
              static_cast<long long>(records), fill_s, records / fill_s);

  // --- Reports.
  auto catalog = meterd::catalog::Catalog::FromJson(
      R"({"accounts":[{"id":"111122223333","name":"seller","roles":["seller"]}],
          "products":[{"code":"8b4wbtr6ojt0nizd6fd3o3wjr","seller":"111122223333","kind":"saas",
            "integration":"legacy","dimensions":[{"name":"api_calls","pricePerUnit":0.0001},
            {"name":"storage_gb","pricePerUnit":0.023},{"name":"active_users"},{"name":"jobs"}]}]})",
      start_ms);
  if (!catalog.ok()) Usage(catalog.status().ToString());
  auto time_report = [&](const char* granularity, const char* label) {
    meterd::reports::Params params = {{"granularity", granularity},
                                      {"from", "2026-10-01T00:00:00Z"},
                                      {"to", "2026-11-01T00:00:00Z"}};
    auto request = meterd::reports::ParseReportRequest(params);
    if (!request.ok()) Usage(request.status().ToString());
    std::vector<double> ms;
    size_t rows = 0, bytes = 0;
    for (int q = 0; q < queries; ++q) {
      const auto t0 = SteadyClock::now();
      auto report = meterd::reports::BuildReport(reader, **catalog, *request);
      if (!report.ok()) Usage(report.status().ToString());
      std::string body = meterd::reports::ReportJson(*report, 1);
      ms.push_back(Seconds(SteadyClock::now() - t0) * 1000);
      rows = report->rows.size();
      bytes = body.size();
    }
    Percentiles p = Of(ms);
    std::printf(
        "%s report of 2026-10 (%zu rows, %zu bytes of JSON): median %.2f ms, p99 %.2f ms "
        "over %d queries\n",
        label, rows, bytes, p.median, p.p99, queries);
  };
  time_report("month", "monthly");
  time_report("day", "daily");

  // --- Exports.
  for (auto format : {meterd::reports::ExportFormat::kCsv, meterd::reports::ExportFormat::kJsonl}) {
    auto stream = meterd::reports::UsageExportStream(reader, {}, format);
    const auto t0 = SteadyClock::now();
    size_t bytes = 0, lines = 0;
    std::string chunk;
    for (;;) {
      chunk.clear();
      auto step = stream(&chunk);
      if (step == meterd::HttpResponse::StreamStep::kFailed) Usage("export failed");
      bytes += chunk.size();
      lines += static_cast<size_t>(std::count(chunk.begin(), chunk.end(), '\n'));
      if (step == meterd::HttpResponse::StreamStep::kEnd) break;
    }
    const double s = Seconds(SteadyClock::now() - t0);
    const size_t exported = lines - (format == meterd::reports::ExportFormat::kCsv ? 1 : 0);
    std::printf("export %s: %zu records, %.1f MB in %.1f s: %.0f records/s, %.1f MB/s\n",
                format == meterd::reports::ExportFormat::kCsv ? "csv" : "jsonl", exported,
                bytes / 1e6, s, exported / s, bytes / 1e6 / s);
  }
  opened->store->Close();
  return 0;
}
