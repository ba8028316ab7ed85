#include "metering/service.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "common/time_util.h"
#include "store/group_commit.h"
#include "store/memory_store.h"
#include "store/postgres_test_server.h"
#include "store/store.h"

namespace meterd::metering {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kCatalogPath =
    std::string(METERD_SOURCE_DIR) + "/tests/fixtures/catalog.test.json";
constexpr const char* kSeller = "111122223333";
constexpr const char* kLicense =
    "arn:aws:license-manager::294406891311:license:l-0a1b2c3d4e5f60718293a4b5c6d7e8f9";

// Runs the service synchronously against a chosen store, with a manual clock.
class ServiceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    clock_ = std::make_unique<ManualClock>(*ParseIso8601("2026-11-26T15:30:00Z"));
    LoadCatalog(ReadFile(kCatalogPath));
    dir_ = std::filesystem::temp_directory_path() /
           ("meterd-service-test-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(dir_);
    // PostgreSQL: a fresh database on the shared test server (store/postgres_test_server.h).
    std::string why;
    auto url = store::PostgresTestServer::StoreUrlFor(GetParam(), &why);
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    if (url->empty()) GTEST_SKIP() << why;
    store_url_ = *url;
    OpenStore();
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void LoadCatalog(const std::string& text) {
    auto c = catalog::Catalog::FromJson(text, clock_->NowMillis());
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    if (holder_) {
      holder_->Set(*c);
    } else {
      holder_ = std::make_unique<catalog::CatalogHolder>(*c);
    }
  }
  void OpenStore() {
    service_.reset();
    store_.reset();
    store::StoreOptions options;
    options.data_dir = dir_.string();
    auto s = store::OpenStore(store_url_, options);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    service_ = std::make_unique<MeteringService>(holder_.get(), clock_.get(), store_.get(),
                                                 keys_.get(), ServiceSettings());
  }

  static CallContext Seller(std::string region = "us-east-1") {
    CallContext ctx;
    ctx.request_id = "req";
    ctx.region = std::move(region);
    ctx.caller = Caller{"AKIAACMESELLER000001", kSeller, ""};
    return ctx;
  }
  static CallContext Workload(std::string workload, std::string region = "us-east-1") {
    CallContext ctx;
    ctx.request_id = "req";
    ctx.region = std::move(region);
    ctx.caller = Caller{"AKIA", "444455556666", std::move(workload)};
    return ctx;
  }

  Result<BatchMeterUsageOutput> Batch(const CallContext& ctx, BatchMeterUsageInput in) {
    std::promise<Result<BatchMeterUsageOutput>> p;
    service_->BatchMeterUsage(ctx, std::move(in),
                              [&p](Result<BatchMeterUsageOutput> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  Result<MeterUsageOutput> Meter(const CallContext& ctx, MeterUsageInput in) {
    std::promise<Result<MeterUsageOutput>> p;
    service_->MeterUsage(ctx, std::move(in),
                         [&p](Result<MeterUsageOutput> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
  int64_t Rows() { return *store_->CountUsageRows(); }

  UsageRecord Record(std::string customer, std::string dimension, int64_t quantity) {
    UsageRecord r;
    r.timestamp_ms = clock_->NowMillis();
    r.customer_identifier = std::move(customer);
    r.dimension = std::move(dimension);
    r.quantity = quantity;
    return r;
  }
  MeterUsageInput Usage(std::string product, std::string dimension, int64_t quantity,
                        std::string token = "") {
    MeterUsageInput in;
    in.product_code = std::move(product);
    in.timestamp_ms = clock_->NowMillis();
    in.usage_dimension = std::move(dimension);
    in.usage_quantity = quantity;
    in.client_token = std::move(token);
    return in;
  }

  static inline int counter_ = 0;
  std::unique_ptr<ManualClock> clock_;
  std::unique_ptr<catalog::CatalogHolder> holder_;
  std::filesystem::path dir_;
  std::string store_url_;  // what OpenStore opens: the parameter, or a PostgreSQL URL
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<keys::SigningKeyStore> keys_ = keys::NewMemorySigningKeyStore();
  std::unique_ptr<MeteringService> service_;
};

TEST_P(ServiceTest, BatchSuccessIdempotencyAndDuplicate) {
  auto first = Batch(Seller(), {"acmesaas01", {Record("cust-globex-0001", "api_calls", 5)}});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->results.size(), 1u);
  EXPECT_EQ(first->results[0].status, RecordStatus::kSuccess);
  std::string id = first->results[0].metering_record_id;
  EXPECT_FALSE(id.empty());

  // Same record later in the same hour: the same id, nothing new stored.
  clock_->Advance(10 * kMillisPerMinute);
  auto again = Batch(Seller(), {"acmesaas01", {Record("cust-globex-0001", "api_calls", 5)}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->results[0].status, RecordStatus::kSuccess);
  EXPECT_EQ(again->results[0].metering_record_id, id);

  // Another quantity in the same hour: DuplicateRecord, no id, original stays billed.
  auto dup = Batch(Seller(), {"acmesaas01", {Record("cust-globex-0001", "api_calls", 6)}});
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(dup->results[0].status, RecordStatus::kDuplicateRecord);
  EXPECT_TRUE(dup->results[0].metering_record_id.empty());
  EXPECT_EQ(Rows(), 1);

  // The same buyer by account id is the same customer (never billed twice).
  UsageRecord by_account = Record("", "api_calls", 6);
  by_account.customer_aws_account_id = "444455556666";
  auto acct = Batch(Seller(), {"acmesaas01", {by_account}});
  ASSERT_TRUE(acct.ok());
  EXPECT_EQ(acct->results[0].status, RecordStatus::kDuplicateRecord);

  // The next hour is a new record.
  clock_->Advance(kMillisPerHour);
  auto next = Batch(Seller(), {"acmesaas01", {Record("cust-globex-0001", "api_calls", 6)}});
  EXPECT_EQ(next->results[0].status, RecordStatus::kSuccess);
  EXPECT_NE(next->results[0].metering_record_id, id);
  EXPECT_EQ(Rows(), 2);
}

TEST_P(ServiceTest, BatchInOrderWithinOneRequest) {
  auto out = Batch(
      Seller(),
      {"acmesaas01",
       {Record("cust-globex-0001", "storage_gb", 1), Record("cust-globex-0001", "storage_gb", 1),
        Record("cust-globex-0001", "storage_gb", 2), Record("cust-initech-0002", "storage_gb", 1),
        Record("cust-nobody-9999", "storage_gb", 1)}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->results[0].status, RecordStatus::kSuccess);
  EXPECT_EQ(out->results[1].status, RecordStatus::kSuccess);
  EXPECT_EQ(out->results[1].metering_record_id, out->results[0].metering_record_id);
  EXPECT_EQ(out->results[2].status, RecordStatus::kDuplicateRecord);
  EXPECT_EQ(out->results[3].status, RecordStatus::kCustomerNotSubscribed);
  EXPECT_EQ(out->results[4].status, RecordStatus::kCustomerNotSubscribed);
  EXPECT_EQ(Rows(), 1);
}

TEST_P(ServiceTest, UnsubscribePendingGraceFollowsTheClock) {
  // Umbrella's unsubscribe-pending started when the catalog was loaded (no unsubscribedAt).
  auto in = [&] {
    return BatchMeterUsageInput{"acmesaas01", {Record("cust-umbrella-0003", "api_calls", 1)}};
  };
  EXPECT_EQ(Batch(Seller(), in())->results[0].status, RecordStatus::kSuccess);
  clock_->Advance(kMillisPerHour);
  EXPECT_EQ(Batch(Seller(), in())->results[0].status, RecordStatus::kCustomerNotSubscribed);
  EXPECT_EQ(Batch(Seller(), {"acmesaas01", {Record("cust-hooli-0004", "api_calls", 1)}})
                ->results[0]
                .status,
            RecordStatus::kCustomerNotSubscribed);
}

TEST_P(ServiceTest, BatchRequestErrorsStoreNothing) {
  auto code = [&](BatchMeterUsageInput in, CallContext ctx = Seller()) {
    auto r = Batch(ctx, std::move(in));
    return r.ok() ? StatusCode::kOk : r.status().code();
  };
  UsageRecord good = Record("cust-globex-0001", "api_calls", 1);
  UsageRecord old = good;
  old.timestamp_ms -= 25 * kMillisPerHour;
  EXPECT_EQ(code({"acmesaas01", {good, old}}), StatusCode::kTimestampOutOfBounds);
  EXPECT_EQ(code({"acmesaas01", {Record("cust-globex-0001", "API_CALLS", 1)}}),
            StatusCode::kInvalidUsageDimension);
  EXPECT_EQ(code({"othersaas01", {good}}), StatusCode::kInvalidProductCode);
  EXPECT_EQ(code({"acmeami001", {good}}), StatusCode::kInvalidProductCode);
  EXPECT_EQ(code({"nope", {good}}), StatusCode::kInvalidProductCode);
  UsageRecord both = good;
  both.customer_aws_account_id = "444455556666";
  EXPECT_EQ(code({"acmesaas01", {both}}), StatusCode::kInvalidCustomerIdentifier);
  UsageRecord neither = good;
  neither.customer_identifier.clear();
  EXPECT_EQ(code({"acmesaas01", {neither}}), StatusCode::kInvalidCustomerIdentifier);
  EXPECT_EQ(code({"acmesaas01", {good}}, Seller("eu-south-2")), StatusCode::kDisabledApi);
  EXPECT_EQ(code({"acmesaas01", {good}}, Workload("i-0123456789abcdef0")),
            StatusCode::kAccessDenied);
  UsageRecord alloc = good;
  alloc.has_allocations = true;
  alloc.allocations = {{2, {}}};
  EXPECT_EQ(code({"acmesaas01", {alloc}}), StatusCode::kInvalidUsageAllocations);
  EXPECT_EQ(Rows(), 0);
}

TEST_P(ServiceTest, ConcurrentAgreementsLicenses) {
  UsageRecord r;
  r.timestamp_ms = clock_->NowMillis();
  r.customer_aws_account_id = "444455556666";
  r.license_arn = kLicense;
  r.dimension = "seats";
  r.quantity = 3;
  auto ok = Batch(Seller(), {"", {r}});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->results[0].status, RecordStatus::kSuccess);

  auto code = [&](BatchMeterUsageInput in) {
    auto res = Batch(Seller(), std::move(in));
    return res.ok() ? StatusCode::kOk : res.status().code();
  };
  EXPECT_EQ(code({"acmesaasca1", {r}}), StatusCode::kValidation);  // ProductCode + LicenseArn
  UsageRecord no_license = r;
  no_license.license_arn.clear();
  EXPECT_EQ(code({"acmesaasca1", {no_license}}), StatusCode::kInvalidLicense);
  EXPECT_EQ(code({"", {no_license}}), StatusCode::kValidation);
  UsageRecord ci = r;
  ci.customer_aws_account_id.clear();
  ci.customer_identifier = "cust-globex-0001";
  EXPECT_EQ(code({"", {ci}}), StatusCode::kInvalidCustomerIdentifier);
  UsageRecord foreign = r;
  foreign.customer_aws_account_id = "777788889999";
  EXPECT_EQ(code({"", {foreign}}), StatusCode::kInvalidLicense);
  UsageRecord expired = r;
  expired.license_arn =
      "arn:aws:license-manager::294406891311:license:l-00000000000000000000000000expired";
  EXPECT_EQ(code({"", {expired}}), StatusCode::kInvalidLicense);
  UsageRecord other_product = r;
  other_product.license_arn =
      "arn:aws:license-manager::294406891311:license:l-22222222222222222222222222other01";
  EXPECT_EQ(code({"", {r, other_product}}), StatusCode::kInvalidLicense);
  EXPECT_EQ(code({"", {other_product}}), StatusCode::kInvalidProductCode);
  EXPECT_EQ(Rows(), 1);
}

TEST_P(ServiceTest, MeterUsageHourlyDedupAndClientToken) {
  auto first = Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 2, "tok-1"));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  // Same token, same members: the first answer.
  auto retry = Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 2, "tok-1"));
  EXPECT_EQ(retry->metering_record_id, first->metering_record_id);
  // New token, same hour and quantity: idempotent by the hourly key.
  clock_->Advance(5 * kMillisPerMinute);
  auto same = Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 2, "tok-2"));
  EXPECT_EQ(same->metering_record_id, first->metering_record_id);
  auto diff = Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 3, "tok-3"));
  EXPECT_EQ(diff.status().code(), StatusCode::kDuplicateRequest);
  // Same token, other members: conflict.
  auto conflict = Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 9, "tok-1"));
  EXPECT_EQ(conflict.status().code(), StatusCode::kIdempotencyConflict);
  // Dry run: would succeed -> DryRunOperation, nothing stored.
  MeterUsageInput dry = Usage("acmeami001", "vcpu_hours", 4, "tok-4");
  dry.dry_run = true;
  EXPECT_EQ(Meter(Workload("i-0123456789abcdef0"), dry).status().code(),
            StatusCode::kDryRunOperation);
  MeterUsageInput dry_dup = Usage("acmeami001", "hosts", 7, "tok-5");
  dry_dup.dry_run = true;
  EXPECT_EQ(Meter(Workload("i-0123456789abcdef0"), dry_dup).status().code(),
            StatusCode::kDuplicateRequest);
  EXPECT_EQ(Rows(), 1);
}

