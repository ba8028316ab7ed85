#include "observability/ops_endpoints.h"

#include <gtest/gtest.h>

#include "json/json.h"
#include "store/group_commit.h"
#include "store/memory_store.h"

namespace meterd::observability {
namespace {

// A memory backend whose commits fail while `failing` is set (a full disk).
class SwitchableBackend final : public store::Backend {
 public:
  explicit SwitchableBackend(bool* failing)
      : inner_(store::NewMemoryBackend()), failing_(failing) {}
  Status Begin() override { return inner_->Begin(); }
  store::Transaction& txn() override { return inner_->txn(); }
  Status Commit() override {
    if (*failing_) return Status(StatusCode::kIoError, "disk full");
    return inner_->Commit();
  }
  void Rollback() override { inner_->Rollback(); }
  Result<int64_t> CountUsageRows() override { return inner_->CountUsageRows(); }
  store::AuditReader& audit_reader() override { return inner_->audit_reader(); }

 private:
  std::unique_ptr<store::Backend> inner_;
  bool* failing_;
};

class OpsEndpointsTest : public ::testing::Test {
 protected:
  OpsEndpointsTest()
      : store_(std::make_unique<SwitchableBackend>(&failing_), 16),
        ops_(&metrics_, &store_, [] { return int64_t{7}; }) {
    store_.SetCommitObserver(&metrics_);
    metrics_.WatchStore(&store_);
  }
  ~OpsEndpointsTest() override { store_.Close(); }

  HttpResponse Get(const std::string& path, const std::string& method = "GET") {
    HttpRequest r;
    r.method = method;
    r.target = path;
    return ops_.Serve(r, path);
  }
  json::Value Body(const HttpResponse& r) {
    auto v = json::Parse(r.body);
    EXPECT_TRUE(v.ok()) << r.body;
    return v.ok() ? *v : json::Value();
  }

  bool failing_ = false;
  MeterdMetrics metrics_;
  store::GroupCommitStore store_;
  OpsEndpoints ops_;
};

TEST_F(OpsEndpointsTest, HealthzAnswersWhileTheProcessRuns) {
  HttpResponse r = Get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(Body(r).Find("status")->text(), "ok");
  EXPECT_EQ(Get("/healthz", "POST").status, 405);
}

TEST_F(OpsEndpointsTest, ReadyzNeedsTheCatalogTheListenerAndTheStore) {
  HttpResponse r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  json::Value body = Body(r);
  EXPECT_EQ(body.Find("status")->text(), "unavailable");
  EXPECT_FALSE(body.Find("checks")->Find("catalog")->Find("ok")->as_bool());
  EXPECT_FALSE(body.Find("checks")->Find("api")->Find("ok")->as_bool());
  EXPECT_TRUE(body.Find("checks")->Find("store")->Find("ok")->as_bool());

  ops_.SetCatalogLoaded();
  ops_.SetServing(true);
  r = Get("/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Body(r).Find("checks")->Find("catalog")->Find("detail")->text(), "version 7");

  ops_.SetServing(false);  // stopping
  EXPECT_EQ(Get("/readyz").status, 503);
}

TEST_F(OpsEndpointsTest, ReadyzFailsAfterAFailedGroupCommitAndWhenTheStoreIsClosed) {
  ops_.SetCatalogLoaded();
  ops_.SetServing(true);
  failing_ = true;
  EXPECT_FALSE(
      store::SubmitAndWait(&store_, [](store::Transaction&) { return Status::Ok(); }).ok());
  // The failure shows in the metrics (read before /readyz, whose own probe may fail a group too).
  EXPECT_EQ(metrics_.family(Metric::kStoreErrors).With({}).value(), 1);
  HttpResponse r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  const std::string detail = Body(r).Find("checks")->Find("store")->Find("detail")->text();
  EXPECT_NE(detail.find("disk full"), std::string::npos) << detail;

  failing_ = false;
  store_.Close();
  r = Get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("store is closed"), std::string::npos) << r.body;
}

TEST_F(OpsEndpointsTest, MetricsAreTheTextFormat) {
  HttpResponse r = Get("/metrics");
  EXPECT_EQ(r.status, 200);
  ASSERT_FALSE(r.headers.empty());
  EXPECT_EQ(r.headers[0].value, kPrometheusContentType);
  EXPECT_NE(r.body.find("# TYPE meterd_api_requests_total counter\n"), std::string::npos);
  EXPECT_NE(r.body.find("\nmeterd_store_writer_queue_depth 0\n"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace meterd::observability
