// meterd-micro-bench: Google Benchmark cases for the pieces of the BatchMeterUsage request path,
// each on the input it sees in production (a 25-record body, some records with allocations),
// so that a regression in one piece shows up here before it shows up in meterd-bench.
//
//   build/bin/meterd-micro-bench [--benchmark_filter=Batch25]
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "auth/sigv4.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/http_message.h"
#include "common/time_util.h"
#include "json/json.h"
#include "metering/dedup_key.h"
#include "metering/types.h"
#include "model/service_model.h"
#include "protocol/codec.h"
#include "store/store.h"

namespace {

using meterd::Status;

constexpr int kRecords = 25;

// A BatchMeterUsage body as an SDK sends it: 25 records of one product, over the last hours,
// customers named both ways, every fourth record with tagged allocations.
std::string BatchBody() {
  const int64_t now_s = meterd::WallClockMillis() / 1000;
  std::string body = R"({"ProductCode":"8b4wbtr6ojt0nizd6fd3o3wjr","UsageRecords":[)";
  for (int i = 0; i < kRecords; ++i) {
    if (i > 0) body += ',';
    body += "{\"Timestamp\":" + std::to_string(now_s - int64_t{3600} * (i % 6));
    if (i % 2 == 0) {
      body += ",\"CustomerIdentifier\":\"k6QPpe1ViR" + std::string(1, static_cast<char>('a' + i)) +
              "\"";
    } else {
      body += ",\"CustomerAWSAccountId\":\"" + std::to_string(888899990000 + i) + "\"";
    }
    body += ",\"Dimension\":\"" + std::string(i % 3 == 0 ? "api_calls" : "storage_gb") + "\"";
    body += ",\"Quantity\":" + std::to_string(100 + i);
    if (i % 4 == 0) {
      body += R"(,"UsageAllocations":[{"AllocatedUsageQuantity":60,"Tags":[)"
              R"({"Key":"team","Value":"payments"},{"Key":"env","Value":"production"}]},)"
              R"({"AllocatedUsageQuantity":)" +
              std::to_string(40 + i) + R"(,"Tags":[{"Key":"team","Value":"search"}]}])";
    }
    body += '}';
  }
  body += "]}";
  return body;
}

const std::string& Body() {
  static const std::string* body = new std::string(BatchBody());
  return *body;
}

meterd::json::Value ParsedBody() {
  auto parsed = meterd::json::Parse(Body());
  if (!parsed.ok()) std::abort();
  return std::move(parsed).value();
}

void BM_JsonParseBatch25(benchmark::State& state) {
  const std::string& body = Body();
  for (auto _ : state) {
    auto parsed = meterd::json::Parse(body);
    benchmark::DoNotOptimize(parsed);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
  state.SetItemsProcessed(state.iterations() * kRecords);
}
BENCHMARK(BM_JsonParseBatch25);

void BM_DecodeBatch25(benchmark::State& state) {
  const std::string& body = Body();
  for (auto _ : state) {
    auto parsed = meterd::json::Parse(body);
    meterd::metering::BatchMeterUsageInput input = meterd::protocol::DecodeBatchMeterUsage(*parsed);
    benchmark::DoNotOptimize(input);
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}
BENCHMARK(BM_DecodeBatch25);

void BM_ValidateBatch25(benchmark::State& state) {
  const meterd::model::ServiceModel& model = meterd::model::ServiceModel::Builtin();
  const meterd::json::Value body = ParsedBody();
  std::vector<meterd::model::Violation> violations;
  model.ValidateInput("BatchMeterUsage", body, &violations);
  if (!violations.empty()) {
    state.SkipWithError(meterd::model::FormatViolations(violations).c_str());
    return;
  }
  for (auto _ : state) {
    violations.clear();
    model.ValidateInput("BatchMeterUsage", body, &violations);
    benchmark::DoNotOptimize(violations);
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}
BENCHMARK(BM_ValidateBatch25);

void BM_SigV4Verify(benchmark::State& state) {
  const meterd::auth::Credential cred{"AKIAACMESELLER000001",
                                      "acmeSellerSecretKey0000000000000000000001", "", true};
  const meterd::auth::MapKeyStore keys({cred});
  const meterd::auth::SigV4Verifier verifier(&keys);
  const std::string& body = Body();
  // The headers an AWS SDK sends; SignRequest signs the ones SigV4 covers.
  std::vector<meterd::HttpHeader> headers = {
      {"Host", "metering.marketplace.us-east-1.amazonaws.com"},
      {"Content-Type", "application/x-amz-json-1.1"},
      {"X-Amz-Target", "AWSMPMeteringService.BatchMeterUsage"},
      {"User-Agent", "aws-sdk-java/2.25.6 Linux/6.1 OpenJDK_64-Bit_Server_VM/17.0.10 md/io#sync"},
      {"amz-sdk-invocation-id", meterd::RandomUuid()},
      {"amz-sdk-request", "attempt=1; max=4"},
      {"Content-Length", std::to_string(body.size())},
  };
  const int64_t now = meterd::WallClockMillis();
  meterd::auth::SignRequest("POST", "/", &headers, body, cred, "us-east-1",
                            meterd::auth::kMeteringSigningName, now);
  const meterd::auth::RequestView view{"POST", "/", &headers, body};
  if (!verifier.Verify(view, now).ok()) {
    state.SkipWithError("the signed request does not verify");
    return;
  }
  for (auto _ : state) {
    auto verified = verifier.Verify(view, now);
    benchmark::DoNotOptimize(verified);
  }
}
BENCHMARK(BM_SigV4Verify);

void BM_EncodeBatchResponse25(benchmark::State& state) {
  auto parsed = ParsedBody();
  meterd::metering::BatchMeterUsageInput input = meterd::protocol::DecodeBatchMeterUsage(parsed);
  meterd::metering::BatchMeterUsageOutput output;
  for (auto& record : input.records) {
    meterd::metering::UsageRecordResult result;
    result.record = std::move(record);
    result.metering_record_id = meterd::RandomUuid();
    result.status = meterd::metering::RecordStatus::kSuccess;
    output.results.push_back(std::move(result));
  }
  for (auto _ : state) {
    std::string encoded = meterd::protocol::EncodeBatchMeterUsage(output);
    benchmark::DoNotOptimize(encoded);
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}
BENCHMARK(BM_EncodeBatchResponse25);

// 25 rows as MeteringService::BatchMeterUsage builds them, each with a new dedup key.
std::vector<meterd::store::UsageRow> Rows(int64_t* next, int64_t now_ms) {
  std::vector<meterd::store::UsageRow> rows(kRecords);
  const std::string request_id = meterd::RandomUuid();
  for (auto& row : rows) {
    const int64_t n = (*next)++;
    row.record_id = meterd::RandomUuid();
    row.source = "BatchMeterUsage";
    row.region = "us-east-1";
    row.product_code = "8b4wbtr6ojt0nizd6fd3o3wjr";
    row.seller_account = "111122223333";
    row.customer_account = std::to_string(100000000000 + n / 4);
    static constexpr const char* kDimensions[] = {"api_calls", "storage_gb", "active_users",
                                                  "data_processed_gb"};
    row.dimension = kDimensions[n % 4];
    row.usage_hour_ms = meterd::FloorToHour(now_ms);
    row.timestamp_ms = now_ms;
    row.dedup_key =
        meterd::metering::BatchDedupKey(row.region, row.product_code, row.customer_account,
                                        row.license_arn, row.dimension, row.usage_hour_ms);
    row.quantity = 1 + n % 100;
    row.request_id = request_id;
    row.received_ms = now_ms;
  }
  return rows;
}

// One 25-row unit through a real GroupCommitStore, submitted and waited for: with one unit in
// flight every commit is its own transaction, so the sqlite case measures the fsync of
// synchronous=FULL. Rows are built in chunks outside the timing: only the store is measured.
void GroupCommitOneUnit(benchmark::State& state, const char* backend) {
  std::string dir;
  if (std::string_view(backend) == "sqlite") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "meterd-micro-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    dir = tmpl;
  }
  meterd::store::StoreOptions options;
  options.data_dir = dir;
  auto opened = meterd::store::OpenStore(backend, options);
  if (!opened.ok()) {
    state.SkipWithError(opened.status().ToString().c_str());
    return;
  }
  std::unique_ptr<meterd::store::Store> store = std::move(opened).value();
  const int64_t now_ms = meterd::WallClockMillis();
  int64_t next = 0;
  constexpr size_t kChunk = 256;
  std::vector<std::vector<meterd::store::UsageRow>> units;
  size_t used = 0;
  for (auto _ : state) {
    if (used == units.size()) {
      state.PauseTiming();
      units.clear();
      for (size_t i = 0; i < kChunk; ++i) units.push_back(Rows(&next, now_ms));
      used = 0;
      state.ResumeTiming();
    }
    const std::vector<meterd::store::UsageRow>& rows = units[used++];
    Status st = meterd::store::SubmitAndWait(store.get(), [&rows](meterd::store::Transaction& txn) {
      for (const auto& row : rows) {
        auto existing = txn.InsertUsageIfAbsent(row);
        if (!existing.ok()) return existing.status();
      }
      return Status::Ok();
    });
    if (!st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
  store->Close();
  store.reset();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
}

void BM_GroupCommitOneUnit(benchmark::State& state) { GroupCommitOneUnit(state, "sqlite"); }
// fsync dominates: a few hundred units give a stable mean without a long run.
BENCHMARK(BM_GroupCommitOneUnit)->UseRealTime()->Iterations(300)->Unit(benchmark::kMicrosecond);

void BM_GroupCommitOneUnitMemory(benchmark::State& state) { GroupCommitOneUnit(state, "memory"); }
// Real time: the work happens on the writer thread, not on the thread that waits.
BENCHMARK(BM_GroupCommitOneUnitMemory)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
