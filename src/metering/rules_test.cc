#include "metering/rules.h"

#include <gtest/gtest.h>

#include "common/time_util.h"
#include "metering/dedup_key.h"
#include "store/ledger_codec.h"

namespace meterd::metering {
namespace {

int64_t T(const char* iso) { return *ParseIso8601(iso); }

TEST(WindowTest, BatchAcceptsUpTo24HoursBack) {
  WindowSettings w;
  int64_t now = T("2026-11-26T15:00:00Z");
  EXPECT_TRUE(BatchTimestampAccepted(now, now, w));
  EXPECT_TRUE(BatchTimestampAccepted(T("2026-11-25T15:00:00.001Z"), now, w));
  EXPECT_FALSE(BatchTimestampAccepted(T("2026-11-25T15:00:00Z"), now, w));  // exactly 24 h
  EXPECT_TRUE(BatchTimestampAccepted(now + 5 * kMillisPerMinute, now, w));
  EXPECT_FALSE(BatchTimestampAccepted(now + 5 * kMillisPerMinute + 1, now, w));
}

TEST(WindowTest, BatchMonthEndGrace) {
  WindowSettings w;
  int64_t last_month = T("2026-11-30T23:00:00Z");
  EXPECT_TRUE(BatchTimestampAccepted(last_month, T("2026-12-01T03:00:00Z"), w));
  EXPECT_TRUE(BatchTimestampAccepted(last_month, T("2026-12-01T05:59:59Z"), w));
  EXPECT_FALSE(BatchTimestampAccepted(last_month, T("2026-12-01T06:00:00Z"), w));
  EXPECT_FALSE(BatchTimestampAccepted(last_month, T("2026-12-01T07:00:00Z"), w));
  // Inside the grace, the 24 h bound still holds.
  EXPECT_FALSE(BatchTimestampAccepted(T("2026-11-30T02:00:00Z"), T("2026-12-01T03:00:00Z"), w));
  // This month's records are unaffected by the grace.
  EXPECT_TRUE(BatchTimestampAccepted(T("2026-12-01T06:30:00Z"), T("2026-12-01T07:00:00Z"), w));
}

TEST(WindowTest, MeterUsageSixHours) {
  WindowSettings w;
  int64_t now = T("2026-11-26T15:00:00Z");
  EXPECT_TRUE(MeterUsageTimestampAccepted(now - 6 * kMillisPerHour + 1, now, w));
  EXPECT_FALSE(MeterUsageTimestampAccepted(now - 6 * kMillisPerHour, now, w));
  EXPECT_FALSE(MeterUsageTimestampAccepted(now + 10 * kMillisPerMinute, now, w));
  // MeterUsage has no month rule: a record of last month inside 6 h is fine.
  EXPECT_TRUE(MeterUsageTimestampAccepted(T("2026-11-30T23:00:00Z"), T("2026-12-01T03:00:00Z"), w));
}

TEST(AllocationsTest, Rules) {
  EXPECT_TRUE(CheckAllocations({{3, {{"k", "a"}}}, {2, {{"k", "b"}}}}, 5).ok());
  EXPECT_TRUE(CheckAllocations({{3, {{"k", "a"}}}, {2, {}}}, 5).ok());  // untagged bucket
  EXPECT_EQ(CheckAllocations({{3, {{"k", "a"}}}, {1, {}}}, 5).code(),
            StatusCode::kInvalidUsageAllocations);
  EXPECT_EQ(
      CheckAllocations({{3, {{"k", "a"}, {"j", "b"}}}, {2, {{"j", "b"}, {"k", "a"}}}}, 5).code(),
      StatusCode::kInvalidUsageAllocations);  // same tag set in another order
  EXPECT_EQ(CheckAllocations({{3, {}}, {2, {}}}, 5).code(), StatusCode::kInvalidUsageAllocations);
  EXPECT_EQ(CheckAllocations({{5, {{"k", "a"}, {"k", "b"}}}}, 5).code(), StatusCode::kInvalidTag);
  std::vector<UsageAllocation> six_keys;
  for (int i = 0; i < 6; ++i) six_keys.push_back({1, {{"key" + std::to_string(i), "v"}}});
  EXPECT_EQ(CheckAllocations(six_keys, 6).code(), StatusCode::kInvalidTag);
}

// The embedded store orders its dedup family by the hour it reads from these keys
// (store::ledger::DedupKeyHour): the hour-scoped kinds end in their hour, a ClientToken's key has
// none.
TEST(DedupKeyTest, TheStoreReadsTheHourOfHourScopedKeys) {
  const int64_t h = T("2026-11-26T15:00:00Z");
  EXPECT_EQ(store::ledger::DedupKeyHour(BatchDedupKey("us-east-1", "p", "a|1:b", "", "d|2:x", h)),
            h);
  EXPECT_EQ(store::ledger::DedupKeyHour(MeterUsageDedupKey("w", "p", "d", h)), h);
  EXPECT_EQ(store::ledger::DedupKeyHour(TaskRunDedupKey("w", "p", h)), h);
  EXPECT_EQ(store::ledger::DedupKeyHour(AgentCoreDedupKey("w", "13:1793491200000")), 0);
}

TEST(DedupKeyTest, ComponentsCannotForgeEachOther) {
  int64_t h = T("2026-11-26T15:00:00Z");
  EXPECT_NE(BatchDedupKey("us-east-1", "p", "a|1:b", "", "d", h),
            BatchDedupKey("us-east-1", "p", "a", "b", "d", h));
  EXPECT_NE(MeterUsageDedupKey("w", "p", "d", h), MeterUsageDedupKey("w", "p", "d", h + 3600000));
  EXPECT_EQ(MeterUsageDedupKey("w", "p", "d", h), MeterUsageDedupKey("w", "p", "d", h));
  EXPECT_NE(AgentCoreDedupKey("w", "t1"), AgentCoreDedupKey("w", "t2"));
  EXPECT_NE(BatchDedupKey("us-east-1", "p", "a", "", "d", h),
            BatchDedupKey("us-west-2", "p", "a", "", "d", h));
}

}  // namespace
}  // namespace meterd::metering
