// Container task metering (D11): a metered run becomes hourly usage of the product's hourly
// dimension, prorated to the second, at least 60 s per run.
#pragma once

#include <cstdint>
#include <vector>

namespace meterd::metering {

constexpr int64_t kMinimumRunSeconds = 60;

struct HourSlice {
  int64_t hour_ms = 0;  // start of the UTC hour
  int64_t seconds = 0;  // seconds of the run inside that hour
};

// The slices of the run [start_ms, end_ms), one per UTC hour it touches, in order. When
// `stopped` and the run is shorter than 60 s, the shortfall is added to the last slice, so
// slices of hours that already ended never change when the run stops later.
// With !stopped, only the hours that ended by `end_ms` are returned (end_ms is "now").
std::vector<HourSlice> SliceRun(int64_t start_ms, int64_t end_ms, bool stopped);

}  // namespace meterd::metering
