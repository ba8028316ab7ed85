#include "common/clock.h"

#include <chrono>

namespace meterd {

int64_t WallClockMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SystemClock::NowMillis() const { return WallClockMillis(); }

}  // namespace meterd
