// UsageReader on SQLite: a small pool of read-only connections of its own (WAL lets them read
// while the writer writes), so that reports never use nor wait for the writer's connection.
#include <sqlite3.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "store/usage_reader.h"

namespace meterd::store {

namespace {

constexpr size_t kMaxConnections = 4;

Status ReadError(sqlite3* db, const std::string& what) {
  return Status(StatusCode::kIoError, "sqlite (read): " + what + ": " + sqlite3_errmsg(db));
}

// One query on a borrowed connection: prepared per call (the SQL depends on the filters; preparing
// costs microseconds), finalized on destruction.
class Query {
 public:
  Query(sqlite3* db, const std::string& sql) {
    ok_ = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr) ==
          SQLITE_OK;
  }
  ~Query() { sqlite3_finalize(stmt_); }
  bool ok() const { return ok_; }
  void Bind(const std::string& s) {
    sqlite3_bind_text(stmt_, ++next_, s.data(), static_cast<int>(s.size()), SQLITE_STATIC);
  }
  void Bind(int64_t v) { sqlite3_bind_int64(stmt_, ++next_, v); }
  int Step() { return sqlite3_step(stmt_); }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : "";
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  bool ok_ = false;
  int next_ = 0;
};

class SqliteUsageReader final : public UsageReader {
 public:
  explicit SqliteUsageReader(std::string path) : path_(std::move(path)) {}
  ~SqliteUsageReader() override {
    for (sqlite3* db : idle_) sqlite3_close_v2(db);
  }

  Status Check() {
    auto db = Borrow();
    if (!db.ok()) return db.status();
    Return(*db);
    return Status::Ok();
  }

  Result<UsagePage> ListUsage(const UsageFilter& filter, const std::optional<LedgerPosition>& after,
                              size_t limit) override {
    std::string sql =
        "SELECT seq, record_id, dedup_key, source, region, product_code, seller_account, "
        "customer_identifier, customer_account, license_arn, workload_id, dimension, "
        "usage_hour_ms, timestamp_ms, quantity, allocations, request_id, received_ms "
        "FROM usage_records WHERE 1 = 1";
    std::vector<std::string> texts;
    auto text_filter = [&](const std::string& value, const char* column) {
      if (value.empty()) return;
      sql += std::string(" AND ") + column + " = ?";
      texts.push_back(value);
    };
    text_filter(filter.product_code, "product_code");
    text_filter(filter.customer_identifier, "customer_identifier");
    text_filter(filter.customer_account, "customer_account");
    text_filter(filter.license_arn, "license_arn");
    text_filter(filter.workload_id, "workload_id");
    text_filter(filter.dimension, "dimension");
    if (filter.from_ms) sql += " AND timestamp_ms >= ?";
    if (filter.to_ms) sql += " AND timestamp_ms < ?";
    if (after) sql += " AND (timestamp_ms, seq) > (?, ?)";
    sql += " ORDER BY timestamp_ms, seq LIMIT ?";

    auto db = Borrow();
    if (!db.ok()) return db.status();
    UsagePage page;
    Status st;
    {
      Query q(*db, sql);
      if (!q.ok()) {
        st = ReadError(*db, "list usage");
      } else {
        for (const auto& t : texts) q.Bind(t);
        if (filter.from_ms) q.Bind(*filter.from_ms);
        if (filter.to_ms) q.Bind(*filter.to_ms);
        if (after) {
          q.Bind(after->timestamp_ms);
          q.Bind(after->seq);
        }
        q.Bind(static_cast<int64_t>(limit) + 1);
        int rc;
        while ((rc = q.Step()) == SQLITE_ROW) {
          if (page.records.size() == limit) {
            page.more = true;
            break;
          }
          LedgerRecord rec;
          rec.position.seq = q.Int(0);
          store::UsageRow& r = rec.row;
          r.record_id = q.Text(1);
          r.dedup_key = q.Text(2);
          r.source = q.Text(3);
          r.region = q.Text(4);
          r.product_code = q.Text(5);
          r.seller_account = q.Text(6);
          r.customer_identifier = q.Text(7);
          r.customer_account = q.Text(8);
          r.license_arn = q.Text(9);
          r.workload_id = q.Text(10);
          r.dimension = q.Text(11);
          r.usage_hour_ms = q.Int(12);
          r.timestamp_ms = q.Int(13);
          r.quantity = q.Int(14);
          r.allocations_json = q.Text(15);
          r.request_id = q.Text(16);
          r.received_ms = q.Int(17);
          rec.position.timestamp_ms = r.timestamp_ms;
          page.records.push_back(std::move(rec));
        }
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = ReadError(*db, "list usage");
      }
    }
    Return(*db);
    if (!st.ok()) return st;
    return page;
  }

