#include "store/embedded_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/time_util.h"
#include "store/ledger_codec.h"
#include "store/ledger_db.h"
#include "store/store.h"
#include "store/usage_reader.h"

namespace meterd::store {
namespace {

constexpr int64_t kHour = 1'793'491'200'000;  // an hour start in 2026

UsageRow Row(int i, const std::string& account = "222233334444") {
  UsageRow row;
  row.record_id = "record-" + std::to_string(i);
  row.dedup_key = "B|key-" + std::to_string(i);
  row.source = "BatchMeterUsage";
  row.region = "us-east-1";
  row.product_code = "prod";
  row.seller_account = "111122223333";
  row.customer_identifier = "cust-" + std::to_string(i);
  row.customer_account = account;
  row.dimension = "api_calls";
  row.usage_hour_ms = kHour;
  row.timestamp_ms = kHour + 1000 * (100 - i);  // later rows are stamped earlier
  row.quantity = i + 1;
  row.request_id = "req-" + std::to_string(i);
  row.received_ms = kHour + 5000;
  return row;
}

class EmbeddedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("meterd-embedded-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Open();
  }
  void TearDown() override {
    opened_ = OpenedStore();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    opened_ = OpenedStore();
    StoreOptions options;
    options.data_dir = dir_.string();
    auto opened = OpenStoreWithReader("embedded", options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    opened_ = std::move(opened).value();
  }
  Store* store() { return opened_.store.get(); }

  std::filesystem::path dir_;
  OpenedStore opened_;
};

// Two units with the same dedup key in one group: the second sees the first's row (the group's
// reads see its own writes), and a failed group leaves nothing, not even its seq.
TEST_F(EmbeddedStoreTest, AGroupSeesItsOwnWritesAndAFailedGroupLeavesNothing) {
  std::optional<ExistingUsage> first, second;
  ASSERT_TRUE(SubmitAndWait(store(), [&](Transaction& txn) -> Status {
                auto a = txn.InsertUsageIfAbsent(Row(1));
                auto b = txn.InsertUsageIfAbsent(Row(1));
                if (!a.ok() || !b.ok()) return Status(StatusCode::kIoError, "insert");
                first = *a;
                second = *b;
                return Status::Ok();
              }).ok());
  EXPECT_FALSE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->record_id, "record-1");
  EXPECT_EQ(second->quantity, 2);

