#include "audit/audit_trail.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "audit/audit_event.h"
#include "common/time_util.h"
#include "json/json.h"
#include "store/postgres_test_server.h"

namespace meterd::audit {
namespace {

// The trail over each store backend (the reader contract holds for all).
class AuditTrailTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/meterd-audit-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    store::StoreOptions options;
    options.data_dir = dir_;
    std::string why;
    auto url = store::PostgresTestServer::StoreUrlFor(GetParam(), &why);
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    if (url->empty()) GTEST_SKIP() << why;
    auto store = store::OpenStore(*url, options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    clock_ = std::make_unique<ManualClock>(*ParseIso8601("2026-11-01T00:00:00Z"));
    trail_ = std::make_unique<AuditTrail>(store_.get(), clock_.get());
  }
  void TearDown() override {
    store_->Close();
    std::filesystem::remove_all(dir_);
  }

  protocol::ApiCall Call(int n, const std::string& account, const std::string& error = "") {
    protocol::ApiCall call;
    call.request_id = "req-" + std::to_string(n);
    call.operation = n % 2 == 0 ? "MeterUsage" : "BatchMeterUsage";
    call.access_key_id = "AKIA" + account;
    call.account = account;
    call.http_status = error.empty() ? 200 : 400;
    call.error_code = error;
    return call;
  }

