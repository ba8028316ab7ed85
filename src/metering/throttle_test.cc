#include "metering/throttle.h"

#include <gtest/gtest.h>

namespace meterd::metering {
namespace {

TEST(ThrottlerTest, BurstThenRefillPerBucket) {
  ManualClock clock(1000000);
  Throttler throttler(&clock, ThrottleSettings());
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(throttler.Allow("a", "us-east-1", "MeterUsage")) << i;
  EXPECT_FALSE(throttler.Allow("a", "us-east-1", "MeterUsage"));
  // Other account, region and operation have their own buckets.
  EXPECT_TRUE(throttler.Allow("b", "us-east-1", "MeterUsage"));
  EXPECT_TRUE(throttler.Allow("a", "us-west-2", "MeterUsage"));
  EXPECT_TRUE(throttler.Allow("a", "us-east-1", "BatchMeterUsage"));
  // 10/s: 100 ms gives one token back, and only one.
  clock.Advance(100);
  EXPECT_TRUE(throttler.Allow("a", "us-east-1", "MeterUsage"));
  EXPECT_FALSE(throttler.Allow("a", "us-east-1", "MeterUsage"));
  // RegisterUsage: 5/s, burst 10.
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(throttler.Allow("a", "us-east-1", "RegisterUsage"));
  EXPECT_FALSE(throttler.Allow("a", "us-east-1", "RegisterUsage"));
  // A frozen clock never refills; a long pause refills to the burst only.
  clock.Advance(3600 * 1000);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(throttler.Allow("a", "us-east-1", "RegisterUsage"));
  EXPECT_FALSE(throttler.Allow("a", "us-east-1", "RegisterUsage"));
}

TEST(ThrottlerTest, Disabled) {
  ManualClock clock(0);
  ThrottleSettings off;
  off.enabled = false;
  Throttler throttler(&clock, off);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(throttler.Allow("a", "r", "MeterUsage"));
}

}  // namespace
}  // namespace meterd::metering
