#include "store/rollup.h"

#include "common/time_util.h"
#include "json/json.h"

namespace meterd::store {

const char* GranularityName(Granularity g) {
  switch (g) {
    case Granularity::kHour:
      return "hour";
    case Granularity::kDay:
      return "day";
    case Granularity::kMonth:
      return "month";
  }
  return "hour";
}

bool ParseGranularity(std::string_view name, Granularity* out) {
  for (Granularity g : {Granularity::kHour, Granularity::kDay, Granularity::kMonth}) {
    if (name == GranularityName(g)) {
      *out = g;
      return true;
    }
  }
  return false;
}

int64_t PeriodStart(Granularity g, int64_t millis) {
  switch (g) {
    case Granularity::kHour:
      return FloorToHour(millis);
    case Granularity::kDay: {
      int64_t r = millis % kMillisPerDay;
      return millis - (r < 0 ? r + kMillisPerDay : r);
    }
    case Granularity::kMonth:
      return StartOfMonth(millis);
  }
  return millis;
}

int64_t NextPeriod(Granularity g, int64_t period_ms) {
  switch (g) {
    case Granularity::kHour:
      return period_ms + kMillisPerHour;
    case Granularity::kDay:
      return period_ms + kMillisPerDay;
    case Granularity::kMonth:
      // 32 days later is always inside the next month.
      return StartOfMonth(period_ms + 32 * kMillisPerDay);
  }
  return period_ms;
}

void RollupAccumulator::AddOne(const RollupKey& base, int64_t quantity) {
  for (Granularity g : {Granularity::kHour, Granularity::kDay, Granularity::kMonth}) {
    RollupKey key = base;
    key.granularity = g;
    key.period_ms = PeriodStart(g, base.period_ms);
    RollupDelta& d = deltas_[key];
    d.quantity += quantity;
    d.records += 1;
  }
}

void RollupAccumulator::Add(const UsageRow& row) {
  RollupKey key;
  key.period_ms = row.usage_hour_ms;
  key.product_code = row.product_code;
  key.customer_account = row.customer_account;
  key.dimension = row.dimension;
  if (row.source == "RegisterUsage") key.unit = kUnitSecond;
  AddOne(key, row.quantity);
  if (row.allocations_json.empty()) return;
  // The allocations were validated and serialized by metering/service.cc; a row that does not
  // parse adds no tag totals (its whole quantity is counted above either way).
  auto parsed = json::Parse(row.allocations_json);
  if (!parsed.ok() || !parsed->is_array()) return;
  std::map<std::pair<std::string, std::string>, int64_t> per_tag;
  for (const json::Value& allocation : parsed->items()) {
    const json::Value* q = allocation.Find("AllocatedUsageQuantity");
    const json::Value* tags = allocation.Find("Tags");
    int64_t quantity = 0;
    if (q == nullptr || !q->GetInt64(&quantity) || tags == nullptr || !tags->is_array()) continue;
    for (const json::Value& tag : tags->items()) {
      const json::Value* k = tag.Find("Key");
      const json::Value* v = tag.Find("Value");
      if (k == nullptr || v == nullptr || !k->is_string() || !v->is_string()) continue;
      per_tag[{k->text(), v->text()}] += quantity;
    }
  }
  for (const auto& [tag, quantity] : per_tag) {
    key.tag_key = tag.first;
    key.tag_value = tag.second;
    AddOne(key, quantity);
  }
}

}  // namespace meterd::store
