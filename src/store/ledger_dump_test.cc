// `meterd dump`: rows written with the codec into a ledger (kept open, as a running meterd would)
// come out as the SQLite layout; --verify's report; the refusals.
#include "store/ledger_dump.h"

#include <gtest/gtest.h>
#include <rocksdb/write_batch.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/temp_dir.h"
#include "store/ledger_codec.h"
#include "store/ledger_db.h"
#include "store/sqlite_schema.h"

namespace meterd::store {
namespace {

namespace fs = std::filesystem;
using ledger::LedgerDb;

// The rows of one SELECT, each as its columns joined with '|' (NULL as "NULL").
std::vector<std::string> Query(const std::string& path, const std::string& sql) {
  std::vector<std::string> rows;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    std::string row;
    for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
      if (c > 0) row += '|';
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
      row += p != nullptr ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt, c)))
                          : "NULL";
    }
    rows.push_back(row);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rows;
}

UsageRow Row(int64_t i) {
  UsageRow r;
  r.record_id = "rec-" + std::to_string(i);
  r.dedup_key = "key-" + std::to_string(i);
  r.source = "BatchMeterUsage";
  r.region = "us-east-1";
  r.product_code = "prod";
  r.seller_account = "111122223333";
  r.customer_identifier = i == 2 ? "" : "cust-1";
  r.customer_account = "444455556666";
  r.license_arn = "";
  r.workload_id = "";
  r.dimension = "api_calls";
  r.usage_hour_ms = 1'793'491'200'000;
  r.timestamp_ms = r.usage_hour_ms + 1000 * (3 - i);  // key order differs from seq order
  r.quantity = 10 * i;
  r.allocations_json = i == 1 ? "[{\"AllocatedUsageQuantity\":10}]" : "";
  r.request_id = "req-" + std::to_string(i);
  r.received_ms = r.timestamp_ms + 7;
  return r;
}

// Writes three ledger rows (seq 1..3) and one row of every other table, as the backend would.
void Fill(LedgerDb* db, int64_t meta_rows) {
  rocksdb::WriteBatch b;
  for (int64_t seq = 1; seq <= 3; ++seq) {
    const UsageRow r = Row(seq);
    for (const ledger::Entry& e : ledger::NewUsageEntries(r, seq))
      b.Put(db->family(e.family), e.key, e.value);
  }
  b.Put(db->family(ledger::kMeta), std::string(ledger::kMetaSchema),
        ledger::FixedValue(ledger::kLayoutVersion));
  b.Put(db->family(ledger::kMeta), std::string(ledger::kMetaNextSeq), ledger::FixedValue(4));
  b.Put(db->family(ledger::kMeta), std::string(ledger::kMetaRows), ledger::FixedValue(meta_rows));
  b.Put(db->family(ledger::kClientTokens), ledger::PairKey("workload-1", "tok"),
        ledger::EncodeClientToken({"workload-1", "tok", "fp", "rec-1", 11}));
  b.Put(db->family(ledger::kRuns), ledger::PairKey("task-open", "prod"),
        ledger::EncodeRun(100, std::nullopt));
  b.Put(db->family(ledger::kRuns), ledger::PairKey("task-stopped", "prod"),
        ledger::EncodeRun(100, 200));
  b.Put(db->family(ledger::kEntitlements), ledger::PairKey("workload-1", "prod"),
        ledger::FixedValue(12));
  b.Put(db->family(ledger::kRegistrationTokens), "reg-1",
        ledger::EncodeRegistrationToken(
            {"reg-1", "111122223333", "prod", "444455556666", "arn:lic", 13}));
  b.Put(db->family(ledger::kCatalog), ledger::CatalogKey(1),
        ledger::EncodeCatalogVersion({1, "{}", 14, "initial"}));
  b.Put(db->family(ledger::kCatalog), ledger::CatalogKey(2),
        ledger::EncodeCatalogVersion({2, "{\"a\":1}", 15, "PATCH"}));
  b.Put(db->family(ledger::kAudit), ledger::AuditKey(16, "ev-1"),
        ledger::EncodeAuditEvent(
            {"ev-1", 16, "meterd-admin", "PutAccount", "111122223333", "AKIA", "", "{\"e\":1}"}));
  ASSERT_TRUE(db->db()->Write(rocksdb::WriteOptions(), &b).ok());
  // A rollup as two merge operands: the dump holds their sum.
  RollupKey key;
  key.granularity = Granularity::kDay;
  key.period_ms = 1'793'491'200'000;
  key.product_code = "prod";
  key.customer_account = "444455556666";
  key.dimension = "api_calls";
  for (int i = 1; i <= 2; ++i) {
    ASSERT_TRUE(db->db()
                    ->Merge(rocksdb::WriteOptions(), db->family(ledger::kRollups),
                            ledger::RollupKeyBytes(key), ledger::EncodeRollupDelta({10 * i, i}))
                    .ok());
  }
}

