// The migration from the SQLite layout to the embedded RocksDB ledger: every table row by row,
// the meta counters, the rollup totals, a schema-1 file, and the states a crash can leave.
#include "store/sqlite_migration.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/temp_dir.h"
#include "common/time_util.h"
#include "store/ledger_codec.h"
#include "store/ledger_db.h"
#include "store/ledger_dump.h"
#include "store/store.h"

namespace meterd::store {
namespace {

namespace fs = std::filesystem;
using ledger::LedgerDb;

const int64_t kStart = *ParseIso8601("2026-10-31T20:00:00Z");  // rows cross a month boundary

UsageRow Row(int64_t i) {
  UsageRow r;
  r.record_id = "rec-" + std::to_string(i);
  r.dedup_key = "dedup|" + std::to_string(i);
  r.source = i % 10 == 0 ? "RegisterUsage" : (i % 3 == 0 ? "MeterUsage" : "BatchMeterUsage");
  r.region = "us-east-1";
  r.product_code = i % 2 ? "prodA" : "prodB";
  r.seller_account = "111122223333";
  r.customer_account = std::to_string(100000000000 + i % 7);
  r.customer_identifier = i % 4 ? "cust-" + r.customer_account : "";
  r.license_arn = i % 5 == 0 ? "arn:aws:license-manager::1:license:l-" + std::to_string(i) : "";
  r.workload_id = r.source == "MeterUsage" ? "workload-" + std::to_string(i % 3) : "";
  r.dimension = i % 2 ? "api_calls" : "storage";
  // Several rows share a timestamp (keys order by (timestamp, seq)).
  r.timestamp_ms = kStart + (i / 3) * 37 * kMillisPerSecond;
  r.usage_hour_ms = FloorToHour(r.timestamp_ms);
  r.quantity = 1 + i % 1000;
  if (i % 4 == 1) {
    const int64_t a = r.quantity / 2;
    r.allocations_json = "[{\"AllocatedUsageQuantity\":" + std::to_string(a) +
                         ",\"Tags\":[{\"Key\":\"team\",\"Value\":\"t" + std::to_string(i % 3) +
                         "\"}]},{\"AllocatedUsageQuantity\":" + std::to_string(r.quantity - a) +
                         "}]";
  }
  r.request_id = "req-" + std::to_string(i / 25);
  r.received_ms = r.timestamp_ms + 5;
  return r;
}

// Fills a SQLite data dir through the SQLite backend: `rows` ledger rows (more than one
// migration batch) and a few rows of every other table.
void FillSqlite(const std::string& data_dir, int rows) {
  StoreOptions options;
  options.data_dir = data_dir;
  auto store = OpenStore("sqlite", options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (int i = 0; i < rows;) {
    const int end = std::min(rows, i + 1000);
    Status st = SubmitAndWait(store->get(), [&](Transaction& txn) -> Status {
      for (int k = i; k < end; ++k) {
        auto existing = txn.InsertUsageIfAbsent(Row(k));
        if (!existing.ok()) return existing.status();
      }
      return Status::Ok();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    i = end;
  }
  Status st = SubmitAndWait(store->get(), [](Transaction& txn) -> Status {
    METERD_RETURN_IF_ERROR(
        txn.PutClientToken({"workload-1", "token-a", "fp-a", "rec-3", kStart + 1}));
    METERD_RETURN_IF_ERROR(
        txn.PutClientToken({"workload-2", "token-b", "fp-b", "rec-9", kStart + 2}));
    METERD_RETURN_IF_ERROR(txn.OpenRunIfAbsent({"task-1", "prodA", kStart + 10}));
    METERD_RETURN_IF_ERROR(txn.OpenRunIfAbsent({"task-2", "prodB", kStart + 20}));
    METERD_RETURN_IF_ERROR(txn.StopRun("task-2", "prodB", kStart + 3'600'000));
    METERD_RETURN_IF_ERROR(txn.PutEntitlement("workload-1", "prodA", kStart + 30));
    METERD_RETURN_IF_ERROR(txn.PutEntitlement("workload-2", "prodB", kStart + 40));
    METERD_RETURN_IF_ERROR(txn.PutRegistrationToken(
        {"reg-token-1", "111122223333", "prodA", "444455556666", "", kStart + 50}));
    METERD_RETURN_IF_ERROR(txn.PutRegistrationToken(
        {"reg-token-2", "111122223333", "prodB", "444455556667", "arn:license", kStart + 60}));
    METERD_RETURN_IF_ERROR(txn.PutCatalog({1, "{\"accounts\":[]}", kStart + 70, "initial"}));
    METERD_RETURN_IF_ERROR(
        txn.PutCatalog({2, "{\"accounts\":[{\"id\":\"1\"}]}", kStart + 80, "POST /v1/accounts 1"}));
    for (int e = 0; e < 3; ++e) {
      METERD_RETURN_IF_ERROR(txn.PutAuditEvent(
          {"event-" + std::to_string(e), kStart + 100 + e / 2, "meterd-admin", "PutAccount",
           e == 1 ? "" : "111122223333", "AKIA" + std::to_string(e), e == 2 ? "Conflict" : "",
           "{\"eventID\":\"event-" + std::to_string(e) + "\"}"}));
    }
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
}

// --- canonical rows: one string per row, columns joined, the same from SQL and from the ledger
std::string Join(const std::vector<std::string>& cols) {
  std::string out;
  for (const std::string& c : cols) {
    if (!out.empty()) out += '\x1f';
    out += c;
  }
  return out;
}
std::string I(int64_t v) { return std::to_string(v); }

using Rows = std::multiset<std::string>;

Rows SqliteRows(const std::string& path, const std::string& sql) {
  Rows rows;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    std::vector<std::string> cols;
    for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
      if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
        cols.push_back("NULL");
      } else {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
        cols.emplace_back(p, static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
      }
    }
    rows.insert(Join(cols));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rows;
}

// The SQL of each table, columns in the order LedgerRows formats them.
const std::map<std::string, std::string>& TableSql() {
  static const std::map<std::string, std::string> sql = {
      {"usage_records",
       "SELECT seq, record_id, dedup_key, source, region, product_code, seller_account, "
       "customer_identifier, customer_account, license_arn, workload_id, dimension, "
       "usage_hour_ms, timestamp_ms, quantity, allocations, request_id, received_ms FROM "
       "usage_records"},
      {"client_tokens",
       "SELECT caller, token, fingerprint, record_id, created_ms FROM client_tokens"},
      {"metered_runs",
       "SELECT workload_id, product_code, started_ms, stopped_ms FROM metered_runs"},
      {"registration_tokens",
       "SELECT token, seller_account, product_code, customer_account, license_arn, issued_ms "
       "FROM registration_tokens"},
      {"catalog_versions", "SELECT version, document, changed_ms, change FROM catalog_versions"},
      {"workload_entitlements",
       "SELECT workload_id, product_code, first_call_ms FROM workload_entitlements"},
      {"audit_events",
       "SELECT event_id, event_time_ms, event_source, event_name, account_id, access_key_id, "
       "error_code, event FROM audit_events"},
      {"usage_rollups",
       "SELECT granularity, period_ms, product_code, customer_account, dimension, unit, tag_key, "
       "tag_value, quantity, records FROM usage_rollups"},
  };
  return sql;
}

template <typename Row>
void Scan(const LedgerDb& db, ledger::Family f, Row row) {
  std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(rocksdb::ReadOptions(), db.family(f)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    row(std::string_view(it->key().data(), it->key().size()),
        std::string_view(it->value().data(), it->value().size()));
  }
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
}

// Every table of the ledger as canonical rows; also checks the ledger's own indexes (dedup and
// by-account entries) against its rows.
std::map<std::string, Rows> LedgerRows(const LedgerDb& db) {
  std::map<std::string, Rows> t;
  int64_t usage_rows = 0;
  Scan(db, ledger::kUsage, [&](std::string_view key, std::string_view value) {
    int64_t seq = 0;
    UsageRow r;
    ASSERT_TRUE(ledger::ParseUsageKey(key, &seq));
    ASSERT_TRUE(ledger::DecodeUsageRow(value, &r));
    const int64_t ts = r.timestamp_ms;
    ++usage_rows;
    t["usage_records"].insert(
        Join({I(seq), r.record_id, r.dedup_key, r.source, r.region, r.product_code,
              r.seller_account, r.customer_identifier, r.customer_account, r.license_arn,
              r.workload_id, r.dimension, I(r.usage_hour_ms), I(r.timestamp_ms), I(r.quantity),
              r.allocations_json, r.request_id, I(r.received_ms)}));
    std::string got;
    EXPECT_TRUE(db.db()
                    ->Get(rocksdb::ReadOptions(), db.family(ledger::kDedup),
                          ledger::DedupKey(r.dedup_key), &got)
                    .ok());
    int64_t dedup_seq = 0;
    EXPECT_TRUE(ledger::DecodeDedupValue(got, &dedup_seq));
    EXPECT_EQ(dedup_seq, seq);
    EXPECT_TRUE(db.db()
                    ->Get(rocksdb::ReadOptions(), db.family(ledger::kUsageByAccount),
                          ledger::UsageByAccountKey(r.customer_account, ts, seq), &got)
                    .ok());
    EXPECT_EQ(got, "");
    EXPECT_TRUE(db.db()
                    ->Get(rocksdb::ReadOptions(), db.family(ledger::kUsageByTime),
                          ledger::UsageByTimeKey(ts, seq), &got)
                    .ok());
  });
  int64_t dedup = 0, by_account = 0;
  Scan(db, ledger::kDedup, [&](std::string_view, std::string_view) { ++dedup; });
  Scan(db, ledger::kUsageByAccount, [&](std::string_view, std::string_view) { ++by_account; });
  EXPECT_EQ(dedup, usage_rows);
  EXPECT_EQ(by_account, usage_rows);

  Scan(db, ledger::kClientTokens, [&](std::string_view key, std::string_view value) {
    ClientTokenEntry e;
    ASSERT_TRUE(ledger::ParsePairKey(key, &e.caller, &e.token));
    ASSERT_TRUE(ledger::DecodeClientToken(value, &e));
    t["client_tokens"].insert(
        Join({e.caller, e.token, e.fingerprint, e.record_id, I(e.created_ms)}));
  });
  Scan(db, ledger::kRuns, [&](std::string_view key, std::string_view value) {
    std::string w, p;
    int64_t started = 0;
    std::optional<int64_t> stopped;
    ASSERT_TRUE(ledger::ParsePairKey(key, &w, &p));
    ASSERT_TRUE(ledger::DecodeRun(value, &started, &stopped));
    t["metered_runs"].insert(Join({w, p, I(started), stopped ? I(*stopped) : "NULL"}));
  });
  Scan(db, ledger::kRegistrationTokens, [&](std::string_view key, std::string_view value) {
    RegistrationTokenRow r;
    ASSERT_TRUE(ledger::DecodeRegistrationToken(value, &r));
    t["registration_tokens"].insert(Join({std::string(key), r.seller_account, r.product_code,
                                          r.customer_account, r.license_arn, I(r.issued_ms)}));
  });
  Scan(db, ledger::kCatalog, [&](std::string_view key, std::string_view value) {
    CatalogVersion v;
    ledger::Reader k(key);
    ASSERT_TRUE(k.OrderedInt(&v.version) && k.done());
    ASSERT_TRUE(ledger::DecodeCatalogVersion(value, &v));
    t["catalog_versions"].insert(Join({I(v.version), v.document, I(v.changed_ms), v.change}));
  });
  Scan(db, ledger::kEntitlements, [&](std::string_view key, std::string_view value) {
    std::string w, p;
    int64_t first = 0;
    ASSERT_TRUE(ledger::ParsePairKey(key, &w, &p));
    ASSERT_TRUE(ledger::ParseFixedValue(value, &first));
    t["workload_entitlements"].insert(Join({w, p, I(first)}));
  });
  Scan(db, ledger::kAudit, [&](std::string_view key, std::string_view value) {
    AuditEventRow r;
    ASSERT_TRUE(ledger::ParseAuditKey(key, &r.event_time_ms, &r.event_id));
    ASSERT_TRUE(ledger::DecodeAuditEvent(value, &r));
    t["audit_events"].insert(Join({r.event_id, I(r.event_time_ms), r.event_source, r.event_name,
                                   r.account_id, r.access_key_id, r.error_code, r.event_json}));
  });
  Scan(db, ledger::kRollups, [&](std::string_view key, std::string_view value) {
    RollupKey k;
    RollupDelta d;
    ASSERT_TRUE(ledger::ParseRollupKey(key, &k));
    ASSERT_TRUE(ledger::DecodeRollupDelta(value, &d));
    t["usage_rollups"].insert(Join({I(static_cast<int64_t>(k.granularity)), I(k.period_ms),
                                    k.product_code, k.customer_account, k.dimension, k.unit,
                                    k.tag_key, k.tag_value, I(d.quantity), I(d.records)}));
  });
  return t;
}

std::map<std::string, Rows> SqliteTables(const std::string& path) {
  std::map<std::string, Rows> t;
  for (const auto& [table, sql] : TableSql()) t[table] = SqliteRows(path, sql);
  return t;
}

std::optional<int64_t> MetaFixed(const LedgerDb& db, std::string_view key) {
  std::string value;
  if (!db.db()
           ->Get(rocksdb::ReadOptions(), db.family(ledger::kMeta),
                 rocksdb::Slice(key.data(), key.size()), &value)
           .ok()) {
    return std::nullopt;
  }
  int64_t v = 0;
  if (!ledger::ParseFixedValue(value, &v)) return std::nullopt;
  return v;
}

std::string MetaText(const LedgerDb& db, std::string_view key) {
  std::string value;
  (void)db.db()->Get(rocksdb::ReadOptions(), db.family(ledger::kMeta),
                     rocksdb::Slice(key.data(), key.size()), &value);
  return value;
}

std::unique_ptr<LedgerDb> OpenLedger(const std::string& data_dir) {
  auto db = LedgerDb::Open(ledger::LedgerPath(data_dir), ledger::OpenMode::kReadWrite);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return db.ok() ? std::move(db).value() : nullptr;
}

TEST(SqliteMigrationTest, EveryTableMovesRowForRowWithItsSeqAndTheRollupTotals) {
  TempDir dir("migration_test");
  constexpr int kRows = 5000;  // more than one WriteBatch
  FillSqlite(dir.path(), kRows);
  const std::string db_path = dir.path() + "/meterd.db";
  const std::map<std::string, Rows> before = SqliteTables(db_path);
  ASSERT_EQ(before.at("usage_records").size(), static_cast<size_t>(kRows));
  ASSERT_EQ(before.at("metered_runs").size(), 2u);
  ASSERT_EQ(before.at("catalog_versions").size(), 2u);
  ASSERT_EQ(before.at("audit_events").size(), 3u);
  ASSERT_GT(before.at("usage_rollups").size(), 100u);
  const int64_t max_seq =
      std::stoll(SqliteRows(db_path, "SELECT max(seq) FROM usage_records").begin()->c_str());

  std::string summary;
  Status st = MigrateSqliteLayoutIfPresent(dir.path(), &summary);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(summary.find("5000 ledger rows"), std::string::npos) << summary;
  EXPECT_TRUE(fs::is_directory(dir.path() + "/ledger"));
  EXPECT_FALSE(fs::exists(dir.path() + "/ledger.migrating"));
  EXPECT_FALSE(fs::exists(db_path));
  EXPECT_FALSE(fs::exists(db_path + "-wal"));
  ASSERT_TRUE(fs::exists(db_path + ".migrated"));
  // The kept file is the whole SQLite store, as it was.
  EXPECT_EQ(SqliteTables(db_path + ".migrated"), before);

  auto db = OpenLedger(dir.path());
  ASSERT_NE(db, nullptr);
  const std::map<std::string, Rows> after = LedgerRows(*db);
  for (const auto& [table, rows] : before) {
    EXPECT_EQ(after.count(table) ? after.at(table) : Rows(), rows) << table;
  }
  EXPECT_EQ(MetaFixed(*db, ledger::kMetaSchema), ledger::kLayoutVersion);
  EXPECT_EQ(MetaFixed(*db, ledger::kMetaNextSeq), max_seq + 1);
  EXPECT_EQ(MetaFixed(*db, ledger::kMetaRows), kRows);
  const std::string from = MetaText(*db, ledger::kMetaMigratedFrom);
  EXPECT_EQ(from.rfind("sqlite schema 2, 5000 rows, 20", 0), 0u) << from;

  // A rollup read through the merge operator is the SQLite total, and a later merge adds to it.
  RollupKey key;
  key.granularity = Granularity::kMonth;
  key.period_ms = *ParseIso8601("2026-11-01T00:00:00Z");
  key.product_code = "prodA";
  key.customer_account = "100000000001";
  key.dimension = "api_calls";
  const std::string want = *SqliteRows(db_path + ".migrated",
                                       "SELECT quantity || ' ' || records FROM usage_rollups "
                                       "WHERE granularity = 2 AND period_ms = " +
                                           I(key.period_ms) +
                                           " AND product_code = 'prodA' AND customer_account = "
                                           "'100000000001' AND dimension = 'api_calls' AND "
                                           "unit = '' AND tag_key = ''")
                                .begin();
  std::string value;
  ASSERT_TRUE(db->db()
                  ->Get(rocksdb::ReadOptions(), db->family(ledger::kRollups),
                        ledger::RollupKeyBytes(key), &value)
                  .ok());
  RollupDelta total;
  ASSERT_TRUE(ledger::DecodeRollupDelta(value, &total));
  EXPECT_EQ(I(total.quantity) + " " + I(total.records), want);
  ASSERT_TRUE(db->db()
                  ->Merge(rocksdb::WriteOptions(), db->family(ledger::kRollups),
                          ledger::RollupKeyBytes(key), ledger::EncodeRollupDelta({5, 1}))
                  .ok());
  ASSERT_TRUE(db->db()
                  ->Get(rocksdb::ReadOptions(), db->family(ledger::kRollups),
                        ledger::RollupKeyBytes(key), &value)
                  .ok());
  RollupDelta merged;
  ASSERT_TRUE(ledger::DecodeRollupDelta(value, &merged));
  EXPECT_EQ(merged.quantity, total.quantity + 5);
  EXPECT_EQ(merged.records, total.records + 1);
  db.reset();

  // Done once: a second start has nothing to do.
  st = MigrateSqliteLayoutIfPresent(dir.path(), &summary);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(summary, "");
}

TEST(SqliteMigrationTest, NothingToDoWithoutASqliteFile) {
  TempDir dir("migration_test");
  std::string summary = "x";
  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path(), &summary).ok());
  EXPECT_EQ(summary, "");
  EXPECT_FALSE(fs::exists(dir.path() + "/ledger"));
}

TEST(SqliteMigrationTest, AnEmptyStoreMigratesWithNextSeqOne) {
  TempDir dir("migration_test");
  FillSqlite(dir.path(), 0);
  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path()).ok());
  auto db = OpenLedger(dir.path());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(MetaFixed(*db, ledger::kMetaNextSeq), 1);
  EXPECT_EQ(MetaFixed(*db, ledger::kMetaRows), 0);
  EXPECT_EQ(LedgerRows(*db).at("catalog_versions").size(), 2u);
}

// A crash while the ledger was being built leaves ledger.migrating: the next start builds it
// again from scratch.
TEST(SqliteMigrationTest, ALeftoverOfAnInterruptedBuildIsRedoneFromScratch) {
  TempDir dir("migration_test");
  FillSqlite(dir.path(), 50);
  const std::map<std::string, Rows> before = SqliteTables(dir.path() + "/meterd.db");
  {
    // A half-built ledger holding a row that is not in the SQLite file.
    auto half = LedgerDb::Open(dir.path() + "/ledger.migrating", ledger::OpenMode::kReadWrite);
    ASSERT_TRUE(half.ok()) << half.status().ToString();
    ASSERT_TRUE((*half)
                    ->db()
                    ->Put(rocksdb::WriteOptions(), (*half)->family(ledger::kEntitlements),
                          ledger::PairKey("ghost", "prod"), ledger::FixedValue(1))
                    .ok());
  }
  std::ofstream(dir.path() + "/ledger.migrating/junk") << "junk";
  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path()).ok());
  auto db = OpenLedger(dir.path());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(LedgerRows(*db), before);
  EXPECT_FALSE(fs::exists(dir.path() + "/ledger/junk"));
}

