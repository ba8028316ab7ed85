// Usage rollups: hourly, daily and monthly totals of the ledger, kept in the same transaction as
// the records so that reports never scan the ledger (docs/REPORTS.md). A RollupAccumulator
// gathers the deltas of one transaction in memory, one entry per distinct key, so that a
// backend writes one upsert per key at commit instead of several per record.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "store/store.h"

namespace meterd::store {

enum class Granularity { kHour = 0, kDay = 1, kMonth = 2 };
const char* GranularityName(Granularity g);  // "hour", "day", "month"
bool ParseGranularity(std::string_view name, Granularity* out);
// The start of the UTC hour, day or month holding `millis`.
int64_t PeriodStart(Granularity g, int64_t millis);
// The start of the period after the one starting at `period_ms`.
int64_t NextPeriod(Granularity g, int64_t period_ms);

// Task-metering rows (source RegisterUsage) hold seconds (docs/BEHAVIOUR-DECISIONS.md): their
// rollups carry this unit, so that seconds are never added to units of the dimension.
inline constexpr const char* kUnitSecond = "second";

struct RollupKey {
  Granularity granularity = Granularity::kHour;
  int64_t period_ms = 0;  // start of the period, UTC, by the record's usage hour
  std::string product_code;
  std::string customer_account;
  std::string dimension;
  std::string unit;     // "" (units of the dimension) or kUnitSecond
  std::string tag_key;  // "" for the record's whole quantity; else one allocation tag
  std::string tag_value;

  auto Tie() const {
    return std::tie(granularity, period_ms, product_code, customer_account, dimension, unit,
                    tag_key, tag_value);
  }
  bool operator<(const RollupKey& o) const { return Tie() < o.Tie(); }
  bool operator==(const RollupKey& o) const { return Tie() == o.Tie(); }
};

struct RollupDelta {
  int64_t quantity = 0;
  int64_t records = 0;
};

// Not thread-safe: one per writer.
class RollupAccumulator {
 public:
  // Adds what the newly inserted `row` contributes: its quantity to the (hour, day, month)
  // totals of its product, buyer and dimension, and, when it has UsageAllocations, each
  // allocation's quantity to the totals of each of its tags (a record counts once per distinct
  // tag pair). Untagged allocations add to no tag total.
  void Add(const UsageRow& row);
  const std::map<RollupKey, RollupDelta>& deltas() const { return deltas_; }
  bool empty() const { return deltas_.empty(); }
  void Clear() { deltas_.clear(); }

 private:
  void AddOne(const RollupKey& base, int64_t quantity);
  std::map<RollupKey, RollupDelta> deltas_;
};

}  // namespace meterd::store