TEST(LedgerDumpTest, EveryRowComesOutInTheSqliteLayoutWhileTheLedgerIsOpen) {
  TempDir dir("dump_test");
  auto opened = LedgerDb::Open(ledger::LedgerPath(dir.path()), ledger::OpenMode::kReadWrite);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<LedgerDb> db = std::move(opened).value();
  Fill(db.get(), 3);  // in the primary's memtables and WAL only: never flushed

  const std::string out = dir.path() + "/dump.db";
  std::string report;
  Status st = DumpLedgerToSqlite(dir.path(), out, true, &report);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(report, "ok");
  EXPECT_FALSE(fs::exists(out + ".partial"));

  EXPECT_EQ(Query(out,
                  "SELECT seq, record_id, dedup_key, source, region, product_code, "
                  "seller_account, customer_identifier, customer_account, license_arn, "
                  "workload_id, dimension, usage_hour_ms, timestamp_ms, quantity, "
                  "allocations, request_id, received_ms FROM usage_records ORDER BY seq"),
            (std::vector<std::string>{
                "1|rec-1|key-1|BatchMeterUsage|us-east-1|prod|111122223333|cust-1|444455556666|||"
                "api_calls|1793491200000|1793491202000|10|[{\"AllocatedUsageQuantity\":10}]|"
                "req-1|1793491202007",
                "2|rec-2|key-2|BatchMeterUsage|us-east-1|prod|111122223333||444455556666|||"
                "api_calls|1793491200000|1793491201000|20||req-2|1793491201007",
                "3|rec-3|key-3|BatchMeterUsage|us-east-1|prod|111122223333|cust-1|444455556666|||"
                "api_calls|1793491200000|1793491200000|30||req-3|1793491200007"}));
  EXPECT_EQ(Query(out, "SELECT * FROM client_tokens"),
            (std::vector<std::string>{"workload-1|tok|fp|rec-1|11"}));
  EXPECT_EQ(Query(out,
                  "SELECT workload_id, product_code, started_ms, stopped_ms FROM "
                  "metered_runs ORDER BY workload_id"),
            (std::vector<std::string>{"task-open|prod|100|NULL", "task-stopped|prod|100|200"}));
  EXPECT_EQ(Query(out, "SELECT count(*) FROM metered_runs WHERE stopped_ms IS NULL"),
            (std::vector<std::string>{"1"}));
  EXPECT_EQ(Query(out,
                  "SELECT workload_id, product_code, first_call_ms FROM "
                  "workload_entitlements"),
            (std::vector<std::string>{"workload-1|prod|12"}));
  EXPECT_EQ(Query(out,
                  "SELECT token, seller_account, product_code, customer_account, "
                  "license_arn, issued_ms FROM registration_tokens"),
            (std::vector<std::string>{"reg-1|111122223333|prod|444455556666|arn:lic|13"}));
  EXPECT_EQ(Query(out,
                  "SELECT version, document, changed_ms, change FROM catalog_versions "
                  "ORDER BY version"),
            (std::vector<std::string>{"1|{}|14|initial", "2|{\"a\":1}|15|PATCH"}));
  EXPECT_EQ(
      Query(out,
            "SELECT event_id, event_time_ms, event_source, event_name, account_id, "
            "access_key_id, error_code, event FROM audit_events"),
      (std::vector<std::string>{"ev-1|16|meterd-admin|PutAccount|111122223333|AKIA||{\"e\":1}"}));
  EXPECT_EQ(Query(out,
                  "SELECT granularity, period_ms, product_code, customer_account, "
                  "dimension, unit, tag_key, tag_value, quantity, records FROM "
                  "usage_rollups"),
            (std::vector<std::string>{"1|1793491200000|prod|444455556666|api_calls||||30|3"}));
  EXPECT_EQ(Query(out, "SELECT max(version) FROM schema_version"),
            (std::vector<std::string>{std::to_string(kSqliteSchemaVersion)}));
  // The legacy layout itself: its indexes and the append-only triggers are there.
  EXPECT_EQ(Query(out, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"),
            (std::vector<std::string>{"usage_records_no_delete", "usage_records_no_update"}));
  EXPECT_EQ(Query(out,
                  "SELECT count(*) FROM sqlite_master WHERE name IN "
                  "('usage_records_by_time', 'usage_records_by_account', "
                  "'audit_events_by_time')"),
            (std::vector<std::string>{"3"}));
  EXPECT_EQ(Query(out, "PRAGMA integrity_check"), (std::vector<std::string>{"ok"}));

  // The dump never overwrites a file.
  st = DumpLedgerToSqlite(dir.path(), out, false, &report);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();

  // Rows written after a dump are in the next one (the secondary catches up with the primary).
  ASSERT_TRUE(db->db()
                  ->Put(rocksdb::WriteOptions(), db->family(ledger::kEntitlements),
                        ledger::PairKey("workload-2", "prod"), ledger::FixedValue(99))
                  .ok());
  ASSERT_TRUE(db->db()->Flush(rocksdb::FlushOptions()).ok());
  ASSERT_TRUE(DumpLedgerToSqlite(dir.path(), dir.path() + "/dump2.db", false, &report).ok());
  EXPECT_EQ(report, "");
  EXPECT_EQ(Query(dir.path() + "/dump2.db", "SELECT count(*) FROM workload_entitlements"),
            (std::vector<std::string>{"2"}));
}

TEST(LedgerDumpTest, VerifyReportsBookkeepingThatDisagreesWithTheRows) {
  TempDir dir("dump_test");
  {
    auto db = LedgerDb::Open(ledger::LedgerPath(dir.path()), ledger::OpenMode::kReadWrite);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    Fill(db->get(), 5);  // claims 5 rows, holds 3
  }
  std::string report;
  Status st = DumpLedgerToSqlite(dir.path(), dir.path() + "/dump.db", true, &report);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(report.find("usage_rows is 5, the ledger holds 3 rows"), std::string::npos) << report;
}

TEST(LedgerDumpTest, NoLedgerIsNotFound) {
  TempDir dir("dump_test");
  std::string report;
  Status st = DumpLedgerToSqlite(dir.path(), dir.path() + "/dump.db", true, &report);
  EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.ToString();
  EXPECT_FALSE(fs::exists(dir.path() + "/dump.db"));
}

// A dump taken while the primary keeps committing (and flushing) is one consistent state: every
// group's rows with the counters of that group.
TEST(LedgerDumpTest, ADumpWhileThePrimaryWritesIsConsistent) {
  TempDir dir("dump_test");
  auto opened = LedgerDb::Open(ledger::LedgerPath(dir.path()), ledger::OpenMode::kReadWrite);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<LedgerDb> db = std::move(opened).value();
  std::atomic<bool> stop{false};
  std::atomic<int64_t> written{0};
  std::thread writer([&] {
    int64_t seq = 0;
    for (int group = 0; !stop.load() && group < 20000; ++group) {
      rocksdb::WriteBatch b;
      for (int k = 0; k < 20; ++k) {
        ++seq;
        UsageRow r = Row(1);
        r.dedup_key = "key-" + std::to_string(seq);
        r.record_id = "rec-" + std::to_string(seq);
        r.request_id = std::string(200, 'r');
        for (const ledger::Entry& e : ledger::NewUsageEntries(r, seq))
          b.Put(db->family(e.family), e.key, e.value);
      }
      b.Put(db->family(ledger::kMeta), std::string(ledger::kMetaNextSeq),
            ledger::FixedValue(seq + 1));
      b.Put(db->family(ledger::kMeta), std::string(ledger::kMetaRows), ledger::FixedValue(seq));
      rocksdb::WriteOptions sync;
      sync.sync = true;
      if (!db->db()->Write(sync, &b).ok()) return;
      written.store(seq);
      if (group % 200 == 199) (void)db->db()->Flush(rocksdb::FlushOptions());
    }
  });
  while (written.load() == 0) std::this_thread::yield();
  for (int i = 0; i < 4; ++i) {
    const std::string out = dir.path() + "/dump" + std::to_string(i) + ".db";
    std::string report;
    Status st = DumpLedgerToSqlite(dir.path(), out, true, &report);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(report, "ok") << "dump " << i;
    const std::vector<std::string> n = Query(out, "SELECT count(*), max(seq) FROM usage_records");
    ASSERT_EQ(n.size(), 1u);
    const int64_t rows = std::stoll(n[0]);
    EXPECT_GT(rows, 0);
    EXPECT_EQ(rows % 20, 0) << "a group's rows are all in a dump or none";
    EXPECT_EQ(n[0], std::to_string(rows) + "|" + std::to_string(rows));
  }
  stop.store(true);
  writer.join();
}

}  // namespace
}  // namespace meterd::store
