#include "metering/throttle.h"

#include <algorithm>
#include <functional>

namespace meterd::metering {

double Throttler::RateOf(const ThrottleSettings& settings, std::string_view operation) {
  if (operation == "BatchMeterUsage") return settings.batch_meter_usage;
  if (operation == "MeterUsage") return settings.meter_usage;
  if (operation == "RegisterUsage") return settings.register_usage;
  return settings.resolve_customer;
}

bool Throttler::Allow(std::string_view account, std::string_view region,
                      std::string_view operation) {
  const ThrottleSettings settings = this->settings();
  if (!settings.enabled) return true;
  const double rate = RateOf(settings, operation);
  const double capacity = std::max(1.0, rate * settings.burst_factor);
  std::string key;
  key.reserve(account.size() + region.size() + operation.size() + 2);
  key.append(account).push_back('\n');
  key.append(region).push_back('\n');
  key.append(operation);
  Shard& shard = shards_[std::hash<std::string>{}(key) % kShards];
  const int64_t now = clock_->NowMillis();
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= kMaxBucketsPerShard) {
      std::erase_if(shard.buckets, [&](const auto& entry) {
        const Bucket& b = entry.second;
        return b.tokens + static_cast<double>(now - b.refilled_ms) * rate / 1000.0 >= capacity;
      });
    }
    it = shard.buckets.emplace(std::move(key), Bucket{capacity, now}).first;
  }
  Bucket& bucket = it->second;
  if (now > bucket.refilled_ms) {
    const auto elapsed = static_cast<double>(now - bucket.refilled_ms);
    bucket.tokens = std::min(capacity, bucket.tokens + elapsed * rate / 1000.0);
    bucket.refilled_ms = now;
  }
  if (bucket.tokens < 1.0) return false;
  bucket.tokens -= 1.0;
  return true;
}

}  // namespace meterd::metering