// A crash after the ledger was renamed into place and before the SQLite file was: the next start
// only finishes the renames.
TEST(SqliteMigrationTest, AnInterruptedRenameIsFinished) {
  TempDir dir("migration_test");
  FillSqlite(dir.path(), 20);
  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path()).ok());
  fs::rename(dir.path() + "/meterd.db.migrated", dir.path() + "/meterd.db");
  std::string summary;
  Status st = MigrateSqliteLayoutIfPresent(dir.path(), &summary);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_NE(summary.find("finished"), std::string::npos) << summary;
  EXPECT_FALSE(fs::exists(dir.path() + "/meterd.db"));
  EXPECT_TRUE(fs::exists(dir.path() + "/meterd.db.migrated"));
  auto db = OpenLedger(dir.path());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(MetaFixed(*db, ledger::kMetaRows), 20);
  db.reset();

  // Interrupted between the -wal's rename and the main file's: the main file joins its WAL.
  fs::rename(dir.path() + "/meterd.db.migrated", dir.path() + "/meterd.db");
  std::ofstream(dir.path() + "/meterd.db.migrated-wal") << "";
  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path()).ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/meterd.db"));
  EXPECT_TRUE(fs::exists(dir.path() + "/meterd.db.migrated"));
  EXPECT_FALSE(fs::exists(dir.path() + "/meterd.db.migrated.2"));
}

