// The time and allocation rules shared by both metering operations (D1, BEHAVIOUR.md §3).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "metering/types.h"

namespace meterd::metering {

// Server settings for the acceptance windows (D1, configurable).
struct WindowSettings {
  int64_t batch_max_age_ms = 24LL * 3600 * 1000;
  int64_t batch_month_grace_ms =
      6LL * 3600 * 1000;  // previous month accepted until 06:00 on the 1st
  int64_t meter_usage_max_age_ms = 6LL * 3600 * 1000;
  int64_t max_future_ms = 5LL * 60 * 1000;
};

// BatchMeterUsage: now - ts < 24 h, and ts in the current UTC month unless now is still inside
// the month-end grace; never more than max_future ahead.
bool BatchTimestampAccepted(int64_t ts_ms, int64_t now_ms, const WindowSettings& w);
// MeterUsage: now - ts < 6 h, never more than max_future ahead.
bool MeterUsageTimestampAccepted(int64_t ts_ms, int64_t now_ms, const WindowSettings& w);

// Allocations: the sum equals `quantity`, no two allocations share a tag set, no duplicate tag
// key inside one allocation, and at most 5 distinct tag keys across the list.
// Returns kInvalidUsageAllocations or kInvalidTag.
Status CheckAllocations(const std::vector<UsageAllocation>& allocations, int64_t quantity);

}  // namespace meterd::metering
