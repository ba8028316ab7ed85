// meterd-store-bench: the storage ceiling. Writes the rows meterd writes for BatchMeterUsage
// (same fields, same sizes, dedup keys from the real key function) through the store's own
// commit path (OpenStore + Submit, group commit, durable), from ONE thread, with no HTTP, JSON or
// SigV4 in the way. Whatever meterd reaches over HTTP is bounded by this. Each unit also writes
// one audit event of the size meterd writes per request (a 25-record BatchMeterUsage event is
// about 1.5 KB), in the same transaction, as meterd does.
//
//   meterd-store-bench --data DIR [--store embedded|sqlite] [--records N] [--duration S]
//                      [--records-per-unit 25] [--inflight 32] [--preload N]
//                      [--preload-days D] [--json]
//
// --inflight K keeps up to K units queued, as K connections of meterd would, so that group
// commit can put them in one transaction; --inflight 1 is one unit per transaction.
// --preload N first writes N rows in big units, unmeasured (the "10 M records already stored"
// case): a ledger's history, the D days (default 30) before the measured run's hours, written in
// the order it arrived, the same customers and dimensions every hour (10 M over 30 days: 3,473
// customers x 4 dimensions x 720 hours). --preload-days 0 is the worst case instead: all N rows in
// the measured run's 6 hours (10 M in 6 hours: 1.7 M customers an hour), which no ledger holds
// but which leaves no locality at all to the time-ordered index. At the end the ledger is counted:
// it must hold exactly what was acknowledged.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/time_util.h"
#include "metering/dedup_key.h"
#include "store/store.h"

namespace {

using meterd::Status;
using meterd::store::Store;
using meterd::store::UsageRow;
using meterd::store::WriteUnit;
using SteadyClock = std::chrono::steady_clock;

// Upper bounds of the options: a run must end, and the numbers must fit what we allocate.
constexpr int64_t kMaxRecords = int64_t{1'000'000'000};
constexpr double kMaxDurationS = 24 * 3600;
constexpr int64_t kMaxRecordsPerUnit = 100'000;
constexpr int64_t kMaxInflight = 100'000;
// Preload units: big, so that the preload is bounded by SQLite and not by per-unit overhead,
// and few in flight, so that the writer always has the next one queued.
constexpr int64_t kPreloadUnitRecords = 50000;
constexpr int64_t kPreloadInflight = 2;

struct Options {
  std::string data_dir;
  std::string store = "embedded";
  int64_t records = -1;    // -1: not bounded by a count
  double duration_s = -1;  // -1: not bounded by time
  int64_t records_per_unit = 25;
  int64_t inflight = 32;
  int64_t preload = 0;
  int64_t preload_days = 30;
  bool json = false;
};

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "meterd-store-bench: %s\n"
               "usage: meterd-store-bench --data DIR [--store embedded|sqlite] [--records N]\n"
               "         [--duration S]\n"
               "         [--records-per-unit 25] [--inflight 32] [--preload N]\n"
               "         [--preload-days D] [--json]\n"
               "  --data must be a new or empty directory; without --records and --duration the\n"
               "  run lasts 10 s; with both it ends at whichever comes first.\n",
               error.c_str());
  std::exit(2);
}

int64_t ParseInt(std::string_view flag, const char* text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi) {
    Usage(std::string(flag) + " must be an integer in [" + std::to_string(lo) + ", " +
          std::to_string(hi) + "]");
  }
  return v;
}

double ParseSeconds(std::string_view flag, const char* text) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v > 0) || v > kMaxDurationS) {
    Usage(std::string(flag) + " must be a number of seconds in (0, 86400]");
  }
  return v;
}

