#include "metering/task_metering.h"

#include <algorithm>

#include "common/time_util.h"

namespace meterd::metering {

std::vector<HourSlice> SliceRun(int64_t start_ms, int64_t end_ms, bool stopped) {
  std::vector<HourSlice> slices;
  // Whole seconds: a run is billed to the second (partial seconds are not billed).
  const int64_t start_s = start_ms / kMillisPerSecond;
  int64_t end_s = std::max(start_s, end_ms / kMillisPerSecond);
  if (!stopped) end_s = std::max(start_s, FloorToHour(end_s * kMillisPerSecond) / kMillisPerSecond);
  int64_t total = 0;
  for (int64_t hour_s = FloorToHour(start_s * kMillisPerSecond) / kMillisPerSecond; hour_s < end_s;
       hour_s += 3600) {
    int64_t from = std::max(start_s, hour_s);
    int64_t to = std::min(end_s, hour_s + 3600);
    if (to > from) {
      slices.push_back(HourSlice{hour_s * kMillisPerSecond, to - from});
      total += to - from;
    }
  }
  if (stopped && total < kMinimumRunSeconds) {
    if (slices.empty()) slices.push_back(HourSlice{FloorToHour(start_s * kMillisPerSecond), 0});
    slices.back().seconds += kMinimumRunSeconds - total;
  }
  return slices;
}

}  // namespace meterd::metering