TEST_P(ServiceTest, MeterUsageAgentCoreAggregatesByToken) {
  auto a =
      Meter(Workload("agentcore-runtime-globex-0001"), Usage("acmectr001", "invocations", 2, "t1"));
  auto b =
      Meter(Workload("agentcore-runtime-globex-0001"), Usage("acmectr001", "invocations", 2, "t2"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->metering_record_id, b->metering_record_id);
  auto a2 =
      Meter(Workload("agentcore-runtime-globex-0001"), Usage("acmectr001", "invocations", 2, "t1"));
  EXPECT_EQ(a2->metering_record_id, a->metering_record_id);
  EXPECT_EQ(Rows(), 2);
}

TEST_P(ServiceTest, MeterUsageErrors) {
  auto code = [&](const CallContext& ctx, MeterUsageInput in) {
    auto r = Meter(ctx, std::move(in));
    return r.ok() ? StatusCode::kOk : r.status().code();
  };
  const CallContext ec2 = Workload("i-0123456789abcdef0");
  EXPECT_EQ(code(Seller(), Usage("acmeami001", "hosts", 1)), StatusCode::kAccessDenied);
  EXPECT_EQ(code(ec2, Usage("acmesaas01", "api_calls", 1)), StatusCode::kInvalidProductCode);
  EXPECT_EQ(code(ec2, Usage("acmeami001", "Hosts", 1)), StatusCode::kInvalidUsageDimension);
  EXPECT_EQ(code(Workload("eks-pod-globex-west-0001"), Usage("acmectr001", "nodes", 1)),
            StatusCode::kInvalidEndpointRegion);
  EXPECT_EQ(
      code(Workload("eks-pod-globex-west-0001", "us-west-2"), Usage("acmectr001", "nodes", 1)),
      StatusCode::kOk);
  EXPECT_EQ(code(Workload("i-0fedcba9876543210"), Usage("acmeami001", "hosts", 1)),
            StatusCode::kCustomerNotEntitled);
  MeterUsageInput old = Usage("acmeami001", "hosts", 1);
  old.timestamp_ms -= 6 * kMillisPerHour;
  EXPECT_EQ(code(ec2, old), StatusCode::kTimestampOutOfBounds);
  EXPECT_EQ(code(Workload("i-0123456789abcdef0", "ap-east-1"), Usage("acmeami001", "hosts", 1)),
            StatusCode::kDisabledApi);
  EXPECT_EQ(Rows(), 1);
}

TEST_P(ServiceTest, ContainerEntitlementIsCheckedOnlyOnTheFirstCall) {
  const CallContext ecs =
      Workload("arn:aws:ecs:us-east-1:444455556666:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0");
  const CallContext ec2 = Workload("i-0123456789abcdef0");
  ASSERT_TRUE(Meter(ecs, Usage("acmectr001", "nodes", 1)).ok());
  ASSERT_TRUE(Meter(ec2, Usage("acmeami001", "hosts", 1)).ok());
  // The buyer unsubscribes from everything.
  std::string text = ReadFile(kCatalogPath);
  for (size_t pos; (pos = text.find("\"status\": \"active\"")) != std::string::npos;) {
    text.replace(pos, 18, "\"status\": \"unsubscribed\"");
  }
  LoadCatalog(text);
  clock_->Advance(kMillisPerHour);
  EXPECT_TRUE(Meter(ecs, Usage("acmectr001", "nodes", 1)).ok());  // container: remembered
  EXPECT_EQ(Meter(ec2, Usage("acmeami001", "hosts", 1)).status().code(),
            StatusCode::kCustomerNotEntitled);
  // ...and the memory survives a restart (the memory store has nothing to survive with).
  if (GetParam() == "memory") return;
  OpenStore();
  clock_->Advance(kMillisPerHour);
  EXPECT_TRUE(Meter(ecs, Usage("acmectr001", "nodes", 1)).ok());
}

TEST_P(ServiceTest, RestartKeepsEveryDecision) {
  if (GetParam() == "memory") GTEST_SKIP() << "the memory store keeps nothing across restarts";
  auto first = Batch(Seller(), {"acmesaas01", {Record("cust-globex-0001", "api_calls", 5)}});
  auto meter = Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 2, "tok"));
  ASSERT_TRUE(first.ok() && meter.ok());
  OpenStore();
  EXPECT_EQ(Rows(), 2);
  auto again = Batch(Seller(), {"acmesaas01", {Record("cust-globex-0001", "api_calls", 5)}});
  EXPECT_EQ(again->results[0].metering_record_id, first->results[0].metering_record_id);
  auto dup = Batch(Seller(), {"acmesaas01", {Record("cust-globex-0001", "api_calls", 7)}});
  EXPECT_EQ(dup->results[0].status, RecordStatus::kDuplicateRecord);
  EXPECT_EQ(Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 2, "tok"))
                ->metering_record_id,
            meter->metering_record_id);
  EXPECT_EQ(Meter(Workload("i-0123456789abcdef0"), Usage("acmeami001", "hosts", 9, "tok"))
                .status()
                .code(),
            StatusCode::kIdempotencyConflict);
  EXPECT_EQ(Rows(), 2);

  // The SQLite ledger refuses UPDATE and DELETE, whoever asks (its triggers). The embedded
  // store's Transaction has no operation that changes or removes a ledger row.
  if (GetParam() == "sqlite") {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "meterd.db").c_str(), &db), SQLITE_OK);
    EXPECT_NE(sqlite3_exec(db, "UPDATE usage_records SET quantity = 0", nullptr, nullptr, nullptr),
              SQLITE_OK);
    EXPECT_NE(sqlite3_exec(db, "DELETE FROM usage_records", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_EQ(Rows(), 2);
}

TEST_P(ServiceTest, ResolveCustomerAnswersUntilTheTokenExpires) {
  ASSERT_TRUE(service_->PrepareCatalog().ok());
  auto resolve = [&](const std::string& token, CallContext ctx = Seller()) {
    std::promise<Result<ResolveCustomerOutput>> p;
    service_->ResolveCustomer(ctx, {token},
                              [&p](Result<ResolveCustomerOutput> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  };
  auto legacy = resolve("demo-registration-token-globex-acmesaas01");
  ASSERT_TRUE(legacy.ok()) << legacy.status().ToString();
  EXPECT_EQ(legacy->customer_identifier, "cust-globex-0001");
  EXPECT_EQ(legacy->customer_aws_account_id, "444455556666");
  EXPECT_TRUE(legacy->license_arn.empty());
  auto ca = resolve("demo-registration-token-globex-acmesaasca1");
  ASSERT_TRUE(ca.ok());
  EXPECT_TRUE(ca->customer_identifier.empty());
  EXPECT_EQ(ca->license_arn, kLicense);
  EXPECT_EQ(resolve("registration-token-other-seller-othersaas01").status().code(),
            StatusCode::kInvalidToken);
  EXPECT_EQ(resolve("nope").status().code(), StatusCode::kInvalidToken);
  EXPECT_EQ(resolve("registration-token-issued-2020-acmesaas01").status().code(),
            StatusCode::kExpiredToken);
  EXPECT_EQ(resolve("demo-registration-token-globex-acmesaas01", Workload("i-0123456789abcdef0"))
                .status()
                .code(),
            StatusCode::kAccessDenied);
  clock_->Advance(4 * kMillisPerHour - 1);
  EXPECT_TRUE(resolve("demo-registration-token-globex-acmesaas01").ok());
  // First-seen time is kept: preparing the catalog again does not renew the token.
  ASSERT_TRUE(service_->PrepareCatalog().ok());
  clock_->Advance(1);
  EXPECT_EQ(resolve("demo-registration-token-globex-acmesaas01").status().code(),
            StatusCode::kExpiredToken);
}

TEST_P(ServiceTest, RegisterUsageOpensOneRunAndChecksEntitlementOnce) {
  ASSERT_TRUE(service_->PrepareCatalog().ok());
  const CallContext ecs =
      Workload("arn:aws:ecs:us-east-1:444455556666:task/prod/0f1e2d3c4b5a69788796a5b4c3d2e1f0");
  auto reg = [&](const CallContext& ctx, int64_t version) {
    std::promise<Result<RegisterUsageOutput>> p;
    service_->RegisterUsage(ctx, {"acmectr001", version, std::string("nonce")},
                            [&p](Result<RegisterUsageOutput> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  };
  auto first = reg(ecs, 1);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->rotation_ms.has_value());
  auto expired = reg(ecs, 2);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(expired->rotation_ms, *ParseIso8601("2026-06-01T00:00:00Z"));
  EXPECT_EQ(reg(ecs, 9).status().code(), StatusCode::kInvalidPublicKeyVersion);
  EXPECT_EQ(reg(Workload("i-0123456789abcdef0"), 1).status().code(),
            StatusCode::kPlatformNotSupported);
  EXPECT_EQ(reg(Workload("eks-pod-globex-west-0001"), 1).status().code(),
            StatusCode::kInvalidRegion);
  EXPECT_EQ(reg(Seller(), 1).status().code(), StatusCode::kAccessDenied);

  // The buyer unsubscribes: the registered task keeps working, a new one is refused.
  std::string text = ReadFile(kCatalogPath);
  for (size_t pos; (pos = text.find("\"status\": \"active\"")) != std::string::npos;) {
    text.replace(pos, 18, "\"status\": \"unsubscribed\"");
  }
  LoadCatalog(text);
  EXPECT_TRUE(reg(ecs, 1).ok());
  EXPECT_EQ(reg(Workload("arn:aws:ecs:us-east-1:444455556666:task/fargate/"
                         "7a6b5c4d3e2f10011223344556677889"),
                1)
                .status()
                .code(),
            StatusCode::kCustomerNotEntitled);

  // Two hours later the task is still running: the first hour is billed, in seconds.
  clock_->Advance(2 * kMillisPerHour);
  ASSERT_TRUE(service_->MeterTaskRuns().ok());
  ASSERT_TRUE(service_->MeterTaskRuns().ok());  // idempotent
  EXPECT_EQ(Rows(), 2);                         // the 15:00 hour (from 15:30) and the 16:00 hour
}

INSTANTIATE_TEST_SUITE_P(Stores, ServiceTest,
                         ::testing::Values("embedded", "sqlite", "memory", "postgresql"));

// A backend whose commit fails, as a full disk would make it.
class FailingBackend final : public store::Backend {
 public:
  FailingBackend() : inner_(store::NewMemoryBackend()) {}
  Status Begin() override { return inner_->Begin(); }
  store::Transaction& txn() override { return inner_->txn(); }
  Status Commit() override { return Status(StatusCode::kIoError, "disk full"); }
  void Rollback() override { inner_->Rollback(); }
  Result<int64_t> CountUsageRows() override { return inner_->CountUsageRows(); }
  store::AuditReader& audit_reader() override { return inner_->audit_reader(); }

 private:
  std::unique_ptr<store::Backend> inner_;
};

TEST(ServiceStoreFailureTest, AFailedCommitIsARetryableErrorAndStoresNothing) {
  ManualClock clock(*ParseIso8601("2026-11-26T15:30:00Z"));
  auto c = catalog::Catalog::FromJson(ReadFile(kCatalogPath), clock.NowMillis());
  ASSERT_TRUE(c.ok());
  catalog::CatalogHolder holder(*c);
  store::GroupCommitStore store(std::make_unique<FailingBackend>(), 16);
  MeteringService service(&holder, &clock, &store, nullptr, ServiceSettings());
  UsageRecord r;
  r.timestamp_ms = clock.NowMillis();
  r.customer_identifier = "cust-globex-0001";
  r.dimension = "api_calls";
  std::promise<Result<BatchMeterUsageOutput>> p;
  CallContext ctx;
  ctx.region = "us-east-1";
  ctx.caller = Caller{"AKIAACMESELLER000001", kSeller, ""};
  service.BatchMeterUsage(ctx, {"acmesaas01", {r}},
                          [&p](Result<BatchMeterUsageOutput> out) { p.set_value(std::move(out)); });
  auto out = p.get_future().get();
  EXPECT_EQ(out.status().code(), StatusCode::kInternal);
  EXPECT_EQ(*store.CountUsageRows(), 0);
  EXPECT_EQ(store.Stats().failed_groups, 1u);
}

}  // namespace
}  // namespace meterd::metering