Options ParseOptions(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--json") {
      opt.json = true;
      continue;
    }
    if (i + 1 >= argc) Usage("missing value for " + std::string(flag));
    const char* value = argv[++i];
    if (flag == "--data") {
      opt.data_dir = value;
    } else if (flag == "--store") {
      opt.store = value;
      if (opt.store != "embedded" && opt.store != "sqlite") Usage("--store is embedded or sqlite");
    } else if (flag == "--records") {
      opt.records = ParseInt(flag, value, 0, kMaxRecords);
    } else if (flag == "--duration") {
      opt.duration_s = ParseSeconds(flag, value);
    } else if (flag == "--records-per-unit") {
      opt.records_per_unit = ParseInt(flag, value, 1, kMaxRecordsPerUnit);
    } else if (flag == "--inflight") {
      opt.inflight = ParseInt(flag, value, 1, kMaxInflight);
    } else if (flag == "--preload") {
      opt.preload = ParseInt(flag, value, 0, kMaxRecords);
    } else if (flag == "--preload-days") {
      opt.preload_days = ParseInt(flag, value, 0, 3660);
    } else {
      Usage("unknown option " + std::string(flag));
    }
  }
  if (opt.data_dir.empty()) Usage("--data is required");
  if (opt.records < 0 && opt.duration_s < 0) opt.duration_s = 10;
  // A fresh ledger is what makes "rows counted == rows acknowledged" a check.
  std::error_code ec;
  if (std::filesystem::exists(opt.data_dir, ec) && !std::filesystem::is_empty(opt.data_dir, ec)) {
    Usage("--data " + opt.data_dir + " is not empty");
  }
  return opt;
}

// Builds the rows of BatchMeterUsage requests as MeteringService::BatchMeterUsage does: one
// seller and product in one region, records of legacy-SaaS customers (half named by
// CustomerIdentifier, half by CustomerAWSAccountId), a few dimensions over the last hours, ids
// time-ordered (UUIDv7) as meterd's. Record i maps to a distinct (customer, dimension, hour), so
// every dedup key is new. The first `history_rows` records are the ledger's history when
// `history_days` > 0 (see --preload-days).
class RowFactory {
 public:
  RowFactory(int64_t now_ms, int64_t history_rows, int64_t history_days)
      : now_ms_(now_ms),
        hour_ms_(meterd::FloorToHour(now_ms)),
        history_rows_(history_days > 0 ? history_rows : 0),
        history_hours_(history_days * 24) {}

  UsageRow Make(int64_t i, const std::string& request_id) const {
    if (i < history_rows_) return MakeHistory(i, request_id);
    constexpr int64_t kHours = 6;  // BatchMeterUsage accepts up to 6 hours back
    const int64_t customer = i / (kDims * kHours);
    const int64_t slot = i % (kDims * kHours);
    const int64_t usage_hour_ms = hour_ms_ - (slot / kDims) * meterd::kMillisPerHour;
    int64_t timestamp_ms = usage_hour_ms + (i * 7919) % meterd::kMillisPerHour;
    if (timestamp_ms > now_ms_) timestamp_ms = usage_hour_ms;
    return Row(i, kLiveCustomers + customer, slot % kDims, usage_hour_ms, timestamp_ms,
               meterd::WallClockMillis(), request_id);
  }

 private:
  static constexpr int64_t kDims = 4;
  // Customer numbers of the history and of the measured records never meet.
  static constexpr int64_t kLiveCustomers = 50'000'000'000;

  // Row i of the history: hour h of history_hours_ (ending 6 hours before the measured run's
  // hour, so no history key can be a measured record's), every customer once per dimension.
  UsageRow MakeHistory(int64_t i, const std::string& request_id) const {
    const int64_t per_hour = (history_rows_ + history_hours_ - 1) / history_hours_;
    const int64_t customers = (per_hour + kDims - 1) / kDims;
    const int64_t hour = i / (customers * kDims);
    const int64_t usage_hour_ms = hour_ms_ - (6 + history_hours_ - hour) * meterd::kMillisPerHour;
    const int64_t in_hour = i % (customers * kDims);
    const int64_t offset_ms = in_hour * (meterd::kMillisPerHour / (customers * kDims));
    return Row(i, in_hour / kDims, in_hour % kDims, usage_hour_ms, usage_hour_ms + offset_ms,
               usage_hour_ms + offset_ms + 1000, request_id);
  }