  Status failed = SubmitAndWait(store(), [&](Transaction& txn) -> Status {
    (void)txn.InsertUsageIfAbsent(Row(2));
    (void)txn.PutAuditEvent(AuditEventRow{"ev-x", kHour, "s", "n", "", "", "", "{}"});
    return Status(StatusCode::kIoError, "the group fails");
  });
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(*store()->CountUsageRows(), 1);
  ASSERT_TRUE(SubmitAndWait(store(), [&](Transaction& txn) -> Status {
                auto found = txn.FindUsage(Row(2).dedup_key);
                EXPECT_TRUE(found.ok() && !found->has_value());
                return txn.InsertUsageIfAbsent(Row(3)).status();
              }).ok());
  auto page = store()->audit_reader()->LookupAuditEvents(AuditQuery{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->events.empty());

  // The ledger in (timestamp, seq) order; the failed group's seq was not used.
  auto usage = opened_.reader->ListUsage(UsageFilter{}, std::nullopt, 10);
  ASSERT_TRUE(usage.ok());
  ASSERT_EQ(usage->records.size(), 2u);
  EXPECT_EQ(usage->records[0].row.record_id, "record-3");
  EXPECT_EQ(usage->records[0].position.seq, 2);
  EXPECT_EQ(usage->records[1].row.record_id, "record-1");
  EXPECT_EQ(usage->records[1].position.seq, 1);
}

// Every table and counter survives a reopen; the seq goes on where it stopped.
TEST_F(EmbeddedStoreTest, EverythingSurvivesAReopen) {
  ASSERT_TRUE(
      SubmitAndWait(store(), [&](Transaction& txn) -> Status {
        for (int i = 0; i < 5; ++i)
          METERD_RETURN_IF_ERROR(txn.InsertUsageIfAbsent(Row(i)).status());
        METERD_RETURN_IF_ERROR(txn.PutClientToken({"i-1", "tok", "fp", "record-0", kHour}));
        METERD_RETURN_IF_ERROR(txn.PutEntitlement("i-1", "prod", kHour));
        METERD_RETURN_IF_ERROR(txn.PutEntitlement("i-1", "prod", kHour + 1));
        METERD_RETURN_IF_ERROR(txn.OpenRunIfAbsent({"w-b", "prod", kHour}));
        METERD_RETURN_IF_ERROR(txn.OpenRunIfAbsent({"w-a", "prod", kHour + 1}));
        METERD_RETURN_IF_ERROR(txn.OpenRunIfAbsent({"w-a", "prod", kHour + 2}));
        METERD_RETURN_IF_ERROR(txn.StopRun("w-b", "prod", kHour + 9));
        METERD_RETURN_IF_ERROR(txn.PutRegistrationToken({"t2", "s", "prod", "c", "", kHour + 1}));
        METERD_RETURN_IF_ERROR(txn.PutRegistrationToken({"t1", "s", "prod", "c", "", kHour}));
        METERD_RETURN_IF_ERROR(txn.PutRegistrationToken({"t1", "s", "prod", "c", "", kHour + 7}));
        METERD_RETURN_IF_ERROR(txn.PutCatalog({1, "{}", kHour, "first"}));
        METERD_RETURN_IF_ERROR(txn.PutCatalog({2, "{\"a\":1}", kHour, "second"}));
        EXPECT_FALSE(txn.PutCatalog({2, "{}", kHour, "again"}).ok());
        return txn.PutAuditEvent(
            AuditEventRow{"ev-1", kHour, "src", "MeterUsage", "acct", "AK", "", "{}"});
      }).ok());
  Open();
  EXPECT_EQ(*store()->CountUsageRows(), 5);
  ASSERT_TRUE(SubmitAndWait(store(), [&](Transaction& txn) -> Status {
                auto token = txn.FindClientToken("i-1", "tok");
                EXPECT_TRUE(token.ok() && token->has_value() && (*token)->record_id == "record-0");
                EXPECT_TRUE(*txn.HasEntitlement("i-1", "prod"));
                EXPECT_FALSE(*txn.HasEntitlement("i-2", "prod"));
                auto runs = txn.ListOpenRuns();
                EXPECT_TRUE(runs.ok() && runs->size() == 1 && (*runs)[0].workload_id == "w-a" &&
                            (*runs)[0].started_ms == kHour + 1);
                auto tokens = txn.ListRegistrationTokens();
                EXPECT_TRUE(tokens.ok() && tokens->size() == 2 && (*tokens)[0].token == "t1" &&
                            (*tokens)[0].issued_ms == kHour);
                EXPECT_TRUE(*txn.DeleteRegistrationToken("t2"));
                EXPECT_FALSE(*txn.DeleteRegistrationToken("t2"));
                auto catalog = txn.LatestCatalog();
                EXPECT_TRUE(catalog.ok() && catalog->has_value() && (*catalog)->version == 2 &&
                            (*catalog)->change == "second");
                return txn.InsertUsageIfAbsent(Row(9)).status();
              }).ok());
  auto usage = opened_.reader->ListUsage(UsageFilter{}, std::nullopt, 100);
  ASSERT_TRUE(usage.ok());
  ASSERT_EQ(usage->records.size(), 6u);
  EXPECT_EQ(usage->records[0].row.record_id, "record-9");
  EXPECT_EQ(usage->records[0].position.seq, 6);
  auto events = store()->audit_reader()->LookupAuditEvents(AuditQuery{});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->events.size(), 1u);
  EXPECT_EQ(events->events[0].event_name, "MeterUsage");
}

// A data dir of layout 1 (dedup entries keyed by the digest alone, holding the whole key and the
// answer) is upgraded at open: every stored key is still found, with its first record's answer,
// and a new record is still new.
TEST_F(EmbeddedStoreTest, ALayout1LedgerIsUpgradedAndEveryDedupKeyHolds) {
  constexpr int kRows = 300;
  ASSERT_TRUE(SubmitAndWait(store(), [&](Transaction& txn) -> Status {
                for (int i = 0; i < kRows; ++i) {
                  METERD_RETURN_IF_ERROR(txn.InsertUsageIfAbsent(Row(i)).status());
                }
                return Status::Ok();
              }).ok());
  opened_ = OpenedStore();
  {
    // Rewrite the dedup family as layout 1 wrote it.
    auto db =
        ledger::LedgerDb::Open(ledger::LedgerPath(dir_.string()), ledger::OpenMode::kReadWrite, "");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    rocksdb::DB* raw = (*db)->db();
    rocksdb::WriteBatch batch;
    int rows = 0;
    std::unique_ptr<rocksdb::Iterator> it(
        raw->NewIterator(rocksdb::ReadOptions(), (*db)->family(ledger::kUsage)));
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++rows) {
      int64_t seq = 0;
      UsageRow r;
      ASSERT_TRUE(ledger::ParseUsageKey(it->key().ToString(), &seq));
      ASSERT_TRUE(ledger::DecodeUsageRow(it->value().ToString(), &r));
      std::string old_value;
      ledger::PutKeyString(&old_value, r.dedup_key);
      ledger::PutKeyString(&old_value, r.record_id);
      ledger::PutFixed(&old_value, r.quantity);
      ledger::PutFixed(&old_value, r.timestamp_ms);
      ledger::PutFixed(&old_value, seq);
      const std::string key = ledger::DedupKey(r.dedup_key);
      ASSERT_TRUE(batch.Delete((*db)->family(ledger::kDedup), key).ok());
      ASSERT_TRUE(batch.Put((*db)->family(ledger::kDedup), key.substr(8), old_value).ok());
      std::string old_account_key;
      ledger::PutKeyString(&old_account_key, r.customer_account);
      ledger::PutOrderedInt(&old_account_key, r.timestamp_ms);
      ledger::PutOrderedInt(&old_account_key, seq);
      ASSERT_TRUE(batch
                      .Delete((*db)->family(ledger::kUsageByAccount),
                              ledger::UsageByAccountKey(r.customer_account, r.timestamp_ms, seq))
                      .ok());
      ASSERT_TRUE(batch.Put((*db)->family(ledger::kUsageByAccount), old_account_key, "").ok());
    }
    ASSERT_EQ(rows, kRows);
    ASSERT_TRUE(batch
                    .Put((*db)->family(ledger::kMeta), std::string(ledger::kMetaSchema),
                         ledger::FixedValue(1))
                    .ok());
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(raw->Write(wo, &batch).ok());
  }
  Open();
  ASSERT_TRUE(SubmitAndWait(store(), [&](Transaction& txn) -> Status {
                for (int i = 0; i < kRows; ++i) {
                  auto again = txn.InsertUsageIfAbsent(Row(i));
                  EXPECT_TRUE(again.ok() && again->has_value()) << i;
                  if (again.ok() && again->has_value()) {
                    EXPECT_EQ((*again)->record_id, "record-" + std::to_string(i));
                    EXPECT_EQ((*again)->quantity, i + 1);
                  }
                }
                auto fresh = txn.InsertUsageIfAbsent(Row(kRows));
                EXPECT_TRUE(fresh.ok() && !fresh->has_value());
                return Status::Ok();
              }).ok());
  EXPECT_EQ(*store()->CountUsageRows(), kRows + 1);
  UsageFilter of_account;
  of_account.customer_account = "222233334444";
  auto listed = opened_.reader->ListUsage(of_account, std::nullopt, 1000);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->records.size(), static_cast<size_t>(kRows + 1));
  opened_ = OpenedStore();
  auto db =
      ledger::LedgerDb::Open(ledger::LedgerPath(dir_.string()), ledger::OpenMode::kReadWrite, "");
  ASSERT_TRUE(db.ok());
  std::string schema;
  ASSERT_TRUE((*db)
                  ->db()
                  ->Get(rocksdb::ReadOptions(), (*db)->family(ledger::kMeta),
                        std::string(ledger::kMetaSchema), &schema)
                  .ok());
  int64_t version = 0;
  ASSERT_TRUE(ledger::ParseFixedValue(schema, &version));
  EXPECT_EQ(version, ledger::kLayoutVersion);
  int entries = 0;
  std::unique_ptr<rocksdb::Iterator> it(
      (*db)->db()->NewIterator(rocksdb::ReadOptions(), (*db)->family(ledger::kDedup)));
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++entries) {
    EXPECT_EQ(it->key().size(), 24u);
    EXPECT_EQ(it->value().size(), 8u);
  }
  EXPECT_EQ(entries, kRows + 1);
  int account_entries = 0;
  it.reset(
      (*db)->db()->NewIterator(rocksdb::ReadOptions(), (*db)->family(ledger::kUsageByAccount)));
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++account_entries) {
    std::string account;
    int64_t ts = 0, seq = 0;
    EXPECT_TRUE(ledger::ParseUsageByAccountKey(it->key().ToString(), &account, &ts, &seq));
  }
  EXPECT_EQ(account_entries, kRows + 1);
}