  Result<std::vector<RollupRow>> ReadRollups(const RollupQuery& query) override {
    std::string sql =
        "SELECT period_ms, product_code, customer_account, dimension, unit, tag_key, tag_value, "
        "quantity, records FROM usage_rollups WHERE granularity = ? AND period_ms >= ? AND "
        "period_ms < ? AND tag_key = ?";
    std::vector<std::string> texts;
    auto text_filter = [&](const std::string& value, const char* column) {
      if (value.empty()) return;
      sql += std::string(" AND ") + column + " = ?";
      texts.push_back(value);
    };
    text_filter(query.product_code, "product_code");
    text_filter(query.customer_account, "customer_account");
    text_filter(query.dimension, "dimension");
    sql +=
        " ORDER BY period_ms, product_code, customer_account, dimension, unit, tag_key, "
        "tag_value";
    auto db = Borrow();
    if (!db.ok()) return db.status();
    std::vector<RollupRow> rows;
    Status st;
    {
      Query q(*db, sql);
      if (!q.ok()) {
        st = ReadError(*db, "read rollups");
      } else {
        q.Bind(static_cast<int64_t>(query.granularity));
        q.Bind(query.from_ms);
        q.Bind(query.to_ms);
        q.Bind(query.tag_key);
        for (const auto& t : texts) q.Bind(t);
        int rc;
        while ((rc = q.Step()) == SQLITE_ROW) {
          RollupRow row;
          row.key.granularity = query.granularity;
          row.key.period_ms = q.Int(0);
          row.key.product_code = q.Text(1);
          row.key.customer_account = q.Text(2);
          row.key.dimension = q.Text(3);
          row.key.unit = q.Text(4);
          row.key.tag_key = q.Text(5);
          row.key.tag_value = q.Text(6);
          row.quantity = q.Int(7);
          row.records = q.Int(8);
          rows.push_back(std::move(row));
        }
        if (rc != SQLITE_DONE) st = ReadError(*db, "read rollups");
      }
    }
    Return(*db);
    if (!st.ok()) return st;
    return rows;
  }

 private:
  // A connection of the pool: an idle one, a new one while there are fewer than
  // kMaxConnections, or the next one returned.
  Result<sqlite3*> Borrow() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !idle_.empty() || open_ < kMaxConnections; });
    if (!idle_.empty()) {
      sqlite3* db = idle_.back();
      idle_.pop_back();
      return db;
    }
    ++open_;
    lock.unlock();
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      Status st = ReadError(db, "open " + path_);
      sqlite3_close_v2(db);
      std::lock_guard<std::mutex> relock(mu_);
      --open_;
      cv_.notify_one();
      return st;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "PRAGMA cache_size=-16384", nullptr, nullptr, nullptr);
    return db;
  }
  void Return(sqlite3* db) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(db);
    cv_.notify_one();
  }

  const std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<sqlite3*> idle_;
  size_t open_ = 0;
};

}  // namespace

Result<std::unique_ptr<UsageReader>> OpenSqliteUsageReader(const std::string& data_dir) {
  auto reader = std::make_unique<SqliteUsageReader>(data_dir + "/meterd.db");
  METERD_RETURN_IF_ERROR(reader->Check());
  return std::unique_ptr<UsageReader>(std::move(reader));
}

}  // namespace meterd::store
