// UsageReader on PostgreSQL: every query on the store's read pool (store/postgres_connection.h),
// never on the writer's connection, so reports neither wait for group commits nor hold them up.
// Each page is one statement: it sees one committed snapshot.
#include <utility>

#include "store/postgres_connection.h"
#include "store/usage_reader.h"

namespace meterd::store {

namespace {

using store::PgInt;
using store::PgParams;
using store::PgText;

class PostgresUsageReader final : public UsageReader {
 public:
  explicit PostgresUsageReader(std::shared_ptr<store::PgReadPool> pool) : pool_(std::move(pool)) {}

  Result<UsagePage> ListUsage(const UsageFilter& filter, const std::optional<LedgerPosition>& after,
                              size_t limit) override {
    std::string sql =
        "SELECT seq, record_id, dedup_key, source, region, product_code, seller_account, "
        "customer_identifier, customer_account, license_arn, workload_id, dimension, "
        "usage_hour_ms, timestamp_ms, quantity, allocations, request_id, received_ms "
        "FROM usage_records WHERE TRUE";
    PgParams params;
    auto text_filter = [&](const std::string& value, const char* column) {
      if (!value.empty()) sql += std::string(" AND ") + column + " = " + params.Add(value);
    };
    text_filter(filter.product_code, "product_code");
    text_filter(filter.customer_identifier, "customer_identifier");
    text_filter(filter.customer_account, "customer_account");
    text_filter(filter.license_arn, "license_arn");
    text_filter(filter.workload_id, "workload_id");
    text_filter(filter.dimension, "dimension");
    if (filter.from_ms) sql += " AND timestamp_ms >= " + params.Add(*filter.from_ms) + "::BIGINT";
    if (filter.to_ms) sql += " AND timestamp_ms < " + params.Add(*filter.to_ms) + "::BIGINT";
    if (after) {
      sql += " AND (timestamp_ms, seq) > (" + params.Add(after->timestamp_ms) + "::BIGINT, " +
             params.Add(after->seq) + "::BIGINT)";
    }
    sql += " ORDER BY timestamp_ms, seq LIMIT " + params.Add(static_cast<int64_t>(limit) + 1) +
           "::BIGINT";
    auto result = pool_->Query(sql, params.values());
    if (!result.ok()) return result.status();
    const PGresult* r = result->get();
    UsagePage page;
    for (int i = 0; i < PQntuples(r); ++i) {
      if (page.records.size() == limit) {
        page.more = true;
        break;
      }
      LedgerRecord rec;
      rec.position.seq = PgInt(r, i, 0);
      store::UsageRow& row = rec.row;
      row.record_id = PgText(r, i, 1);
      row.dedup_key = PgText(r, i, 2);
      row.source = PgText(r, i, 3);
      row.region = PgText(r, i, 4);
      row.product_code = PgText(r, i, 5);
      row.seller_account = PgText(r, i, 6);
      row.customer_identifier = PgText(r, i, 7);
      row.customer_account = PgText(r, i, 8);
      row.license_arn = PgText(r, i, 9);
      row.workload_id = PgText(r, i, 10);
      row.dimension = PgText(r, i, 11);
      row.usage_hour_ms = PgInt(r, i, 12);
      row.timestamp_ms = PgInt(r, i, 13);
      row.quantity = PgInt(r, i, 14);
      row.allocations_json = PgText(r, i, 15);
      row.request_id = PgText(r, i, 16);
      row.received_ms = PgInt(r, i, 17);
      rec.position.timestamp_ms = row.timestamp_ms;
      page.records.push_back(std::move(rec));
    }
    return page;
  }

  Result<std::vector<RollupRow>> ReadRollups(const RollupQuery& query) override {
    PgParams params;
    std::string sql =
        "SELECT period_ms, product_code, customer_account, dimension, unit, tag_key, tag_value, "
        "quantity, records FROM usage_rollups WHERE granularity = " +
        params.Add(static_cast<int64_t>(query.granularity)) +
        "::INTEGER AND period_ms >= " + params.Add(query.from_ms) + "::BIGINT AND period_ms < " +
        params.Add(query.to_ms) + "::BIGINT AND tag_key = " + params.Add(query.tag_key);
    auto text_filter = [&](const std::string& value, const char* column) {
      if (!value.empty()) sql += std::string(" AND ") + column + " = " + params.Add(value);
    };
    text_filter(query.product_code, "product_code");
    text_filter(query.customer_account, "customer_account");
    text_filter(query.dimension, "dimension");
    sql +=
        " ORDER BY period_ms, product_code, customer_account, dimension, unit, tag_key, "
        "tag_value";
    auto result = pool_->Query(sql, params.values());
    if (!result.ok()) return result.status();
    const PGresult* r = result->get();
    std::vector<RollupRow> rows;
    rows.reserve(static_cast<size_t>(PQntuples(r)));
    for (int i = 0; i < PQntuples(r); ++i) {
      RollupRow row;
      row.key.granularity = query.granularity;
      row.key.period_ms = PgInt(r, i, 0);
      row.key.product_code = PgText(r, i, 1);
      row.key.customer_account = PgText(r, i, 2);
      row.key.dimension = PgText(r, i, 3);
      row.key.unit = PgText(r, i, 4);
      row.key.tag_key = PgText(r, i, 5);
      row.key.tag_value = PgText(r, i, 6);
      row.quantity = PgInt(r, i, 7);
      row.records = PgInt(r, i, 8);
      rows.push_back(std::move(row));
    }
    return rows;
  }

 private:
  std::shared_ptr<store::PgReadPool> pool_;
};

}  // namespace

std::unique_ptr<UsageReader> NewPostgresUsageReader(std::shared_ptr<store::PgReadPool> pool) {
  return std::make_unique<PostgresUsageReader>(std::move(pool));
}

}  // namespace meterd::store
