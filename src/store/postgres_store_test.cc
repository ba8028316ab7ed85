// The PostgreSQL backend against a real server (store/postgres_test_server.h): what one database
// shared by several nodes must guarantee. ServiceTest (metering/service_test.cc) runs every
// business rule on this backend too.
#include "store/postgres_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "store/postgres_test_server.h"
#include "store/store.h"

namespace meterd::store {
namespace {

UsageRow Row(const std::string& dedup_key, const std::string& record_id, int64_t quantity) {
  UsageRow row;
  row.record_id = record_id;
  row.dedup_key = dedup_key;
  row.source = "BatchMeterUsage";
  row.region = "us-east-1";
  row.product_code = "prod\"uct\\1";  // quotes and backslashes travel inside arrays
  row.seller_account = "111122223333";
  row.customer_account = "444455556666";
  row.dimension = "api_calls";
  row.usage_hour_ms = 3600000;
  row.timestamp_ms = 3600001;
  row.quantity = quantity;
  row.allocations_json = "[{\"k\": \"v\"}]";
  row.request_id = "req";
  row.received_ms = 3600002;
  return row;
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    auto server = PostgresTestServer::Shared(&why);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    if (*server == nullptr) GTEST_SKIP() << why;
    server_ = *server;
    auto url = server_->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status().ToString();
    url_ = *url;
  }

  std::unique_ptr<Store> Open() {
    auto store = OpenStore(url_, StoreOptions());
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  // A query of the test itself, outside meterd: each row as tab-separated text.
  std::vector<std::string> Query(const std::string& sql) {
    std::vector<std::string> rows;
    PGconn* conn = PQconnectdb(url_.c_str());
    PGresult* r = PQexec(conn, sql.c_str());
    EXPECT_TRUE(PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
        << PQresultErrorMessage(r);
    for (int i = 0; i < PQntuples(r); ++i) {
      std::string row;
      for (int c = 0; c < PQnfields(r); ++c)
        row += (c ? "\t" : "") + std::string(PQgetvalue(r, i, c));
      rows.push_back(row);
    }
    PQclear(r);
    PQfinish(conn);
    return rows;
  }

  static Result<std::optional<ExistingUsage>> Insert(Store* store, const UsageRow& row) {
    Result<std::optional<ExistingUsage>> answer = std::optional<ExistingUsage>();
    Status st = SubmitAndWait(store, [&](Transaction& txn) -> Status {
      answer = txn.InsertUsageIfAbsent(row);
      return answer.status();
    });
    if (!st.ok()) return st;
    return answer;
  }

  PostgresTestServer* server_ = nullptr;
  std::string url_;
};

TEST_F(PostgresStoreTest, NodesStartingTogetherMigrateOnce) {
  std::vector<std::future<bool>> starts;
  for (int i = 0; i < 6; ++i) {
    starts.push_back(std::async(std::launch::async, [this] { return Open() != nullptr; }));
  }
  for (auto& s : starts) EXPECT_TRUE(s.get());
  EXPECT_EQ(Query("SELECT id, version FROM schema_version"), std::vector<std::string>{"1\t3"});
}

TEST_F(PostgresStoreTest, RefusesASchemaFromANewerMeterd) {
  ASSERT_NE(Open(), nullptr);
  Query("UPDATE schema_version SET version = 99");
  auto store = OpenStore(url_, StoreOptions());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kCorruption);
  EXPECT_NE(store.status().message().find("newer meterd"), std::string::npos);
}

// Schema 3 keeps on the write path only the indexes that decide something or keep a query off a
// whole-table scan: a new database never has the others, and an upgraded one loses them.
TEST_F(PostgresStoreTest, AnUpgradeDropsTheIndexesTheWritePathNoLongerPaysFor) {
  const std::string indexes =
      "SELECT tablename, indexname FROM pg_indexes WHERE tablename IN ('usage_records', "
      "'audit_events') ORDER BY tablename, indexname";
  const std::vector<std::string> kept = {
      "audit_events\taudit_events_by_time", "audit_events\taudit_events_pkey",
      "usage_records\tusage_records_by_account", "usage_records\tusage_records_by_time",
      "usage_records\tusage_records_dedup_key_key"};
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(Query(indexes), kept);
    // Some events to look up after the upgrade: newest is event-9, failures every third one.
    ASSERT_TRUE(SubmitAndWait(store.get(), [](Transaction& txn) -> Status {
                  for (int i = 0; i < 10; ++i) {
                    const std::string n = std::to_string(i);
                    METERD_RETURN_IF_ERROR(txn.PutAuditEvent(AuditEventRow{
                        "event-" + n, 1000 + 10 * i, i < 8 ? "metering" : "admin",
                        i % 2 == 0 ? "MeterUsage" : "BatchMeterUsage",
                        "acct-" + std::to_string(i % 3), "AKID" + std::to_string(i % 4),
                        i % 3 == 0 ? "ThrottlingException" : "", "{\"i\":" + n + "}"}));
                  }
                  return txn.InsertUsageIfAbsent(Row("key-1", "rec-1", 5)).status();
                }).ok());
  }
  // Make it a schema-2 database: the record-id key and the four per-filter audit indexes.
  Query(
      "ALTER TABLE usage_records ADD PRIMARY KEY (record_id); "
      "CREATE INDEX audit_events_by_name ON audit_events (event_name, event_time_ms, event_id); "
      "CREATE INDEX audit_events_by_account ON audit_events (account_id, event_time_ms, event_id); "
      "CREATE INDEX audit_events_by_access_key "
      "ON audit_events (access_key_id, event_time_ms, event_id); "
      "CREATE INDEX audit_events_by_error ON audit_events (error_code, event_time_ms, event_id); "
      "UPDATE schema_version SET version = 2");
  ASSERT_EQ(Query(indexes).size(), kept.size() + 5);

  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Query("SELECT version FROM schema_version"), std::vector<std::string>{"3"});
  EXPECT_EQ(Query(indexes), kept);
  EXPECT_EQ(Query("SELECT count(*) FROM pg_constraint WHERE conrelid = 'usage_records'::regclass "
                  "AND contype = 'p'"),
            std::vector<std::string>{"0"});
  // Dedup still answers the first record; the ledger's rows are all there.
  auto again = Insert(store.get(), Row("key-1", "rec-2", 7));
  ASSERT_TRUE(again.ok() && again->has_value()) << again.status().ToString();
  EXPECT_EQ((*again)->record_id, "rec-1");
  EXPECT_EQ(*store->CountUsageRows(), 1);

