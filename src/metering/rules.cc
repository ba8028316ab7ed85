#include "metering/rules.h"

#include <algorithm>
#include <set>
#include <string>

#include "common/time_util.h"

namespace meterd::metering {

bool BatchTimestampAccepted(int64_t ts_ms, int64_t now_ms, const WindowSettings& w) {
  if (ts_ms > now_ms + w.max_future_ms) return false;
  if (now_ms - ts_ms >= w.batch_max_age_ms) return false;
  int64_t month_start = StartOfMonth(now_ms);
  if (ts_ms >= month_start) return true;
  // A record of an earlier month: only during the grace at the start of this month, and only
  // for the month just ended (the 24 h bound already guarantees that).
  return now_ms < month_start + w.batch_month_grace_ms;
}

bool MeterUsageTimestampAccepted(int64_t ts_ms, int64_t now_ms, const WindowSettings& w) {
  if (ts_ms > now_ms + w.max_future_ms) return false;
  return now_ms - ts_ms < w.meter_usage_max_age_ms;
}

Status CheckAllocations(const std::vector<UsageAllocation>& allocations, int64_t quantity) {
  std::set<std::string> keys;
  std::set<std::vector<std::pair<std::string, std::string>>> tag_sets;
  int64_t sum = 0;
  for (const auto& a : allocations) {
    std::vector<std::pair<std::string, std::string>> set;
    std::set<std::string> keys_here;
    for (const auto& t : a.tags) {
      if (!keys_here.insert(t.key).second) {
        return Status(StatusCode::kInvalidTag,
                      "Tag key '" + t.key + "' is repeated in one UsageAllocation.");
      }
      keys.insert(t.key);
      set.emplace_back(t.key, t.value);
    }
    std::sort(set.begin(), set.end());
    if (!tag_sets.insert(std::move(set)).second) {
      return Status(StatusCode::kInvalidUsageAllocations,
                    "Two UsageAllocations can't have the same tags.");
    }
    sum += a.quantity;  // each is <= 2^31-1 and there are <= 2500: no overflow
  }
  if (keys.size() > 5) {
    return Status(StatusCode::kInvalidTag,
                  "The number of distinct tag keys across UsageAllocations is greater than 5.");
  }
  if (sum != quantity) {
    return Status(StatusCode::kInvalidUsageAllocations,
                  "Sum of allocated usage quantities is not equal to the usage quantity.");
  }
  return Status::Ok();
}

}  // namespace meterd::metering
