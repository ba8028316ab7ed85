// Usage reports: rollups kept at write time against sums over the ledger (SQLite, memory and
// PostgreSQL),
// the upgrade backfill, cursors, CSV quoting, parameters and billed amounts.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "common/temp_dir.h"
#include "common/time_util.h"
#include "reports/report.h"
#include "store/postgres_test_server.h"
#include "store/store.h"

namespace meterd::reports {
namespace {

using store::Granularity;
using store::UsageRow;

const int64_t kStart = *ParseIso8601("2026-10-30T00:00:00Z");

UsageRow Row(int64_t i, std::mt19937_64* rng) {
  UsageRow r;
  r.record_id = "rec-" + std::to_string(i);
  r.dedup_key = "key-" + std::to_string(i);
  r.source = (*rng)() % 10 == 0 ? "RegisterUsage" : "BatchMeterUsage";
  r.region = "us-east-1";
  r.product_code = (*rng)() % 2 ? "prodA" : "prodB";
  r.customer_account = std::to_string(100000000000 + static_cast<int64_t>((*rng)() % 5));
  r.customer_identifier = "cust-" + r.customer_account;
  r.dimension = (*rng)() % 2 ? "api_calls" : "storage";
  // Four days across a month boundary.
  r.timestamp_ms = kStart + static_cast<int64_t>((*rng)() % (4 * kMillisPerDay));
  r.usage_hour_ms = FloorToHour(r.timestamp_ms);
  r.quantity = static_cast<int64_t>((*rng)() % 1000);
  if ((*rng)() % 4 == 0) {
    int64_t a = r.quantity / 2;
    r.allocations_json = "[{\"AllocatedUsageQuantity\":" + std::to_string(a) +
                         ",\"Tags\":[{\"Key\":\"team\",\"Value\":\"t" +
                         std::to_string((*rng)() % 3) +
                         "\"},{\"Key\":\"env\",\"Value\":\"prod\"}]},{\"AllocatedUsageQuantity\":" +
                         std::to_string(r.quantity - a) + "}]";
  }
  r.received_ms = r.timestamp_ms;
  return r;
}

// Writes `n` random rows (some twice: the second insert is a duplicate and must add nothing),
// in units of up to 50, some units in failed groups (rolled back: must add nothing either).
// Returns the rows that are in the ledger.
std::vector<UsageRow> Fill(store::Store* s, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<UsageRow> kept;
  for (int i = 0; i < n;) {
    std::vector<UsageRow> unit;
    for (int k = 0; k < 50 && i < n; ++k, ++i) unit.push_back(Row(i, &rng));
    if (!kept.empty()) unit.push_back(kept[rng() % kept.size()]);  // a duplicate
    const bool fail = rng() % 7 == 0;
    Status st = store::SubmitAndWait(s, [&](store::Transaction& txn) -> Status {
      for (const auto& r : unit) {
        auto existing = txn.InsertUsageIfAbsent(r);
        if (!existing.ok()) return existing.status();
      }
      return fail ? Status(StatusCode::kIoError, "injected") : Status::Ok();
    });
    EXPECT_EQ(st.ok(), !fail);
    if (fail) continue;
    for (const auto& r : unit) {
      bool seen = false;
      for (const auto& k : kept) seen = seen || k.dedup_key == r.dedup_key;
      if (!seen) kept.push_back(r);
    }
  }
  return kept;
}

// Expected rollups, computed from the ledger rows the slow way.
std::map<store::RollupKey, std::pair<int64_t, int64_t>> Expected(
    const std::vector<UsageRow>& rows) {
  std::map<store::RollupKey, std::pair<int64_t, int64_t>> out;
  for (const auto& r : rows) {
    for (Granularity g : {Granularity::kHour, Granularity::kDay, Granularity::kMonth}) {
      store::RollupKey k;
      k.granularity = g;
      k.period_ms = store::PeriodStart(g, r.timestamp_ms);
      k.product_code = r.product_code;
      k.customer_account = r.customer_account;
      k.dimension = r.dimension;
      k.unit = r.source == "RegisterUsage" ? store::kUnitSecond : "";
      out[k].first += r.quantity;
      out[k].second += 1;
      if (!r.allocations_json.empty()) {
        // Row() tags the first allocation only, with team and env.
        int64_t a = r.quantity / 2;
        const size_t v = r.allocations_json.find("\"Value\":\"t");
        const std::string team = r.allocations_json.substr(v + 9, 2);
        for (auto [key, value] :
             {std::pair<std::string, std::string>{"team", team}, {"env", "prod"}}) {
          store::RollupKey t = k;
          t.tag_key = key;
          t.tag_value = value;
          out[t].first += a;
          out[t].second += 1;
        }
      }
    }
  }
  return out;
}

std::map<store::RollupKey, std::pair<int64_t, int64_t>> Actual(UsageReader* reader) {
  std::map<store::RollupKey, std::pair<int64_t, int64_t>> out;
  for (Granularity g : {Granularity::kHour, Granularity::kDay, Granularity::kMonth}) {
    for (std::string tag : {"", "team", "env"}) {
      RollupQuery q;
      q.granularity = g;
      q.from_ms = INT64_MIN;
      q.to_ms = INT64_MAX;
      q.tag_key = tag;
      auto rows = reader->ReadRollups(q);
      EXPECT_TRUE(rows.ok()) << rows.status().ToString();
      for (const auto& row : *rows) out[row.key] = {row.quantity, row.records};
    }
  }
  return out;
}

class ReportsStoreTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ReportsStoreTest, RollupsEqualTheSumsOfTheLedger) {
  TempDir dir("reports_test");
  store::StoreOptions options;
  options.data_dir = dir.path();
  std::string why;
  auto url = store::PostgresTestServer::StoreUrlFor(GetParam(), &why);
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  if (url->empty()) GTEST_SKIP() << why;
  auto opened = store::OpenStoreWithReader(*url, options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::vector<UsageRow> kept = Fill(opened->store.get(), 1500, 42);
  EXPECT_EQ(*opened->store->CountUsageRows(), static_cast<int64_t>(kept.size()));
  EXPECT_EQ(Actual(opened->reader.get()), Expected(kept));

  // Every ledger row once through the pages, in (timestamp, seq) order.
  std::optional<LedgerPosition> after;
  size_t seen = 0;
  LedgerPosition last{INT64_MIN, 0};
  for (;;) {
    auto page = opened->reader->ListUsage({}, after, 97);
    ASSERT_TRUE(page.ok());
    for (const auto& rec : page->records) {
      EXPECT_TRUE(last < rec.position);
      last = rec.position;
    }
    seen += page->records.size();
    if (!page->more) break;
    after = page->records.back().position;
  }
  EXPECT_EQ(seen, kept.size());

  // Filters agree with UsageFilter::Matches over the rows.
  UsageFilter filter;
  filter.product_code = "prodA";
  filter.customer_account = "100000000002";
  filter.from_ms = kStart + kMillisPerDay;
  filter.to_ms = kStart + 3 * kMillisPerDay;
  auto page = opened->reader->ListUsage(filter, std::nullopt, 1000);
  ASSERT_TRUE(page.ok());
  size_t expected = 0;
  for (const auto& r : kept) expected += filter.Matches(r) ? 1 : 0;
  EXPECT_EQ(page->records.size(), expected);
  EXPECT_GT(expected, 0u);
  for (const auto& rec : page->records) EXPECT_TRUE(filter.Matches(rec.row));
}

INSTANTIATE_TEST_SUITE_P(Backends, ReportsStoreTest,
                         ::testing::Values("embedded", "sqlite", "memory", "postgresql"));

TEST(ReportsMigrationTest, AnUpgradeFromSchemaOneBackfillsTheRollups) {
  TempDir dir("reports_test");
  store::StoreOptions options;
  options.data_dir = dir.path();
  std::vector<UsageRow> kept;
  {
    auto opened = store::OpenStoreWithReader("sqlite", options);
    ASSERT_TRUE(opened.ok());
    kept = Fill(opened->store.get(), 400, 7);
  }
  // Make it a schema-1 database: no rollups, no query indexes.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() + "/meterd.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE usage_rollups; DROP INDEX usage_records_by_time; "
                         "DROP INDEX usage_records_by_account; "
                         "DELETE FROM schema_version; INSERT INTO schema_version VALUES (1);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto reopened = store::OpenStoreWithReader("sqlite", options);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(Actual(reopened->reader.get()), Expected(kept));
}

// PostgreSQL: a database of schema 1 (no seq, rollups or audit table) gains them, with the
// rollups of the rows it held and a seq for each.
TEST(ReportsMigrationTest, AnUpgradeOfAPostgresqlDatabaseBackfillsTheRollups) {
  std::string why;
  auto url = store::PostgresTestServer::StoreUrlFor("postgresql", &why);
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  if (url->empty()) GTEST_SKIP() << why;
  std::vector<UsageRow> kept;
  {
    auto opened = store::OpenStoreWithReader(*url, store::StoreOptions());
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    kept = Fill(opened->store.get(), 400, 7);
  }
  PGconn* conn = PQconnectdb(url->c_str());
  PGresult* r = PQexec(conn,
                       "DROP TABLE usage_rollups; DROP TABLE audit_events; "
                       "ALTER TABLE usage_records DROP COLUMN seq; "  // and its indexes
                       "UPDATE schema_version SET version = 1");
  EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
  auto reopened = store::OpenStoreWithReader(*url, store::StoreOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(Actual(reopened->reader.get()), Expected(kept));
  auto page = reopened->reader->ListUsage({}, std::nullopt, 1000);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->records.size(), kept.size());
  std::set<int64_t> seqs;
  for (const auto& rec : page->records) seqs.insert(rec.position.seq);
  EXPECT_EQ(seqs.size(), kept.size());
  EXPECT_TRUE(reopened->store->audit_reader()->LookupAuditEvents({}).ok());
}

TEST(ReportsTest, CursorsRoundTripAndRefuseForgeries) {
  LedgerPosition p{1793491200123, 42};
  auto back = DecodeCursor(EncodeCursor(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->timestamp_ms, p.timestamp_ms);
  EXPECT_EQ(back->seq, p.seq);
  for (const char* bad : {"", "abc", "MToxMjM", "Mjox"}) {
    EXPECT_EQ(DecodeCursor(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ReportsTest, CsvFieldsAreQuotedAsRfc4180Says) {
  auto field = [](std::string_view f) {
    std::string out;
    AppendCsvField(&out, f);
    return out;
  };
  EXPECT_EQ(field("plain"), "plain");
  EXPECT_EQ(field(""), "");
  EXPECT_EQ(field("a,b"), "\"a,b\"");
  EXPECT_EQ(field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(field("cr\r"), "\"cr\r\"");
  EXPECT_EQ(field(" padded"), "\" padded\"");
  std::string line;
  AppendCsvLine(&line, {"a", "b,c", ""});
  EXPECT_EQ(line, "a,\"b,c\",\r\n");
}

TEST(ReportsTest, ParametersAreCheckedNotGuessed) {
  EXPECT_TRUE(ParseUsageListRequest({{"limit", "1000"}}).ok());
  for (Params bad : std::vector<Params>{{{"limit", "0"}},
                                        {{"limit", "1001"}},
                                        {{"limit", "ten"}},
                                        {{"from", "yesterday"}},
                                        {{"status", "DuplicateRecord"}},
                                        {{"cursor", "zzz"}},
                                        {{"unknown", "1"}}}) {
    EXPECT_EQ(ParseUsageListRequest(bad).status().code(), StatusCode::kInvalidArgument);
  }
  auto report = ParseReportRequest({{"granularity", "month"}, {"groupBy", "product,tag:team"}});
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->by_product);
  EXPECT_FALSE(report->by_customer);
  EXPECT_EQ(report->query.tag_key, "team");
  for (Params bad :
       std::vector<Params>{{{"granularity", "week"}},
                           {{"groupBy", "product,product"}},
                           {{"groupBy", "tag:a,tag:b"}},
                           {{"groupBy", "region"}},
                           {{"from", "2026-11-01T00:00:00Z"}, {"to", "2026-10-01T00:00:00Z"}}}) {
    EXPECT_EQ(ParseReportRequest(bad).status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(ReportsTest, AmountsAreExactAndGroupsAddUp) {
  auto catalog = catalog::Catalog::FromJson(
      R"({"accounts":[{"id":"111122223333","name":"s","roles":["seller"]}],
          "products":[{"code":"prodA","seller":"111122223333","kind":"saas",
            "integration":"legacy","dimensions":[{"name":"api_calls","pricePerUnit":0.1},
            {"name":"storage","pricePerUnit":1.5e-2}]},
           {"code":"prodB","seller":"111122223333","kind":"saas",
            "integration":"legacy","dimensions":[{"name":"api_calls"},{"name":"storage"}]}]})",
      kStart);
  ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
  EXPECT_EQ(BilledAmount(**catalog, "prodA", "api_calls", "", 3)->ToString(), "0.3");
  EXPECT_EQ(BilledAmount(**catalog, "prodA", "storage", "", 7)->ToString(), "0.105");
  // Task metering: seconds of an hourly price, rounded to 6 more digits.
  EXPECT_EQ(BilledAmount(**catalog, "prodA", "api_calls", store::kUnitSecond, 60)->ToString(),
            "0.0016667");
  EXPECT_FALSE(BilledAmount(**catalog, "prodB", "api_calls", "", 3).has_value());

  store::StoreOptions options;
  auto opened = store::OpenStoreWithReader("memory", options);
  ASSERT_TRUE(opened.ok());
  std::vector<UsageRow> kept = Fill(opened->store.get(), 600, 3);
  auto request =
      ParseReportRequest({{"granularity", "month"}, {"groupBy", "product"}, {"product", "prodA"}});
  ASSERT_TRUE(request.ok());
  auto report = BuildReport(opened->reader.get(), **catalog, *request);
  ASSERT_TRUE(report.ok());
  // Per record, exactly, in units of the dimensions: the same as the rows' amounts.
  Decimal expected_amount = Decimal::FromInt(0);
  int64_t expected_quantity = 0;
  for (const auto& r : kept) {
    if (r.product_code != "prodA" || r.source == "RegisterUsage") continue;
    expected_quantity += r.quantity;
    expected_amount =
        *expected_amount.Plus(*BilledAmount(**catalog, "prodA", r.dimension, "", r.quantity));
  }
  Decimal amount = Decimal::FromInt(0);
  int64_t quantity = 0;
  for (const auto& row : report->rows) {
    ASSERT_TRUE(row.amount.has_value());
    EXPECT_EQ(row.product_code, "prodA");
    EXPECT_EQ(row.customer_account, "");  // not grouped by customer
    if (!row.unit.empty()) continue;
    quantity += row.quantity;
    amount = *amount.Plus(*row.amount);
  }
  EXPECT_EQ(quantity, expected_quantity);
  EXPECT_EQ(report->total_quantity, expected_quantity);
  EXPECT_EQ(amount.ToString(), expected_amount.ToString());
  ASSERT_TRUE(report->total_amount.has_value());
  std::string json = ReportJson(*report, 3);
  EXPECT_NE(json.find("\"catalogVersion\":3"), std::string::npos);
}

}  // namespace
}  // namespace meterd::reports
