#include "admin/admin_handler.h"

#include <gtest/gtest.h>

#include "common/time_util.h"
#include "store/store.h"

namespace meterd::admin {
namespace {

const std::string kCatalog = std::string(METERD_SOURCE_DIR) + "/tests/fixtures/catalog.test.json";
constexpr const char* kToken = "0123456789abcdef0123456789abcdef";

// The admin handler over a real control plane, memory store and manual clock.
class AdminHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_ = std::make_unique<ManualClock>(*ParseIso8601("2026-11-26T12:00:00Z"));
    auto empty = catalog::Catalog::FromJson("{}", 0);
    ASSERT_TRUE(empty.ok());
    holder_ = std::make_unique<catalog::CatalogHolder>(*empty);
    auto store = store::OpenStore("memory", store::StoreOptions());
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    keys_ = keys::NewMemorySigningKeyStore();
    service_ = std::make_unique<metering::MeteringService>(
        holder_.get(), clock_.get(), store_.get(), keys_.get(), metering::ServiceSettings());
    throttler_ = std::make_unique<metering::Throttler>(clock_.get(), metering::ThrottleSettings());
    control::ControlPlaneDeps deps{holder_.get(),  clock_.get(),     clock_.get(), store_.get(),
                                   service_.get(), throttler_.get(), keys_.get()};
    control_ = std::make_unique<control::ControlPlane>(deps, control::Settings());
    ASSERT_TRUE(control_->Start(kCatalog).ok());
    handler_ =
        std::make_unique<AdminHandler>(control_.get(), keys_.get(), &faults_, kToken, "memory");
  }
  void TearDown() override { store_->Close(); }

  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::string& body = "", const std::string& token = kToken) {
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    if (!token.empty()) r.headers.push_back({"Authorization", "Bearer " + token});
    return handler_->Serve(r);
  }

  std::unique_ptr<ManualClock> clock_;
  std::unique_ptr<catalog::CatalogHolder> holder_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<keys::SigningKeyStore> keys_;
  std::unique_ptr<metering::MeteringService> service_;
  std::unique_ptr<metering::Throttler> throttler_;
  metering::FaultInjector faults_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<AdminHandler> handler_;
};

TEST_F(AdminHandlerTest, TheBearerTokenIsRequired) {
  EXPECT_EQ(Call("GET", "/v1/status", "", "").status, 401);
  EXPECT_EQ(Call("GET", "/v1/status", "", "0123456789abcdef0123456789abcdeX").status, 401);
  EXPECT_EQ(Call("GET", "/v1/status", "", "short").status, 401);
  EXPECT_EQ(Call("GET", "/v1/status").status, 200);
}

