// The audit guarantee of the handler (D17, docs/AUDIT.md): an answered call always has its
// durable audit event. A call that reaches the store has its event in the same transaction as its
// records and is answered after that commit; a call refused before the store is answered once its
// event's own unit committed.
#include "protocol/api_handler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "audit/audit_trail.h"
#include "common/clock.h"
#include "json/json.h"
#include "store/group_commit.h"
#include "store/memory_store.h"

namespace meterd::protocol {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The memory backend, with commits the test holds back, fails or makes re-run.
class GatedBackend final : public store::Backend {
 public:
  GatedBackend() : inner_(store::NewMemoryBackend()) {}
  Status Begin() override { return inner_->Begin(); }
  store::Transaction& txn() override { return inner_->txn(); }
  Status Commit() override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return !held_; });
    }
    if (fail_commits > 0) {
      --fail_commits;
      return Status(StatusCode::kIoError, "disk full");
    }
    Status st = inner_->Commit();
    if (st.ok()) ++commits;
    return st;
  }
  void Rollback() override { inner_->Rollback(); }
  bool ShouldRetryGroup() const override { return retry_failed_groups; }
  Result<int64_t> CountUsageRows() override { return inner_->CountUsageRows(); }
  store::AuditReader& audit_reader() override { return inner_->audit_reader(); }

  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
    cv_.notify_all();
  }

  std::atomic<int> fail_commits{0};  // the next N commits fail (and the group is rolled back)
  std::atomic<bool> retry_failed_groups{false};
  std::atomic<int> commits{0};  // commits that succeeded

 private:
  std::unique_ptr<store::Backend> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
};

class CountingObserver final : public ApiCallObserver {
 public:
  void OnApiCall(const ApiCall& call) override {
    std::lock_guard<std::mutex> lock(mu_);
    request_ids_.push_back(call.request_id);
  }
  std::vector<std::string> request_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return request_ids_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> request_ids_;
};

// What the client got, and what the store held at the moment it got it.
struct Answer {
  HttpResponse response;
  std::string request_id;
  int events_at_answer = 0;  // committed events of this request id when the answer left
  int commits_at_answer = 0;
};

class ApiHandlerAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clock_ = std::make_unique<ManualClock>(WallClockMillis());
    auto catalog = catalog::Catalog::FromJson(
        ReadFile(std::string(METERD_SOURCE_DIR) + "/tests/fixtures/catalog.test.json"),
        clock_->NowMillis());
    ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
    holder_ = std::make_unique<catalog::CatalogHolder>(*catalog);
    auto backend = std::make_unique<GatedBackend>();
    backend_ = backend.get();
    store_ = std::make_unique<store::GroupCommitStore>(std::move(backend), 64);
    verifier_ = std::make_unique<auth::SigV4Verifier>(holder_.get());
    service_ = std::make_unique<metering::MeteringService>(
        holder_.get(), clock_.get(), store_.get(), nullptr, metering::ServiceSettings());
    handler_ = std::make_unique<ApiHandler>(holder_.get(), verifier_.get(), service_.get(),
                                            &model::ServiceModel::Builtin(), nullptr, nullptr);
    trail_ = std::make_unique<audit::AuditTrail>(store_.get(), clock_.get());
    handler_->SetCallObserver(&observer_);
    handler_->SetCallAuditor(trail_.get());
  }
  void TearDown() override {
    backend_->Release();
    store_->Close();
  }

  HttpRequest Signed(const std::string& operation, const std::string& body) {
    HttpRequest r;
    r.method = "POST";
    r.target = "/";
    r.body = body;
    r.headers = {{"Host", "127.0.0.1:8080"},
                 {"Content-Type", "application/x-amz-json-1.1"},
                 {"X-Amz-Target", "AWSMPMeteringService." + operation}};
    auth::SignRequest(r.method, r.target, &r.headers, r.body, *holder_->Find(kSellerKey),
                      "us-east-1", "aws-marketplace", WallClockMillis());
    return r;
  }
  std::string OneRecordBatch(int64_t quantity = 3) {
    return R"({"ProductCode":"acmesaas01","UsageRecords":[{"Timestamp":)" +
           std::to_string(clock_->NowMillis() / 1000) +
           R"(,"CustomerIdentifier":"cust-globex-0001","Dimension":"api_calls","Quantity":)" +
           std::to_string(quantity) + "}]}";
  }

  // A responder that notes what the store held when the answer left.
  std::pair<http::Responder, std::future<Answer>> Capture() {
    auto promise = std::make_shared<std::promise<Answer>>();
    std::future<Answer> future = promise->get_future();
    http::Responder respond = [this, promise](http::ResponseBuilder build) {
      Answer a;
      a.response = build();
      for (const HttpHeader& h : a.response.headers) {
        if (h.name == "x-amzn-RequestId") a.request_id = h.value;
      }
      a.commits_at_answer = backend_->commits.load();
      a.events_at_answer = static_cast<int>(Events(a.request_id).size());
      promise->set_value(std::move(a));
    };
    return {std::move(respond), std::move(future)};
  }
  Answer Handle(HttpRequest request) {
    auto [respond, future] = Capture();
    handler_->Handle(std::move(request), std::move(respond));
    EXPECT_EQ(future.wait_for(10s), std::future_status::ready);
    return future.get();
  }

  // The committed events of one request id (parsed).
  std::vector<json::Value> Events(const std::string& request_id) {
    std::vector<json::Value> found;
    store::AuditQuery q;
    q.limit = 1000;
    auto page = trail_->Lookup(q);
    EXPECT_TRUE(page.ok());
    if (!page.ok()) return found;
    for (const auto& e : page->events) {
      auto parsed = json::Parse(e.event_json);
      if (parsed.ok() && parsed->Find("requestID")->text() == request_id) {
        found.push_back(std::move(parsed).value());
      }
    }
    return found;
  }
  static int64_t HttpStatusOf(const json::Value& event) {
    return std::stoll(event.Find("additionalEventData")->Find("httpStatus")->text());
  }
  void AwaitAudit(uint64_t recorded, uint64_t lost) {
    for (int i = 0; i < 1000; ++i) {
      audit::AuditStats s = trail_->stats();
      if (s.recorded >= recorded && s.lost >= lost) break;
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(trail_->stats().recorded, recorded);
    EXPECT_EQ(trail_->stats().lost, lost);
  }

  static constexpr const char* kSellerKey = "AKIAACMESELLER000001";
  std::unique_ptr<ManualClock> clock_;
  std::unique_ptr<catalog::CatalogHolder> holder_;
  GatedBackend* backend_ = nullptr;  // owned by store_
  std::unique_ptr<store::GroupCommitStore> store_;
  std::unique_ptr<auth::SigV4Verifier> verifier_;
  std::unique_ptr<metering::MeteringService> service_;
  std::unique_ptr<ApiHandler> handler_;
  std::unique_ptr<audit::AuditTrail> trail_;
  CountingObserver observer_;
};

TEST_F(ApiHandlerAuditTest, AStoredCallsEventCommitsWithItsRecordsBeforeTheAnswer) {
  backend_->Hold();
  auto [respond, future] = Capture();
  handler_->Handle(Signed("BatchMeterUsage", OneRecordBatch()), std::move(respond));
  // The unit is written and waits for its commit: no answer yet.
  EXPECT_EQ(future.wait_for(100ms), std::future_status::timeout);
  backend_->Release();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  Answer a = future.get();
  EXPECT_EQ(a.response.status, 200) << a.response.body;
  // One commit holds both the record and the event, and it happened before the answer.
  EXPECT_EQ(a.commits_at_answer, 1);
  EXPECT_EQ(a.events_at_answer, 1);
  EXPECT_EQ(*store_->CountUsageRows(), 1);
  std::vector<json::Value> events = Events(a.request_id);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(HttpStatusOf(events[0]), 200);
  EXPECT_EQ(events[0].Find("responseElements")->Find("Results")->items().size(), 1u);
  EXPECT_EQ(events[0].Find("additionalEventData")->Find("records")->Find("success")->text(), "1");
  EXPECT_EQ(trail_->stats().recorded, 1u);
  EXPECT_EQ(backend_->commits.load(), 1);  // no unit of its own for the event
  EXPECT_EQ(observer_.request_ids(), std::vector<std::string>{a.request_id});
}

TEST_F(ApiHandlerAuditTest, AFailedGroupTakesTheEventWithItAndTheErrorIsRecordedOnce) {
  backend_->fail_commits = 1;
  Answer a = Handle(Signed("BatchMeterUsage", OneRecordBatch()));
  EXPECT_EQ(a.response.status, 500) << a.response.body;
  EXPECT_EQ(*store_->CountUsageRows(), 0);
  // The event sealed in the failed group was rolled back with the record; the answered error
  // goes the asynchronous way, once.
  AwaitAudit(1, 0);
  std::vector<json::Value> events = Events(a.request_id);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(HttpStatusOf(events[0]), 500);
  EXPECT_EQ(events[0].Find("errorCode")->text(), "InternalServiceErrorException");
  EXPECT_EQ(observer_.request_ids(), std::vector<std::string>{a.request_id});
}