  static UsageRow Row(int64_t i, int64_t customer, int64_t dim, int64_t usage_hour_ms,
                      int64_t timestamp_ms, int64_t received_ms, const std::string& request_id) {
    static constexpr std::string_view kDimensions[] = {"api_calls", "storage_gb", "active_users",
                                                       "data_processed_gb"};
    UsageRow row;
    row.record_id = meterd::TimeOrderedUuid();
    row.source = "BatchMeterUsage";
    row.region = "us-east-1";
    row.product_code = "8b4wbtr6ojt0nizd6fd3o3wjr";  // AWS product codes: 25 characters
    row.seller_account = "111122223333";
    // Scatter customers over the account space (a bijection mod 10^11: the multiplier is prime
    // to 10), so that their dedup keys land all over the index as real traffic does, not in
    // ascending order, which would make every insert an append.
    constexpr int64_t kSpace = 100'000'000'000;
    const int64_t scattered = static_cast<int64_t>(
        (static_cast<unsigned __int128>(customer) * 6'364'136'223'846'793ULL) % kSpace);
    row.customer_account = std::to_string(100'000'000'000 + scattered);
    if (customer % 2 == 0) row.customer_identifier = CustomerIdentifier(scattered);
    row.dimension = std::string(kDimensions[dim]);
    row.usage_hour_ms = usage_hour_ms;
    row.timestamp_ms = timestamp_ms;
    row.dedup_key =
        meterd::metering::BatchDedupKey(row.region, row.product_code, row.customer_account,
                                        row.license_arn, row.dimension, row.usage_hour_ms);
    row.quantity = 1 + (i % 1000);
    row.request_id = request_id;
    row.received_ms = received_ms;
    return row;
  }

 private:
  // The shape of Marketplace's customer identifiers: 11 characters of [A-Za-z0-9].
  static std::string CustomerIdentifier(int64_t n) {
    static constexpr char kAlphabet[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string id(11, '0');
    for (char& c : id) {
      c = kAlphabet[n % 62];
      n /= 62;
    }
    return id;
  }

  int64_t now_ms_;
  int64_t hour_ms_;
  int64_t history_rows_;
  int64_t history_hours_;
};

// The audit event meterd writes for the request of these rows: the facts in columns and a
// CloudTrail-shaped JSON of about 1.5 KB for 25 records (the request's records, the outcome).
meterd::store::AuditEventRow AuditEventOf(const std::vector<UsageRow>& rows,
                                          const std::string& request_id) {
  meterd::store::AuditEventRow event;
  event.event_id = meterd::TimeOrderedUuid();
  event.event_time_ms = rows.empty() ? 0 : rows.front().received_ms;
  event.event_source = "metering-marketplace.amazonaws.com";
  event.event_name = "BatchMeterUsage";
  event.account_id = rows.empty() ? "" : rows.front().seller_account;
  event.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  std::string json = R"({"eventVersion":"1.08","eventSource":"metering-marketplace.amazonaws.com",)"
                     R"("eventName":"BatchMeterUsage","requestID":")" +
                     request_id + R"(","requestParameters":{"UsageRecords":[)";
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) json += ',';
    json += R"({"CustomerAWSAccountId":")" + rows[i].customer_account + R"(","Dimension":")" +
            rows[i].dimension + R"(","Quantity":)" + std::to_string(rows[i].quantity) + "}";
  }
  json += R"(]},"responseElements":{"records":)" + std::to_string(rows.size()) + "}}";
  event.event_json = std::move(json);
  return event;
}

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// What a phase measured.
struct PhaseResult {
  int64_t records = 0;  // acknowledged (committed and inserted as new)
  int64_t units = 0;
  uint64_t groups = 0;
  double seconds = 0;
  std::vector<double> latencies_ms;  // Submit to done, one per unit
  Status error = Status::Ok();
};