TEST_F(AdminHandlerTest, ACreatedAccountIsInTheCatalogAtOnce) {
  auto r = Call("POST", "/v1/accounts", R"({"id":"123456789012","name":"N","roles":["buyer"]})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_NE(holder_->Get()->FindAccount("123456789012"), nullptr);
  EXPECT_EQ(Call("POST", "/v1/accounts", R"({"id":"123456789012"})").status, 409);
  EXPECT_EQ(Call("GET", "/v1/accounts/123456789012").status, 200);
  EXPECT_EQ(Call("GET", "/v1/accounts/000000000000").status, 404);
}

TEST_F(AdminHandlerTest, RefusedChangesChangeNothing) {
  const std::string before = Call("GET", "/v1/catalog").body;
  const int64_t version = control_->version();
  EXPECT_EQ(Call("POST", "/v1/accounts", "{not json").status, 400);
  EXPECT_EQ(Call("POST", "/v1/accounts", R"({"id":"12","name":"short id"})").status, 400);
  EXPECT_EQ(Call("POST", "/v1/accounts", R"({"id":"123456789012","colour":"red"})").status, 400);
  EXPECT_EQ(Call("POST", "/v1/workloads",
                 R"({"id":"i-1","platform":"ec2","region":"us-east-1","account":"000000000000"})")
                .status,
            400);
  EXPECT_EQ(Call("DELETE", "/v1/accounts/111122223333").status, 409);  // sells products
  EXPECT_EQ(Call("PATCH", "/v1/accounts/111122223333", R"({"id":"999999999999"})").status, 400);
  EXPECT_EQ(Call("GET", "/v1/catalog").body, before);
  EXPECT_EQ(control_->version(), version);
}

TEST_F(AdminHandlerTest, CredentialSecretsAreShownOnce) {
  auto created = Call("POST", "/v1/credentials", R"({"account":"111122223333"})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_NE(created.body.find("secretAccessKey"), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/credentials").body.find("secretAccessKey"), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/catalog").body.find("secretAccessKey"), std::string::npos);
}

TEST_F(AdminHandlerTest, ClockMovesOnlyForward) {
  EXPECT_EQ(Call("POST", "/v1/clock/advance", R"({"seconds":3600})").status, 200);
  EXPECT_EQ(clock_->NowMillis(), *ParseIso8601("2026-11-26T13:00:00Z"));
  EXPECT_EQ(Call("PUT", "/v1/clock", R"({"now":"2026-11-26T12:30:00Z"})").status, 409);
  EXPECT_EQ(Call("PUT", "/v1/clock", R"({"now":"not a time"})").status, 400);
  EXPECT_EQ(Call("POST", "/v1/clock/advance", R"({"seconds":-1})").status, 400);
}

TEST_F(AdminHandlerTest, SettingsReachTheService) {
  auto r = Call("PATCH", "/v1/settings", R"({"tokenTtlHours":1,"throttle":{"enabled":false}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(service_->settings().token_ttl_ms, 3600 * 1000);
  EXPECT_FALSE(throttler_->settings().enabled);
  EXPECT_EQ(Call("PATCH", "/v1/settings", R"({"tokenTtlHours":-1})").status, 400);
  EXPECT_EQ(Call("PATCH", "/v1/settings", R"({"tokenTTL":1})").status, 400);
  EXPECT_EQ(service_->settings().token_ttl_ms, 3600 * 1000);
}

TEST_F(AdminHandlerTest, ApplyingTheSameFileTwiceIsANoOp) {
  const std::string file = R"({"accounts":[{"id":"123456789012","name":"x","roles":["buyer"]}]})";
  auto first = Call("POST", "/v1/apply", file);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_NE(first.body.find(R"("changed":true)"), std::string::npos);
  const int64_t version = control_->version();
  auto second = Call("POST", "/v1/apply", file);
  EXPECT_NE(second.body.find(R"("changed":false)"), std::string::npos) << second.body;
  EXPECT_EQ(control_->version(), version);
}

TEST_F(AdminHandlerTest, UnknownRoutesAndMethods) {
  EXPECT_EQ(Call("GET", "/v1/nothing").status, 404);
  EXPECT_EQ(Call("GET", "/v2/status").status, 404);
  EXPECT_EQ(Call("DELETE", "/v1/status").status, 405);
  EXPECT_EQ(Call("GET", "/v1/workloads/%zz").status, 400);
}

}  // namespace
}  // namespace meterd::admin

namespace meterd::admin {
namespace {

TEST_F(AdminHandlerTest, HealthProbesNeedNoTokenAndMetricsNeedTheToken) {
  observability::MeterdMetrics metrics;
  metrics.WatchCatalogVersion([this] { return control_->version(); });
  observability::OpsEndpoints ops(&metrics, store_.get(), [this] { return control_->version(); });
  ops.SetCatalogLoaded();
  ops.SetServing(true);
  handler_->SetOpsEndpoints(&ops);
  EXPECT_EQ(Call("GET", "/healthz", "", "").status, 200);
  EXPECT_EQ(Call("GET", "/readyz?verbose", "", "").status, 200);
  EXPECT_EQ(Call("GET", "/metrics", "", "").status, 401);
  EXPECT_EQ(Call("GET", "/metrics", "", "wrong-token").status, 401);
  HttpResponse scraped = Call("GET", "/metrics");
  EXPECT_EQ(scraped.status, 200);
  EXPECT_NE(scraped.body.find("meterd_catalog_version " + std::to_string(control_->version())),
            std::string::npos)
      << scraped.body;
  handler_->SetOpsEndpoints(nullptr);
  EXPECT_EQ(Call("GET", "/healthz", "", "").status, 401);  // no endpoints: an unknown route
}

}  // namespace
}  // namespace meterd::admin
