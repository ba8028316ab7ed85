// meterd-bench: the load generator of meterd (issue 7, "Performance: a benchmark harness").
//
//   meterd-bench catalog --customers 10000 --workloads 64 --out cat.json
//   meterd serve --listen 127.0.0.1:8080 --catalog cat.json --admin-listen off --throttle off
//   meterd-bench run --endpoint http://127.0.0.1:8080 --op batch --catalog cat.json --json
//   meterd-bench selftest
//
// Every request is signed afresh (SigV4) and every record is new unless a share of resends is
// asked for, so what is measured is what a fleet of sellers' clients would cost the server. This
// is the only translation unit that includes CLI11.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "auth/sigv4.h"
#include "bench_catalog.h"
#include "catalog/catalog.h"
#include "common/crypto.h"
#include "common/time_util.h"
#include "json/json.h"
#include "load_client.h"
#include "metering/rules.h"

namespace {

namespace bench = meterd::bench;
namespace auth = meterd::auth;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int CatalogCommand(const bench::CatalogOptions& options, const std::string& out_path) {
  auto text = bench::BenchCatalogJson(options);
  if (!text.ok()) {
    std::cerr << "meterd-bench: " << text.status().message() << "\n";
    return kExitUsage;
  }
  if (out_path == "-") {
    std::cout << *text;
    return std::cout.good() ? 0 : kExitFailure;
  }
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  out << *text;
  out.close();
  if (!out) {
    std::cerr << "meterd-bench: cannot write " << out_path << "\n";
    return kExitFailure;
  }
  return 0;
}

bool ValidRunId(const std::string& id) {
  if (id.empty() || id.size() > 32) return false;
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

int RunCommand(bench::RunOptions options, const std::string& op, const std::string& catalog_path,
               bool json_output) {
  options.op = op == "meter" ? bench::Op::kMeter : bench::Op::kBatch;
  if (options.duration_seconds == 0 && options.requests == 0) {
    std::cerr << "meterd-bench: --duration and --requests cannot both be 0 (unbounded)\n";
    return kExitUsage;
  }
  if (options.retry_share + options.conflict_share > 1) {
    std::cerr << "meterd-bench: --retry-share plus --conflict-share must not exceed 1\n";
    return kExitUsage;
  }
  if (options.run_id.empty()) options.run_id = meterd::RandomUuid().substr(0, 8);
  if (!ValidRunId(options.run_id)) {
    std::cerr << "meterd-bench: --run-id must be 1..32 of [a-z0-9-] (it is part of regions)\n";
    return kExitUsage;
  }
  auto catalog = meterd::catalog::Catalog::LoadFile(catalog_path, WallMillis());
  if (!catalog.ok()) {
    std::cerr << "meterd-bench: " << catalog.status().message() << "\n";
    return kExitUsage;
  }
  auto report = bench::RunLoad(options, **catalog);
  if (!report.ok()) {
    std::cerr << "meterd-bench: " << report.status().message() << "\n";
    return kExitUsage;
  }
  std::cout << (json_output ? bench::ReportJson(*report) : bench::ReportText(*report));
  std::cout.flush();
  return 0;
}

// --- selftest ---

// The smallest KeyStore: one credential.
class OneKeyStore final : public auth::KeyStore {
 public:
  explicit OneKeyStore(auth::Credential credential) : credential_(std::move(credential)) {}
  std::optional<auth::Credential> Find(std::string_view access_key_id) const override {
    if (access_key_id == credential_.access_key_id) return credential_;
    return std::nullopt;
  }

 private:
  auth::Credential credential_;
};

class SelfTest {
 public:
  void Check(bool ok, const std::string& what) {
    if (!ok) {
      ++failures_;
      std::cerr << "selftest: FAILED: " << what << "\n";
    }
  }
  int failures() const { return failures_; }

 private:
  int failures_ = 0;
};

void CheckSigning(SelfTest* t) {
  const int64_t now = WallMillis();
  const auth::Credential seller{bench::kSellerAccessKeyId, bench::kSellerSecret, "", true};
  bench::BatchTargets targets{
      bench::kSaasProduct, {seller}, {"bench-cust-0", "bench-cust-1"}, {"d0", "d1", "d2", "d3"}};
  const bench::BatchPlan plan(2, 4, 3, 5, "selftest", "");
  std::string body;
  bench::AppendBatchBody(plan, targets, now / 1000, 7, 1, &body);
  t->Check(meterd::json::Parse(body).ok(), "a batch body is JSON");
  std::vector<auth::Header> headers = {{"Host", "127.0.0.1:8080"},
                                       {"Content-Type", "application/x-amz-json-1.1"},
                                       {"X-Amz-Target", "AWSMPMeteringService.BatchMeterUsage"}};
  const std::string region = plan.Region(plan.RegionOf(7));
  auth::SignRequest("POST", "/", &headers, body, seller, region, auth::kMeteringSigningName, now);
  // Signing twice (as every request does on a reused header list) must replace, not add.
  auth::SignRequest("POST", "/", &headers, body, seller, region, auth::kMeteringSigningName, now);
  t->Check(headers.size() == 5, "SignRequest adds X-Amz-Date and Authorization once");

  OneKeyStore keys(seller);
  const auth::SigV4Verifier verifier(&keys);
  auto verified = verifier.Verify(auth::RequestView{"POST", "/", &headers, body}, now);
  t->Check(verified.ok(), "a signed request verifies: " + verified.status().ToString());
  if (verified.ok()) {
    t->Check(verified->access_key_id == bench::kSellerAccessKeyId, "verified access key id");
    t->Check(verified->region == region, "verified region " + verified->region);
  }
  std::string tampered = body;
  tampered[tampered.size() - 3] = '2';
  t->Check(!verifier.Verify(auth::RequestView{"POST", "/", &headers, tampered}, now).ok(),
           "a changed body does not verify");
  const auth::Credential other{bench::WorkloadAccessKeyId(0), bench::WorkloadSecret(0), "", true};
  auth::SignRequest("POST", "/", &headers, body, other, "us-east-1", auth::kMeteringSigningName,
                    now);
  t->Check(!verifier.Verify(auth::RequestView{"POST", "/", &headers, body}, now).ok(),
           "an unknown key does not verify");
}

// N records from consecutive requests of `plan` are N distinct dedup tuples, all inside the
// BatchMeterUsage window.
void CheckDistinctRecords(SelfTest* t, size_t customers, size_t hours, size_t per_request) {
  constexpr size_t kRecords = 100000;
  const int64_t now = WallMillis();
  const size_t usable = std::min(hours, bench::UsableHours(now, 10));
  const bench::BatchPlan plan(customers, 4, usable, per_request, "selftest", "us-east-1");
  const std::string label = std::to_string(customers) + " customers, " + std::to_string(usable) +
                            " hours, " + std::to_string(per_request) + " per request";
  if (!plan.valid()) {
    t->Check(false, "plan valid: " + label);
    return;
  }
  std::unordered_set<std::string> seen;
  seen.reserve(kRecords);
  bool in_window = true;
  const int64_t base = now / 1000;
  for (uint64_t r = 0; seen.size() < kRecords; ++r) {
    const std::string region = plan.Region(plan.RegionOf(r));
    for (size_t j = 0; j < plan.records_per_request() && seen.size() < kRecords; ++j) {
      const bench::BatchPlan::Record rec = plan.At(r, j);
      const int64_t ts_ms = (base - int64_t{3600} * rec.hours_back) * 1000;
      in_window = in_window && meterd::metering::BatchTimestampAccepted(
                                   ts_ms, now + 10'000, meterd::metering::WindowSettings{});
      std::string key = region + '|' + std::to_string(rec.customer) + '|' +
                        std::to_string(rec.dimension) + '|' +
                        std::to_string(meterd::FloorToHour(ts_ms));
      if (!seen.insert(std::move(key)).second) {
        t->Check(false, "record " + std::to_string(seen.size()) + " repeats a tuple: " + label);
        return;
      }
    }
  }
  t->Check(seen.size() == kRecords, "100000 distinct dedup tuples: " + label);
  t->Check(in_window, "every timestamp inside the BatchMeterUsage window: " + label);
}

void CheckHours(SelfTest* t) {
  const int64_t month_start = meterd::MillisFromCivil({2026, 3, 1, 0, 0, 0});
  t->Check(bench::UsableHours(month_start + 150 * meterd::kMillisPerMinute, 10) == 3,
           "02:30 on the 1st: 3 hours in the month");
  t->Check(bench::UsableHours(month_start + 5 * meterd::kMillisPerDay, 10) == 20, "20 hours");
  t->Check(bench::UsableHours(month_start + 5 * meterd::kMillisPerDay, int64_t{5} * 3600) == 18,
           "a 5 h run: 18 hours");
}

void CheckCatalog(SelfTest* t) {
  auto text = bench::BenchCatalogJson({100, 8});
  t->Check(text.ok(), "catalog generated");
  if (!text.ok()) return;
  auto again = bench::BenchCatalogJson({100, 8});
  t->Check(again.ok() && *again == *text, "catalog deterministic");
  auto catalog = meterd::catalog::Catalog::FromJson(*text, WallMillis());
  t->Check(catalog.ok(), "catalog accepted by meterd: " + catalog.status().ToString());
  if (!catalog.ok()) return;
  auto batch = bench::FindBatchTargets(**catalog);
  t->Check(batch.ok() && batch->product_code == bench::kSaasProduct &&
               batch->customers.size() == 100 && batch->dimensions.size() == 4 &&
               batch->sellers.size() == 1,
           "batch targets of the bench catalog");
  auto meter = bench::FindMeterTargets(**catalog);
  t->Check(meter.ok() && meter->product_code == bench::kAmiProduct && meter->dimension == "calls" &&
               meter->workloads.size() == 8,
           "meter targets of the bench catalog");
}

void CheckHttp(SelfTest* t) {
  bench::ParsedResponse r;
  const std::string plain = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
  t->Check(bench::ParseHttpResponse(plain, false, &r) == bench::ParseResult::kComplete &&
               r.status == 200 && r.body == "{}" && !r.close && r.consumed == plain.size(),
           "HTTP: Content-Length");
  t->Check(bench::ParseHttpResponse(plain.substr(0, plain.size() - 1), false, &r) ==
               bench::ParseResult::kIncomplete,
           "HTTP: partial body");
  const std::string chunked =
      "HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n"
      "4\r\n{\"__\r\n1e\r\ntype\":\"a#ThrottlingException\"}\r\n0\r\n\r\n";
  t->Check(bench::ParseHttpResponse(chunked, false, &r) == bench::ParseResult::kComplete &&
               r.status == 400 && r.close && r.consumed == chunked.size() &&
               bench::ErrorTypeOf(r.status, r.body, r.error_type_header) == "ThrottlingException",
           "HTTP: chunked error body");
  const std::string until_close = "HTTP/1.0 200 OK\r\n\r\nabc";
  t->Check(bench::ParseHttpResponse(until_close, false, &r) == bench::ParseResult::kIncomplete &&
               bench::ParseHttpResponse(until_close, true, &r) == bench::ParseResult::kComplete &&
               r.body == "abc" && r.close,
           "HTTP: body until close");
  t->Check(bench::ParseHttpResponse("HTTP/1.1 2x0 OK\r\n\r\n", false, &r) ==
               bench::ParseResult::kMalformed,
           "HTTP: malformed status");
}

void CheckHistogram(SelfTest* t) {
  bench::LatencyHistogram h;
  for (int64_t v = 1; v <= 100000; ++v) h.Add(v);
  auto near = [](double got, double want) { return got > want * 0.99 && got < want * 1.01; };
  t->Check(near(h.Quantile(0.5), 50000) && near(h.Quantile(0.99), 99000) && h.max() == 100000,
           "histogram quantiles within 1%");
}

int SelfTestCommand() {
  SelfTest t;
  CheckSigning(&t);
  CheckDistinctRecords(&t, 100000, 20, 25);
  CheckDistinctRecords(&t, 10000, 20, 25);
  CheckDistinctRecords(&t, 7, 20, 25);
  CheckDistinctRecords(&t, 3, 1, 7);
  CheckHours(&t);
  CheckCatalog(&t);
  CheckHttp(&t);
  CheckHistogram(&t);
  std::cout << (t.failures() == 0 ? "selftest: ok\n" : "selftest: failed\n");
  return t.failures() == 0 ? 0 : kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meterd-bench: load generator for meterd's metering API", "meterd-bench"};
  app.require_subcommand(1);

  bench::CatalogOptions catalog_options;
  std::string catalog_out;
  CLI::App* catalog = app.add_subcommand("catalog", "Write a benchmark catalog");
  catalog->add_option("--customers", catalog_options.customers, "Buyer accounts (bench-cust-<i>)")
      ->required()
      ->check(CLI::Range(size_t{1}, bench::kMaxCustomers));
  catalog->add_option("--workloads", catalog_options.workloads, "agentcore workloads")
      ->check(CLI::Range(size_t{0}, bench::kMaxWorkloads))
      ->capture_default_str();
  catalog->add_option("--out", catalog_out, "Output file (- for stdout)")->required();

  bench::RunOptions run_options;
  std::string op = "batch", catalog_path;
  bool json_output = false;
  CLI::App* run = app.add_subcommand("run", "Drive a server and report what came back");
  run->add_option("--endpoint", run_options.endpoint, "http://HOST:PORT[/PATH]")->required();
  run->add_option("--op", op, "batch (BatchMeterUsage) or meter (MeterUsage)")
      ->check(CLI::IsMember({"batch", "meter"}))
      ->capture_default_str();
  run->add_option("--catalog", catalog_path, "Catalog file: credentials and names")->required();
  run->add_option("--records-per-request", run_options.records_per_request, "batch: 1..25")
      ->check(CLI::Range(1, 25))
      ->capture_default_str();
  run->add_option("--connections", run_options.connections, "Keep-alive connections")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  run->add_option("--threads", run_options.threads, "Event-loop threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  run->add_option("--duration", run_options.duration_seconds, "Seconds (0: unbounded)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  run->add_option("--requests", run_options.requests, "Stop after N requests (0: unbounded)")
      ->capture_default_str();
  run->add_option("--rate", run_options.rate, "Requests/s over all connections (0: no cap)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  run->add_option("--retry-share", run_options.retry_share, "Share of exact resends")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  run->add_option("--conflict-share", run_options.conflict_share,
                  "Share of resends with another quantity")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  run->add_option("--region", run_options.region,
                  "SigV4 region (batch: of the first records; meter: instead of the workload's)");
  run->add_option("--run-id", run_options.run_id, "Part of the bench regions (default: random)");
  run->add_flag("--json", json_output, "Print one JSON object");

  CLI::App* selftest =
      app.add_subcommand("selftest", "Check signing, the record generator and the parsers");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;  // --help is a success
  }
  if (catalog->parsed()) return CatalogCommand(catalog_options, catalog_out);
  if (run->parsed()) return RunCommand(run_options, op, catalog_path, json_output);
  if (selftest->parsed()) return SelfTestCommand();
  return kExitUsage;
}