// A SQLite file next to a ledger that was not migrated from it: refused, both left alone; a file
// kept from an earlier migration is never overwritten.
TEST(SqliteMigrationTest, TwoStoresAreRefusedAndKeptFilesNeverOverwritten) {
  TempDir dir("migration_test");
  FillSqlite(dir.path(), 10);
  { ASSERT_NE(OpenLedger(dir.path()), nullptr); }  // a fresh, empty ledger
  Status st = MigrateSqliteLayoutIfPresent(dir.path());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_TRUE(fs::exists(dir.path() + "/meterd.db"));

  fs::remove_all(dir.path() + "/ledger");
  std::ofstream(dir.path() + "/meterd.db.migrated") << "an older migration's file";
  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path()).ok());
  EXPECT_TRUE(fs::exists(dir.path() + "/meterd.db.migrated.2"));
  std::ifstream older(dir.path() + "/meterd.db.migrated");
  std::string text;
  std::getline(older, text);
  EXPECT_EQ(text, "an older migration's file");
}

// A schema-1 file (no rollups, no query indexes): the SQLite backend upgrades it and backfills
// its rollups first, so the ledger gets the same totals a schema-2 file has.
TEST(SqliteMigrationTest, ASchemaOneFileIsUpgradedAndItsRollupsBackfilled) {
  TempDir dir("migration_test");
  FillSqlite(dir.path(), 300);
  const std::string db_path = dir.path() + "/meterd.db";
  const std::map<std::string, Rows> before = SqliteTables(db_path);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE usage_rollups; DROP INDEX usage_records_by_time; "
                         "DROP INDEX usage_records_by_account; "
                         "DELETE FROM schema_version; INSERT INTO schema_version VALUES (1);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);

  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path()).ok());
  auto migrated = OpenLedger(dir.path());
  ASSERT_NE(migrated, nullptr);
  EXPECT_EQ(LedgerRows(*migrated), before);
  const std::string from = MetaText(*migrated, ledger::kMetaMigratedFrom);
  EXPECT_EQ(from.rfind("sqlite schema 1, 300 rows, ", 0), 0u) << from;
}

// The round trip: SQLite -> ledger -> `meterd dump` gives back every table as it was.
TEST(SqliteMigrationTest, DumpOfAMigratedLedgerGivesBackTheSqliteTables) {
  TempDir dir("migration_test");
  FillSqlite(dir.path(), 500);
  const std::map<std::string, Rows> before = SqliteTables(dir.path() + "/meterd.db");
  ASSERT_TRUE(MigrateSqliteLayoutIfPresent(dir.path()).ok());
  std::string report;
  Status st = DumpLedgerToSqlite(dir.path(), dir.path() + "/dump.db", true, &report);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(report, "ok");
  EXPECT_EQ(SqliteTables(dir.path() + "/dump.db"), before);
}

}  // namespace
}  // namespace meterd::store