// A buyer's rows over several days (the account index is keyed by day first): every page of a
// range walks them once, in (timestamp, seq) order, and other buyers' rows never show.
TEST_F(EmbeddedStoreTest, AnAccountsRowsAcrossDaysPageInOrder) {
  constexpr int kRows = 40;
  auto spread = [](int i, const std::string& account) {
    UsageRow r = Row(i, account);
    r.timestamp_ms = kHour - 5 * kMillisPerDay + i * (3 * kMillisPerHour + 7);  // 5 days
    r.usage_hour_ms = FloorToHour(r.timestamp_ms);
    return r;
  };
  ASSERT_TRUE(SubmitAndWait(store(), [&](Transaction& txn) -> Status {
                for (int i = kRows - 1; i >= 0; --i) {
                  METERD_RETURN_IF_ERROR(
                      txn.InsertUsageIfAbsent(spread(i, "222233334444")).status());
                  METERD_RETURN_IF_ERROR(
                      txn.InsertUsageIfAbsent(spread(1000 + i, "999988887777")).status());
                }
                return Status::Ok();
              }).ok());
  for (const auto& [from, to] :
       std::vector<std::pair<std::optional<int64_t>, std::optional<int64_t>>>{
           {std::nullopt, std::nullopt},
           {spread(7, "").timestamp_ms, spread(33, "").timestamp_ms},
           {0, INT64_MAX}}) {
    UsageFilter filter;
    filter.customer_account = "222233334444";
    filter.from_ms = from;
    filter.to_ms = to;
    std::vector<int64_t> seen;
    std::optional<LedgerPosition> after;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = opened_.reader->ListUsage(filter, after, 3);
      ASSERT_TRUE(page.ok()) << page.status().ToString();
      for (const LedgerRecord& rec : page->records) {
        EXPECT_EQ(rec.row.customer_account, "222233334444");
        seen.push_back(rec.row.timestamp_ms);
        after = rec.position;
      }
      if (!page->more) break;
    }
    std::vector<int64_t> expected;
    for (int i = 0; i < kRows; ++i) {
      const int64_t ts = spread(i, "").timestamp_ms;
      if ((!from || ts >= *from) && (!to || ts < *to)) expected.push_back(ts);
    }
    EXPECT_EQ(seen, expected);
  }
}

