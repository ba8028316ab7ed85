// Clock: the one source of "now" for business rules (windows, expiry, grace periods).
//
// Contract: NowMillis() is thread-safe and may be called from any thread. SystemClock reads the
// wall clock; ManualClock only moves when told (tests and `meterd serve --clock manual`).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace meterd {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch, UTC.
  virtual int64_t NowMillis() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override;
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_millis) : now_(start_millis) {}
  int64_t NowMillis() const override { return now_.load(std::memory_order_relaxed); }
  void Set(int64_t millis) { now_.store(millis, std::memory_order_relaxed); }
  void Advance(int64_t millis) { now_.fetch_add(millis, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

// Wall-clock milliseconds, for things that are about the transport rather than business time
// (SigV4 skew, log timestamps).
int64_t WallClockMillis();

}  // namespace meterd