// Submits units of `per_unit` rows from this one thread, keeping up to `inflight` queued, until
// `records` rows (if >= 0) or `duration_s` (if >= 0) are reached, then waits for every answer.
// Row numbers start at `*next_row` (advanced), so that phases never repeat a dedup key.
PhaseResult RunPhase(Store* store, const RowFactory& factory, int64_t* next_row, int64_t records,
                     double duration_s, int64_t per_unit, int64_t inflight, bool keep_latencies) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    int64_t inflight = 0;
    int64_t acked_records = 0;
    int64_t duplicates = 0;
    std::vector<double> latencies_ms;
    Status error = Status::Ok();
    SteadyClock::time_point last_done;
  };
  auto shared = std::make_shared<Shared>();
  PhaseResult result;
  const uint64_t groups_before = store->Stats().groups;
  const SteadyClock::time_point start = SteadyClock::now();
  const SteadyClock::time_point deadline =
      duration_s >= 0 ? start + std::chrono::duration_cast<SteadyClock::duration>(
                                    std::chrono::duration<double>(duration_s))
                      : SteadyClock::time_point::max();
  int64_t submitted = 0;
  shared->last_done = start;
  while (records < 0 || submitted < records) {
    {
      std::unique_lock<std::mutex> lock(shared->mu);
      shared->cv.wait(lock, [&] { return shared->inflight < inflight; });
      if (!shared->error.ok()) break;
    }
    if (SteadyClock::now() >= deadline) break;
    const int64_t n = records < 0 ? per_unit : std::min(per_unit, records - submitted);
    // The rows are built here, on the submitting thread, as meterd builds them on its HTTP
    // threads before Submit.
    auto rows = std::make_shared<std::vector<UsageRow>>();
    rows->reserve(static_cast<size_t>(n));
    const std::string request_id = meterd::RandomUuid();
    for (int64_t k = 0; k < n; ++k) rows->push_back(factory.Make((*next_row)++, request_id));
    auto inserted = std::make_shared<int64_t>(0);
    auto event = std::make_shared<meterd::store::AuditEventRow>(AuditEventOf(*rows, request_id));
    WriteUnit unit;
    unit.apply = [rows, inserted, event](meterd::store::Transaction& txn) -> Status {
      for (const UsageRow& row : *rows) {
        auto existing = txn.InsertUsageIfAbsent(row);
        if (!existing.ok()) return existing.status();
        if (!existing->has_value()) ++*inserted;
      }
      return txn.PutAuditEvent(*event);
    };
    const SteadyClock::time_point submitted_at = SteadyClock::now();
    unit.done = [shared, inserted, n, submitted_at, keep_latencies](const Status& st) {
      const SteadyClock::time_point now = SteadyClock::now();
      std::lock_guard<std::mutex> lock(shared->mu);
      if (st.ok()) {
        shared->acked_records += *inserted;
        shared->duplicates += n - *inserted;
      } else if (shared->error.ok()) {
        shared->error = st;
      }
      if (keep_latencies) shared->latencies_ms.push_back(Seconds(now - submitted_at) * 1e3);
      shared->last_done = now;
      shared->inflight--;
      shared->cv.notify_one();
    };
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      shared->inflight++;
    }
    store->Submit(std::move(unit));
    submitted += n;
    result.units++;
  }
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->cv.wait(lock, [&] { return shared->inflight == 0; });
  result.records = shared->acked_records;
  result.seconds = Seconds(shared->last_done - start);
  result.groups = store->Stats().groups - groups_before;
  result.latencies_ms = std::move(shared->latencies_ms);
  result.error = shared->error;
  if (result.error.ok() && shared->duplicates > 0) {
    result.error = Status(meterd::StatusCode::kInternal,
                          std::to_string(shared->duplicates) + " rows met an existing dedup key");
  }
  return result;
}