  // Every filter, served by walking the time index newest first, finds exactly its events.
  auto ids = [&](AuditQuery q) {
    std::vector<std::string> out;
    for (;;) {
      auto page = store->audit_reader()->LookupAuditEvents(q);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) return out;
      for (const auto& e : page->events) out.push_back(e.event_id);
      if (!page->more) return out;
      q.after = AuditPosition{page->events.back().event_time_ms, page->events.back().event_id};
    }
  };
  using Ids = std::vector<std::string>;
  AuditQuery q;
  q.limit = 2;  // pages of two: the keyset cursor walks the same index
  EXPECT_EQ(ids(q), (Ids{"event-9", "event-8", "event-7", "event-6", "event-5", "event-4",
                         "event-3", "event-2", "event-1", "event-0"}));
  AuditQuery by_name = q;
  by_name.event_name = "BatchMeterUsage";
  EXPECT_EQ(ids(by_name), (Ids{"event-9", "event-7", "event-5", "event-3", "event-1"}));
  AuditQuery by_source = q;
  by_source.event_source = "admin";
  EXPECT_EQ(ids(by_source), (Ids{"event-9", "event-8"}));
  AuditQuery by_account = q;
  by_account.account_id = "acct-1";
  EXPECT_EQ(ids(by_account), (Ids{"event-7", "event-4", "event-1"}));
  AuditQuery by_key = q;
  by_key.access_key_id = "AKID2";
  EXPECT_EQ(ids(by_key), (Ids{"event-6", "event-2"}));
  AuditQuery by_error = q;
  by_error.error_code = "ThrottlingException";
  EXPECT_EQ(ids(by_error), (Ids{"event-9", "event-6", "event-3", "event-0"}));
  AuditQuery errors = q;
  errors.errors_only = true;
  errors.from_ms = 1030;  // inclusive
  errors.to_ms = 1090;    // exclusive
  EXPECT_EQ(ids(errors), (Ids{"event-6", "event-3"}));
  AuditQuery combined = q;
  combined.event_name = "MeterUsage";
  combined.account_id = "acct-0";
  EXPECT_EQ(ids(combined), (Ids{"event-6", "event-0"}));
  // The time index serves a filtered lookup's order (a backward scan, no sort). On ten rows the
  // planner would rather sort a sequential scan, so that is ruled out here.
  const std::vector<std::string> plan = Query(
      "SET enable_seqscan = off; EXPLAIN SELECT event_id FROM audit_events "
      "WHERE event_name = 'MeterUsage' ORDER BY event_time_ms DESC, event_id DESC LIMIT 101");
  std::string text;
  for (const auto& line : plan) text += line + "\n";
  EXPECT_NE(text.find("audit_events_by_time"), std::string::npos) << text;
}