// The dedup family is in hour order: a key's entry starts with its hour.
TEST(LedgerCodecTest, DedupKeysStartWithTheirHour) {
  EXPECT_EQ(ledger::DedupKeyHour("B|9:us-east-1|1:p|1:a|0:|1:d|13:1793491200000"), 1793491200000);
  EXPECT_EQ(ledger::DedupKeyHour("A|1:w|3:tok"), 0);
  EXPECT_EQ(ledger::DedupKeyHour("B|key-1"), 0);                 // not metering's shape: hour 0
  EXPECT_EQ(ledger::DedupKeyHour("B|1:d|12:1793491200000"), 0);  // the length does not match
  EXPECT_EQ(ledger::DedupKeyHour(""), 0);
  const std::string early = ledger::DedupKey("M|1:w|1:p|1:d|13:1793491200000");
  const std::string late = ledger::DedupKey("M|1:w|1:p|1:d|13:1793494800000");
  EXPECT_EQ(early.size(), 24u);
  EXPECT_LT(early.substr(0, 8), late.substr(0, 8));
}

// Keyset pages of the ledger (plain and by buyer account) and of the audit trail walk every
// matching row exactly once, in order; rollups equal the ledger's sums.
TEST_F(EmbeddedStoreTest, PagesWalkEveryRowOnceAndRollupsEqualTheLedger) {
  int64_t total = 0, account_rows = 0;
  for (int unit = 0; unit < 10; ++unit) {
    ASSERT_TRUE(
        SubmitAndWait(store(), [&](Transaction& txn) -> Status {
          for (int i = unit * 7; i < unit * 7 + 7; ++i) {
            METERD_RETURN_IF_ERROR(
                txn.InsertUsageIfAbsent(Row(i, i % 3 == 0 ? "999988887777" : "222233334444"))
                    .status());
            METERD_RETURN_IF_ERROR(txn.PutAuditEvent(
                AuditEventRow{"ev-" + std::to_string(1000 + i), kHour + i / 2, "src",
                              i % 2 ? "MeterUsage" : "BatchMeterUsage", "acct", "AK", "", "{}"}));
          }
          return Status::Ok();
        }).ok());
  }
  for (int i = 0; i < 70; ++i) {
    total += i + 1;
    account_rows += i % 3 == 0 ? 1 : 0;
  }
  for (const std::string account : {"", "999988887777"}) {
    UsageFilter filter;
    filter.customer_account = account;
    std::optional<LedgerPosition> after;
    std::vector<LedgerRecord> all;
    while (true) {
      auto page = opened_.reader->ListUsage(filter, after, 4);
      ASSERT_TRUE(page.ok());
      for (auto& r : page->records) all.push_back(r);
      if (!page->more) break;
      after = page->records.back().position;
    }
    EXPECT_EQ(static_cast<int64_t>(all.size()), account.empty() ? 70 : account_rows);
    for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].position, all[i].position);
  }
  RollupQuery q;
  q.granularity = Granularity::kDay;
  q.from_ms = PeriodStart(Granularity::kDay, kHour);
  q.to_ms = q.from_ms + 24 * 3'600'000;
  auto rollups = opened_.reader->ReadRollups(q);
  ASSERT_TRUE(rollups.ok());
  int64_t rolled = 0, records = 0;
  for (const auto& r : *rollups) {
    rolled += r.quantity;
    records += r.records;
  }
  EXPECT_EQ(rolled, total);
  EXPECT_EQ(records, 70);

  AuditQuery aq;
  aq.event_name = "MeterUsage";
  aq.limit = 6;
  std::vector<AuditEventRow> events;
  while (true) {
    auto page = store()->audit_reader()->LookupAuditEvents(aq);
    ASSERT_TRUE(page.ok());
    for (auto& e : page->events) events.push_back(e);
    if (!page->more) break;
    aq.after = AuditPosition{page->events.back().event_time_ms, page->events.back().event_id};
  }
  ASSERT_EQ(events.size(), 35u);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(std::tie(events[i - 1].event_time_ms, events[i - 1].event_id),
              std::tie(events[i].event_time_ms, events[i].event_id));
  }
  // Retention: the oldest first, bounded per unit.
  int64_t deleted = 0;
  ASSERT_TRUE(SubmitAndWait(store(), [&](Transaction& txn) -> Status {
                auto n = txn.DeleteAuditEventsBefore(kHour + 10, 5);
                deleted = n.ok() ? *n : -1;
                return n.status();
              }).ok());
  EXPECT_EQ(deleted, 5);
  AuditQuery oldest;
  oldest.to_ms = kHour + 10;
  auto left = store()->audit_reader()->LookupAuditEvents(oldest);
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->events.size(), 15u);
}

}  // namespace
}  // namespace meterd::store