  // Waits until `n` events are committed (recording is asynchronous).
  void AwaitRecorded(uint64_t n) {
    for (int i = 0; i < 2000 && trail_->stats().recorded < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(trail_->stats().recorded, n);
  }

  std::vector<std::string> RequestIds(store::AuditQuery q) {
    std::vector<std::string> ids;
    while (true) {
      auto page = trail_->Lookup(q);
      EXPECT_TRUE(page.ok());
      if (!page.ok()) return ids;
      for (const auto& e : page->events) {
        auto parsed = json::Parse(e.event_json);
        ids.push_back(parsed->Find("requestID")->text());
      }
      if (!page->more) return ids;
      q.after =
          store::AuditPosition{page->events.back().event_time_ms, page->events.back().event_id};
    }
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ManualClock> clock_;
  std::unique_ptr<AuditTrail> trail_;
};

TEST_P(AuditTrailTest, RecordsLooksUpNewestFirstAndPaginates) {
  // 30 calls, 1 s apart; every third one failed; two accounts.
  for (int i = 0; i < 30; ++i) {
    trail_->OnApiCall(Call(i, i % 2 == 0 ? "111122223333" : "444455556666",
                           i % 3 == 0 ? "ThrottlingException" : ""));
    clock_->Advance(1000);
  }
  AwaitRecorded(30);
  store::AuditQuery all;
  all.limit = 7;
  std::vector<std::string> ids = RequestIds(all);
  ASSERT_EQ(ids.size(), 30u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(ids[i], "req-" + std::to_string(29 - i));

  store::AuditQuery failed;
  failed.errors_only = true;
  EXPECT_EQ(RequestIds(failed).size(), 10u);
  store::AuditQuery throttled;
  throttled.error_code = "ThrottlingException";
  throttled.account_id = "111122223333";
  EXPECT_EQ(RequestIds(throttled).size(), 5u);  // i = 0, 6, 12, 18, 24
  store::AuditQuery by_key;
  by_key.access_key_id = "AKIA444455556666";
  by_key.event_name = "BatchMeterUsage";
  EXPECT_EQ(RequestIds(by_key).size(), 15u);
  store::AuditQuery window;
  window.from_ms = *ParseIso8601("2026-11-01T00:00:10Z");
  window.to_ms = *ParseIso8601("2026-11-01T00:00:20Z");
  std::vector<std::string> in_window = RequestIds(window);
  ASSERT_EQ(in_window.size(), 10u);
  EXPECT_EQ(in_window.front(), "req-19");
  EXPECT_EQ(in_window.back(), "req-10");
}

TEST_P(AuditTrailTest, EventsOfOneMillisecondArePagedOnceEach) {
  for (int i = 0; i < 25; ++i) trail_->OnApiCall(Call(i, "111122223333"));
  AwaitRecorded(25);
  store::AuditQuery q;
  q.limit = 4;
  std::vector<std::string> ids = RequestIds(q);
  EXPECT_EQ(ids.size(), 25u);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 25u);
}

TEST_P(AuditTrailTest, PrunesPastTheRetentionInSmallBatches) {
  for (int i = 0; i < 12; ++i) trail_->OnApiCall(Call(i, "111122223333"));
  AwaitRecorded(12);
  clock_->Advance(10 * kDayMillis);
  for (int i = 12; i < 15; ++i) trail_->OnApiCall(Call(i, "111122223333"));
  AwaitRecorded(15);
  // Nothing is older than 90 days yet.
  auto none = trail_->Prune(90 * kDayMillis, 5);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
  clock_->Advance(85 * kDayMillis);  // the first 12 are 95 days old, the last 3 85 days
  auto pruned = trail_->Prune(90 * kDayMillis, 5);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 12);
  EXPECT_EQ(trail_->stats().pruned, 12u);
  // The three left share one millisecond: their order is that of their event ids.
  std::vector<std::string> left = RequestIds(store::AuditQuery());
  EXPECT_EQ(std::set<std::string>(left.begin(), left.end()),
            (std::set<std::string>{"req-14", "req-13", "req-12"}));
}

TEST_P(AuditTrailTest, ARepeatedEventIdIsKeptOnce) {
  store::AuditEventRow row = MeteringEvent(Call(1, "111122223333"), 5, "same-id");
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(store::SubmitAndWait(store_.get(), [&](store::Transaction& txn) {
                  return txn.PutAuditEvent(row);
                }).ok());
  }
  EXPECT_EQ(RequestIds(store::AuditQuery()).size(), 1u);
}

TEST_P(AuditTrailTest, EventsAfterCloseAreCountedAsLost) {
  store_->Close();
  trail_->OnApiCall(Call(1, "111122223333"));
  EXPECT_EQ(trail_->stats().lost, 1u);
  EXPECT_EQ(trail_->stats().recorded, 0u);
}

TEST_P(AuditTrailTest, WriteEventCommitsOrFailsWithTheUnitsOwnWrites) {
  store::UsageRow row;
  row.record_id = "rec-1";
  row.dedup_key = "dedup-1";
  row.source = "BatchMeterUsage";
  row.request_id = "req-1";
  const protocol::ApiCall call = Call(1, "111122223333");
  std::unique_ptr<protocol::PreparedAuditEvent> prepared = trail_->PrepareEvent(call, "event-1");
  // A unit whose apply fails after the event was written: neither the record nor the event.
  Status failed = store::SubmitAndWait(store_.get(), [&](store::Transaction& txn) -> Status {
    METERD_RETURN_IF_ERROR(txn.InsertUsageIfAbsent(row).status());
    METERD_RETURN_IF_ERROR(trail_->WriteEvent(call, *prepared, txn));
    return Status(StatusCode::kIoError, "the group failed");
  });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(*store_->CountUsageRows(), 0);
  EXPECT_TRUE(RequestIds(store::AuditQuery()).empty());
  // The same unit that commits: both, and the event once even when written twice (a re-run).
  ASSERT_TRUE(store::SubmitAndWait(store_.get(), [&](store::Transaction& txn) -> Status {
                METERD_RETURN_IF_ERROR(txn.InsertUsageIfAbsent(row).status());
                METERD_RETURN_IF_ERROR(trail_->WriteEvent(call, *prepared, txn));
                return trail_->WriteEvent(call, *prepared, txn);
              }).ok());
  EXPECT_EQ(*store_->CountUsageRows(), 1);
  EXPECT_EQ(RequestIds(store::AuditQuery()), std::vector<std::string>{"req-1"});
}

TEST_P(AuditTrailTest, RecordEventTellsWhenItsEventIsDurable) {
  std::promise<std::pair<Status, size_t>> seen;
  // Runs after the commit: the event can be read already.
  trail_->RecordEvent(Call(7, "111122223333"), "event-7", [&](const Status& status) {
    auto page = trail_->Lookup(store::AuditQuery());
    seen.set_value({status, page.ok() ? page->events.size() : 0});
  });
  auto [status, events] = seen.get_future().get();
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(events, 1u);
  EXPECT_EQ(trail_->stats().recorded, 1u);
  auto page = trail_->Lookup(store::AuditQuery());
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_EQ(page->events[0].event_id, "event-7");
}

TEST_P(AuditTrailTest, RecordEventAfterCloseAnswersWithTheLoss) {
  store_->Close();
  std::optional<Status> seen;
  trail_->RecordEvent(Call(1, "111122223333"), "event-1",
                      [&](const Status& status) { seen = status; });
  ASSERT_TRUE(seen.has_value());
  EXPECT_FALSE(seen->ok());
  EXPECT_EQ(trail_->stats().lost, 1u);
}

INSTANTIATE_TEST_SUITE_P(Backends, AuditTrailTest,
                         ::testing::Values("embedded", "memory", "sqlite", "postgresql"));

}  // namespace
}  // namespace meterd::audit
