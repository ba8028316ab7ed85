// Throttling (D14): a token bucket per (account, region, operation). Refills with the business
// clock, so the test clock moves it too. Thread-safe: buckets live in mutex-guarded shards.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace meterd::metering {

struct ThrottleSettings {
  bool enabled = true;
  // Requests per second per (account, region); BEHAVIOUR.md §8 quotas, D14.
  double batch_meter_usage = 10;
  double meter_usage = 10;
  double register_usage = 5;
  double resolve_customer = 20;
  double burst_factor = 2;  // a full bucket holds this many seconds of rate
};

class Throttler {
 public:
  // `clock` is not owned and must outlive the throttler.
  Throttler(const Clock* clock, ThrottleSettings settings) : clock_(clock), settings_(settings) {}

  // Replaces the rates (a settings change through the control plane). Buckets keep their
  // tokens; the new rate and capacity apply from the next call. Thread-safe.
  void Configure(const ThrottleSettings& settings) {
    std::lock_guard<std::mutex> lock(settings_mu_);
    settings_ = settings;
  }
  ThrottleSettings settings() const {
    std::lock_guard<std::mutex> lock(settings_mu_);
    return settings_;
  }

  // Takes one token from the bucket of (account, region, operation); false when it is empty.
  bool Allow(std::string_view account, std::string_view region, std::string_view operation);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t refilled_ms = 0;
  };
  struct Shard {
    std::mutex mu;
    std::map<std::string, Bucket, std::less<>> buckets;
  };
  static constexpr size_t kShards = 16;
  // A shard forgets its full (idle) buckets past this size, so many regions cannot grow memory.
  static constexpr size_t kMaxBucketsPerShard = 65536;

  static double RateOf(const ThrottleSettings& settings, std::string_view operation);

  const Clock* clock_;
  mutable std::mutex settings_mu_;
  ThrottleSettings settings_;
  std::array<Shard, kShards> shards_;
};

}  // namespace meterd::metering