// The value at fraction p of the way through `sorted` (rounded to the nearest index).
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto idx = static_cast<size_t>(std::lround(p * static_cast<double>(sorted.size() - 1)));
  return sorted[std::min(idx, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = ParseOptions(argc, argv);
  meterd::store::StoreOptions store_options;
  store_options.data_dir = opt.data_dir;
  auto opened = meterd::store::OpenStore(opt.store, store_options);
  if (!opened.ok()) {
    std::fprintf(stderr, "meterd-store-bench: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Store> store = std::move(opened).value();
  const RowFactory factory(meterd::WallClockMillis(), opt.preload, opt.preload_days);
  int64_t next_row = 0;

  PhaseResult preload;
  if (opt.preload > 0) {
    std::fprintf(stderr, "meterd-store-bench: preloading %lld rows (%s)...\n",
                 static_cast<long long>(opt.preload),
                 opt.preload_days > 0
                     ? ("a history of " + std::to_string(opt.preload_days) + " days").c_str()
                     : "all in the measured run's 6 hours");
    preload = RunPhase(store.get(), factory, &next_row, opt.preload, -1, kPreloadUnitRecords,
                       kPreloadInflight, false);
    if (!preload.error.ok()) {
      std::fprintf(stderr, "meterd-store-bench: preload failed: %s\n",
                   preload.error.ToString().c_str());
      return 1;
    }
    std::fprintf(stderr, "meterd-store-bench: preloaded %lld rows in %.1f s (%.0f rows/s)\n",
                 static_cast<long long>(preload.records), preload.seconds,
                 preload.seconds > 0 ? static_cast<double>(preload.records) / preload.seconds : 0);
  }

  PhaseResult run = RunPhase(store.get(), factory, &next_row, opt.records, opt.duration_s,
                             opt.records_per_unit, opt.inflight, true);
  if (!run.error.ok()) {
    std::fprintf(stderr, "meterd-store-bench: %s\n", run.error.ToString().c_str());
    return 1;
  }
  auto counted = store->CountUsageRows();
  store->Close();
  const int64_t acknowledged = preload.records + run.records;
  if (!counted.ok() || *counted != acknowledged) {
    std::fprintf(
        stderr, "meterd-store-bench: ledger holds %s rows, %lld were acknowledged\n",
        counted.ok() ? std::to_string(*counted).c_str() : counted.status().ToString().c_str(),
        static_cast<long long>(acknowledged));
    return 1;
  }

  std::sort(run.latencies_ms.begin(), run.latencies_ms.end());
  const double rate = run.seconds > 0 ? static_cast<double>(run.records) / run.seconds : 0;
  const double p50 = Percentile(run.latencies_ms, 0.50);
  const double p99 = Percentile(run.latencies_ms, 0.99);
  if (opt.json) {
    std::printf(
        "{\"records\":%lld,\"seconds\":%.3f,\"records_per_s\":%.1f,\"units\":%lld,\"groups\":%llu,"
        "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"records_per_unit\":%lld,\"inflight\":%lld,"
        "\"preload_records\":%lld,\"preload_seconds\":%.3f,\"preload_days\":%lld}\n",
        static_cast<long long>(run.records), run.seconds, rate, static_cast<long long>(run.units),
        static_cast<unsigned long long>(run.groups), p50, p99,
        static_cast<long long>(opt.records_per_unit), static_cast<long long>(opt.inflight),
        static_cast<long long>(preload.records), preload.seconds,
        static_cast<long long>(opt.preload_days));
  } else {
    std::printf("records        %lld in %.2f s: %.0f records/s\n",
                static_cast<long long>(run.records), run.seconds, rate);
    std::printf("units          %lld of %lld records, %lld in flight\n",
                static_cast<long long>(run.units), static_cast<long long>(opt.records_per_unit),
                static_cast<long long>(opt.inflight));
    std::printf(
        "groups         %llu (%.1f units per commit)\n",
        static_cast<unsigned long long>(run.groups),
        run.groups > 0 ? static_cast<double>(run.units) / static_cast<double>(run.groups) : 0);
    std::printf("unit latency   p50 %.2f ms, p99 %.2f ms\n", p50, p99);
    std::printf("ledger rows    %lld (as acknowledged)\n", static_cast<long long>(acknowledged));
  }
  return 0;
}