TEST_F(PostgresStoreTest, KeepsEveryFieldAndAnswersExistingKeys) {
  auto store = Open();
  UsageRow row = Row("key-1", "rec-1", 5);
  auto first = Insert(store.get(), row);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(first->has_value());
  auto again = Insert(store.get(), Row("key-1", "rec-2", 7));
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ((*again)->record_id, "rec-1");
  EXPECT_EQ((*again)->quantity, 5);
  EXPECT_EQ(Query("SELECT record_id, product_code, quantity, allocations FROM usage_records"),
            std::vector<std::string>{"rec-1\tprod\"uct\\1\t5\t[{\"k\": \"v\"}]"});
  EXPECT_EQ(*store->CountUsageRows(), 1);
}

TEST_F(PostgresStoreTest, AGroupReadsItsOwnWritesAndDeclaredKeys) {
  auto store = Open();
  ASSERT_TRUE(Insert(store.get(), Row("present", "rec-0", 1)).ok());
  std::promise<Status> done;
  WriteUnit unit;
  unit.reads.dedup_keys = {"present", "absent"};
  unit.reads.client_tokens = {{"w", "t"}};
  unit.reads.entitlements = {{"w", "p"}};
  unit.apply = [](Transaction& txn) -> Status {
    auto present = txn.FindUsage("present");
    auto absent = txn.InsertUsageIfAbsent(Row("absent", "rec-1", 2));
    auto twice = txn.InsertUsageIfAbsent(Row("absent", "rec-2", 3));  // sees rec-1
    auto token = txn.FindClientToken("w", "t");
    EXPECT_TRUE(present.ok() && present->has_value() && (*present)->record_id == "rec-0");
    EXPECT_TRUE(absent.ok() && !absent->has_value());
    EXPECT_TRUE(twice.ok() && twice->has_value() && (*twice)->record_id == "rec-1");
    EXPECT_TRUE(token.ok() && !token->has_value());
    METERD_RETURN_IF_ERROR(txn.PutClientToken(ClientTokenEntry{"w", "t", "fp", "rec-1", 9}));
    token = txn.FindClientToken("w", "t");
    EXPECT_TRUE(token.ok() && token->has_value() && (*token)->fingerprint == "fp");
    EXPECT_FALSE(*txn.HasEntitlement("w", "p"));
    METERD_RETURN_IF_ERROR(txn.PutEntitlement("w", "p", 9));
    METERD_RETURN_IF_ERROR(txn.PutEntitlement("w", "p", 10));
    EXPECT_TRUE(*txn.HasEntitlement("w", "p"));
    METERD_RETURN_IF_ERROR(txn.OpenRunIfAbsent(MeteredRun{"w", "p", 9}));
    auto runs = txn.ListOpenRuns();  // inside the transaction: sees the run just opened
    EXPECT_TRUE(runs.ok() && runs->size() == 1);
    METERD_RETURN_IF_ERROR(txn.StopRun("w", "p", 11));
    METERD_RETURN_IF_ERROR(
        txn.PutRegistrationToken(RegistrationTokenRow{"tok", "s", "p", "c", "", 5}));
    METERD_RETURN_IF_ERROR(
        txn.PutRegistrationToken(RegistrationTokenRow{"tok", "s", "p", "c", "", 6}));
    auto found = txn.FindRegistrationToken("tok");
    EXPECT_TRUE(found.ok() && found->has_value() && (*found)->issued_ms == 5);
    return Status::Ok();
  };
  unit.done = [&done](const Status& st) { done.set_value(st); };
  store->Submit(std::move(unit));
  ASSERT_TRUE(done.get_future().get().ok());
  EXPECT_EQ(*store->CountUsageRows(), 2);
  EXPECT_EQ(Query("SELECT workload_id, stopped_ms FROM metered_runs"),
            std::vector<std::string>{"w\t11"});
  EXPECT_EQ(Query("SELECT first_call_ms FROM workload_entitlements"),
            std::vector<std::string>{"9"});
  EXPECT_EQ(Query("SELECT issued_ms FROM registration_tokens"), std::vector<std::string>{"5"});
  Status st = SubmitAndWait(store.get(), [](Transaction& txn) -> Status {
    EXPECT_TRUE(*txn.DeleteRegistrationToken("tok"));
    EXPECT_FALSE(txn.FindRegistrationToken("tok")->has_value());
    EXPECT_FALSE(*txn.DeleteRegistrationToken("tok"));
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
}

// Node A decides a key is absent; node B stores it before A commits. A's commit must not bill
// it again: the group runs again and answers with B's row, as one node would have. Nothing of
// A's failed attempt is written: neither its rollup deltas nor its audit events.
TEST_F(PostgresStoreTest, ALostRaceRunsTheGroupAgainAndSeesTheWinner) {
  auto node_a = Open();
  auto node_b = Open();
  std::promise<void> a_decided, b_committed;
  std::atomic<int> runs{0};
  std::optional<ExistingUsage> a_answer;
  std::promise<Status> a_done;
  WriteUnit unit;
  unit.reads.dedup_keys = {"contended"};
  unit.apply = [&](Transaction& txn) -> Status {
    auto existing = txn.InsertUsageIfAbsent(Row("contended", "rec-a", 5));
    if (!existing.ok()) return existing.status();
    a_answer = *existing;
    AuditEventRow event{
        "event-a-run-" + std::to_string(runs.load() + 1), 1, "src", "name", "", "", "", "{}"};
    METERD_RETURN_IF_ERROR(txn.PutAuditEvent(event));
    if (runs.fetch_add(1) == 0) {
      a_decided.set_value();
      b_committed.get_future().wait();
    }
    return Status::Ok();
  };
  unit.done = [&](const Status& st) { a_done.set_value(st); };
  node_a->Submit(std::move(unit));
  a_decided.get_future().wait();
  auto b = Insert(node_b.get(), Row("contended", "rec-b", 5));
  ASSERT_TRUE(b.ok() && !b->has_value());
  b_committed.set_value();
  ASSERT_TRUE(a_done.get_future().get().ok());
  EXPECT_EQ(runs.load(), 2);
  ASSERT_TRUE(a_answer.has_value());
  EXPECT_EQ(a_answer->record_id, "rec-b");
  EXPECT_EQ(Query("SELECT record_id FROM usage_records"), std::vector<std::string>{"rec-b"});
  EXPECT_EQ(Query("SELECT event_id FROM audit_events"), std::vector<std::string>{"event-a-run-2"});
  // B's row counted once per granularity (hour, day, month); A added nothing.
  EXPECT_EQ(Query("SELECT granularity, quantity, records FROM usage_rollups WHERE tag_key = '' "
                  "ORDER BY granularity"),
            (std::vector<std::string>{"0\t5\t1", "1\t5\t1", "2\t5\t1"}));
}

// Rollup deltas of many groups and both nodes add up, each key in one upsert row per group
// (a key named twice in one multi-row upsert would fail it); audit events of a group are
// written with it, a repeated event id once; pruning deletes the oldest first and counts them.
TEST_F(PostgresStoreTest, RollupsAndAuditEventsTravelWithTheGroup) {
  auto node_a = Open();
  auto node_b = Open();
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      Store* store = (w % 2 == 0 ? node_a : node_b).get();
      for (int i = 0; i < 25; ++i) {
        Status st = SubmitAndWait(store, [w, i](Transaction& txn) -> Status {
          for (int k = 0; k < 4; ++k) {  // four rows of one rollup key in one group
            const std::string key =
                std::to_string(w) + "-" + std::to_string(i) + "-" + std::to_string(k);
            auto inserted = txn.InsertUsageIfAbsent(Row("key-" + key, "rec-" + key, 2));
            if (!inserted.ok()) return inserted.status();
          }
          AuditEventRow event{"event-" + std::to_string(w) + "-" + std::to_string(i),
                              1000 * i + w,
                              "src",
                              "name",
                              "",
                              "",
                              "",
                              "{}"};
          METERD_RETURN_IF_ERROR(txn.PutAuditEvent(event));
          return txn.PutAuditEvent(event);
        });
        EXPECT_TRUE(st.ok()) << st.ToString();
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(Query("SELECT granularity, quantity, records FROM usage_rollups WHERE tag_key = '' "
                  "ORDER BY granularity"),
            (std::vector<std::string>{"0\t800\t400", "1\t800\t400", "2\t800\t400"}));
  EXPECT_EQ(Query("SELECT count(*), count(DISTINCT event_id) FROM audit_events"),
            std::vector<std::string>{"100\t100"});
  // Every seq is distinct (the keyset order of reports).
  EXPECT_EQ(Query("SELECT count(DISTINCT seq) FROM usage_records"),
            std::vector<std::string>{"400"});

  int64_t deleted = -1;
  ASSERT_TRUE(SubmitAndWait(node_a.get(), [&](Transaction& txn) -> Status {
                // A buffered event of the same group is seen by the delete.
                METERD_RETURN_IF_ERROR(
                    txn.PutAuditEvent(AuditEventRow{"event-old", -5, "s", "n", "", "", "", "{}"}));
                auto n = txn.DeleteAuditEventsBefore(2000, 3);
                if (!n.ok()) return n.status();
                deleted = *n;
                return Status::Ok();
              }).ok());
  EXPECT_EQ(deleted, 3);
  EXPECT_EQ(Query("SELECT event_id FROM audit_events WHERE event_time_ms < 2000 ORDER BY "
                  "event_time_ms"),
            (std::vector<std::string>{"event-2-0", "event-3-0", "event-0-1", "event-1-1",
                                      "event-2-1", "event-3-1"}));
  auto page = node_b->audit_reader()->LookupAuditEvents(AuditQuery{});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->events.size(), 98u);
  EXPECT_FALSE(page->more);
  EXPECT_EQ(page->events.front().event_id, "event-3-24");
}

TEST_F(PostgresStoreTest, TwoNodesChangingTheCatalogAtOnceHaveOneWinner) {
  auto node_a = Open();
  auto node_b = Open();
  std::promise<void> a_read, b_committed;
  std::atomic<int> runs{0};
  bool a_refused = false;
  std::promise<Status> a_done;
  WriteUnit unit;
  unit.apply = [&](Transaction& txn) -> Status {
    auto latest = txn.LatestCatalog();
    if (!latest.ok()) return latest.status();
    a_refused = latest->has_value();
    if (runs.fetch_add(1) == 0) {
      a_read.set_value();
      b_committed.get_future().wait();
    }
    return a_refused ? Status::Ok() : txn.PutCatalog(CatalogVersion{1, "{\"a\":1}", 1, "a"});
  };
  unit.done = [&](const Status& st) { a_done.set_value(st); };
  node_a->Submit(std::move(unit));
  a_read.get_future().wait();
  ASSERT_TRUE(SubmitAndWait(node_b.get(), [](Transaction& txn) {
                return txn.PutCatalog(CatalogVersion{1, "{\"b\":1}", 1, "b"});
              }).ok());
  b_committed.set_value();
  ASSERT_TRUE(a_done.get_future().get().ok());
  EXPECT_EQ(runs.load(), 2);
  EXPECT_TRUE(a_refused);
  EXPECT_EQ(Query("SELECT version, change FROM catalog_versions"),
            std::vector<std::string>{"1\tb"});
}

// Many clients of two nodes send identical and conflicting rows for a few keys at once: every
// key is stored once, and every answer agrees with what was stored.
TEST_F(PostgresStoreTest, TwoNodesBillEveryKeyOnce) {
  auto node_a = Open();
  auto node_b = Open();
  struct Answer {
    std::string key;
    std::string sent_record;
    int64_t sent_quantity;
    std::optional<ExistingUsage> existing;
  };
  std::mutex mu;
  std::vector<Answer> answers;
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(c);
      Store* store = (c % 2 == 0 ? node_a : node_b).get();
      for (int i = 0; i < 60; ++i) {
        std::vector<std::promise<Answer>> promises(5);
        for (int j = 0; j < 5; ++j) {
          Answer a{"key-" + std::to_string(rng() % 40),
                   "rec-" + std::to_string(c) + "-" + std::to_string(i) + "-" + std::to_string(j),
                   static_cast<int64_t>(1 + rng() % 2), std::nullopt};
          auto answer = std::make_shared<Answer>(a);
          WriteUnit unit;
          unit.reads.dedup_keys = {a.key};
          unit.apply = [answer](Transaction& txn) -> Status {
            auto existing = txn.InsertUsageIfAbsent(
                Row(answer->key, answer->sent_record, answer->sent_quantity));
            if (!existing.ok()) return existing.status();
            answer->existing = *existing;
            return Status::Ok();
          };
          unit.done = [answer, p = &promises[j]](const Status& st) {
            EXPECT_TRUE(st.ok()) << st.ToString();
            p->set_value(*answer);
          };
          store->Submit(std::move(unit));
        }
        for (auto& p : promises) {
          Answer a = p.get_future().get();
          std::lock_guard<std::mutex> lock(mu);
          answers.push_back(std::move(a));
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  std::map<std::string, std::pair<std::string, int64_t>> stored;
  for (const std::string& line :
       Query("SELECT dedup_key, record_id, quantity FROM usage_records")) {
    auto t1 = line.find('\t'), t2 = line.rfind('\t');
    ASSERT_TRUE(stored
                    .emplace(line.substr(0, t1), std::make_pair(line.substr(t1 + 1, t2 - t1 - 1),
                                                                std::stoll(line.substr(t2 + 1))))
                    .second);
  }
  std::map<std::string, int> inserted;
  for (const Answer& a : answers) {
    ASSERT_TRUE(stored.count(a.key)) << a.key;
    const auto& [record, quantity] = stored[a.key];
    if (!a.existing.has_value()) {
      ++inserted[a.key];
      EXPECT_EQ(record, a.sent_record);
      EXPECT_EQ(quantity, a.sent_quantity);
    } else {
      EXPECT_EQ(a.existing->record_id, record);
      EXPECT_EQ(a.existing->quantity, quantity);
    }
  }
  EXPECT_EQ(inserted.size(), stored.size());
  for (const auto& [key, n] : inserted) EXPECT_EQ(n, 1) << key;
}

TEST_F(PostgresStoreTest, FailsWhileTheDatabaseIsDownAndRecoversAfter) {
  auto store = Open();
  ASSERT_TRUE(Insert(store.get(), Row("before", "rec-1", 1)).ok());
  // A restart between two groups is not even noticed: the stale connection is replaced.
  ASSERT_TRUE(server_->Restart().ok());
  auto after_restart = Insert(store.get(), Row("after-restart", "rec-2", 1));
  EXPECT_TRUE(after_restart.ok()) << after_restart.status().ToString();
  server_->Stop();
  auto down = Insert(store.get(), Row("down", "rec-3", 1));
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kIoError);  // InternalServiceErrorException
  EXPECT_FALSE(store->CountUsageRows().ok());
  ASSERT_TRUE(server_->Restart().ok());
  auto recovered = Insert(store.get(), Row("down", "rec-3", 1));
  EXPECT_TRUE(recovered.ok()) << recovered.status().ToString();
  EXPECT_EQ(*store->CountUsageRows(), 3);
}

}  // namespace
}  // namespace meterd::store