TEST_F(ApiHandlerAuditTest, AReRunGroupWritesTheEventOnce) {
  backend_->fail_commits = 1;
  backend_->retry_failed_groups = true;
  Answer a = Handle(Signed("BatchMeterUsage", OneRecordBatch()));
  EXPECT_EQ(a.response.status, 200) << a.response.body;
  EXPECT_EQ(a.events_at_answer, 1);
  EXPECT_EQ(*store_->CountUsageRows(), 1);
  EXPECT_EQ(Events(a.request_id).size(), 1u);
  EXPECT_EQ(trail_->stats().recorded, 1u);
}

TEST_F(ApiHandlerAuditTest, ARefusedCallIsAnsweredOnlyOnceItsEventCommitted) {
  // A body changed after signing (InvalidSignatureException) and a model violation
  // (ValidationException): both refused before the store.
  HttpRequest tampered = Signed("BatchMeterUsage", OneRecordBatch(3));
  tampered.body = OneRecordBatch(4);
  HttpRequest invalid = Signed("BatchMeterUsage", R"({"ProductCode":"acmesaas01"})");
  int n = 0;
  for (HttpRequest* request : {&tampered, &invalid}) {
    ++n;
    backend_->Hold();
    auto [respond, future] = Capture();
    handler_->Handle(std::move(*request), std::move(respond));
    EXPECT_EQ(future.wait_for(100ms), std::future_status::timeout);
    backend_->Release();
    ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
    Answer a = future.get();
    EXPECT_GE(a.response.status, 400) << a.response.body;
    EXPECT_EQ(a.events_at_answer, 1);
    EXPECT_EQ(a.commits_at_answer, n);
    std::vector<json::Value> events = Events(a.request_id);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(HttpStatusOf(events[0]), a.response.status);
  }
  EXPECT_EQ(*store_->CountUsageRows(), 0);
  EXPECT_EQ(trail_->stats().recorded, 2u);
  EXPECT_EQ(observer_.request_ids().size(), 2u);
}

TEST_F(ApiHandlerAuditTest, ARefusedCallIsAnsweredWhenItsEventIsLost) {
  backend_->fail_commits = 1;
  Answer a = Handle(Signed("NoSuchOperation", "{}"));
  EXPECT_GE(a.response.status, 400) << a.response.body;
  EXPECT_EQ(a.events_at_answer, 0);
  AwaitAudit(0, 1);
  EXPECT_EQ(observer_.request_ids(), std::vector<std::string>{a.request_id});
}

TEST_F(ApiHandlerAuditTest, AnHttpRejectIsAnsweredOnlyOnceItsEventCommitted) {
  backend_->Hold();
  auto [respond, future] = Capture();
  handler_->RejectAsync(http::RejectReason::kBodyTooLarge, std::move(respond));
  EXPECT_EQ(future.wait_for(100ms), std::future_status::timeout);
  backend_->Release();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  Answer a = future.get();
  EXPECT_EQ(a.response.status, 400);
  EXPECT_TRUE(a.response.close_connection);
  EXPECT_EQ(a.events_at_answer, 1);
  EXPECT_EQ(observer_.request_ids(), std::vector<std::string>{a.request_id});
}

TEST_F(ApiHandlerAuditTest, EveryCallOfABusyGroupIsAnsweredWithItsEvent) {
  // Calls that reach the store and calls refused before it, queued behind one held commit, then
  // committed together.
  backend_->Hold();
  std::vector<std::future<Answer>> futures;
  for (int i = 0; i < 20; ++i) {
    auto [respond, future] = Capture();
    handler_->Handle(
        i % 2 == 0 ? Signed("BatchMeterUsage", OneRecordBatch(i + 1)) : Signed("Nope", "{}"),
        std::move(respond));
    futures.push_back(std::move(future));
  }
  backend_->Release();
  std::set<std::string> ids;
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    Answer a = f.get();
    EXPECT_EQ(a.events_at_answer, 1) << a.response.body;
    ids.insert(a.request_id);
  }
  EXPECT_EQ(ids.size(), 20u);
  EXPECT_EQ(trail_->stats().recorded, 20u);
  EXPECT_EQ(observer_.request_ids().size(), 20u);
}

}  // namespace
}  // namespace meterd::protocol