namespace meterd::store {
namespace {

// Many units in flight at once: groups overlap their fsyncs (the writer commits the next group
// while the syncer syncs the last), and the row counter written with each group still equals the
// ledger after a reopen.
TEST_F(EmbeddedStoreTest, OverlappingGroupsKeepTheRowCountExact) {
  constexpr int kUnits = 400;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0, failed = 0;
  for (int u = 0; u < kUnits; ++u) {
    WriteUnit unit;
    unit.apply = [u](Transaction& txn) -> Status {
      for (int i = 0; i < 5; ++i) {
        UsageRow row = Row(u * 5 + i);
        row.dedup_key = "B|unit-" + std::to_string(u) + "-" + std::to_string(i);
        METERD_RETURN_IF_ERROR(txn.InsertUsageIfAbsent(row).status());
      }
      return Status::Ok();
    };
    unit.done = [&](const Status& st) {
      std::lock_guard<std::mutex> lock(mu);
      ++answered;
      if (!st.ok()) ++failed;
      cv.notify_one();
    };
    store()->Submit(std::move(unit));
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return answered == kUnits; });
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(store()->Stats().groups, 1u);
  EXPECT_EQ(*store()->CountUsageRows(), kUnits * 5);
  Open();
  EXPECT_EQ(*store()->CountUsageRows(), kUnits * 5);
  std::optional<LedgerPosition> after;
  int64_t listed = 0;
  while (true) {
    auto page = opened_.reader->ListUsage(UsageFilter{}, after, 500);
    ASSERT_TRUE(page.ok());
    listed += static_cast<int64_t>(page->records.size());
    if (!page->more) break;
    after = page->records.back().position;
  }
  EXPECT_EQ(listed, kUnits * 5);
}

}  // namespace
}  // namespace meterd::store
