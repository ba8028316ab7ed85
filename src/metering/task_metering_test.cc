#include "metering/task_metering.h"

#include <gtest/gtest.h>

#include "common/time_util.h"

namespace meterd::metering {
namespace {

int64_t T(const char* iso) { return *ParseIso8601(iso); }

int64_t Total(const std::vector<HourSlice>& slices) {
  int64_t total = 0;
  for (const auto& s : slices) total += s.seconds;
  return total;
}

TEST(SliceRunTest, ShortRunBillsTheMinute) {
  auto slices = SliceRun(T("2026-11-25T10:20:00Z"), T("2026-11-25T10:20:30Z"), true);
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(slices[0].hour_ms, T("2026-11-25T10:00:00Z"));
  EXPECT_EQ(slices[0].seconds, 60);
}

TEST(SliceRunTest, TwoAndAHalfHoursOverThreeUtcHours) {
  auto slices = SliceRun(T("2026-11-25T10:20:00Z"), T("2026-11-25T12:50:00Z"), true);
  ASSERT_EQ(slices.size(), 3u);
  EXPECT_EQ(slices[0].seconds, 2400);
  EXPECT_EQ(slices[1].seconds, 3600);
  EXPECT_EQ(slices[2].seconds, 3000);
  EXPECT_EQ(slices[2].hour_ms, T("2026-11-25T12:00:00Z"));
  EXPECT_EQ(Total(slices), 9000);  // 2.5 h
}

TEST(SliceRunTest, OpenRunsBillOnlyEndedHoursAndAgreeWithTheFinalSlices) {
  int64_t start = T("2026-11-25T10:20:00Z");
  auto open = SliceRun(start, T("2026-11-25T11:40:00Z"), false);
  ASSERT_EQ(open.size(), 1u);  // 11:00 has not ended
  EXPECT_EQ(open[0].seconds, 2400);
  auto final_slices = SliceRun(start, T("2026-11-25T12:50:00Z"), true);
  EXPECT_EQ(final_slices[0].hour_ms, open[0].hour_ms);
  EXPECT_EQ(final_slices[0].seconds, open[0].seconds);
  EXPECT_TRUE(SliceRun(start, T("2026-11-25T10:59:59Z"), false).empty());
}

TEST(SliceRunTest, MinimumTopsUpTheLastHourOnly) {
  // 30 s in 10:00, 10 s in 11:00: the hour already billed keeps its 30 s.
  auto slices = SliceRun(T("2026-11-25T10:59:30Z"), T("2026-11-25T11:00:10Z"), true);
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(slices[0].seconds, 30);
  EXPECT_EQ(slices[1].seconds, 30);
  EXPECT_EQ(Total(slices), 60);
  // A stop before the start (clock or catalog mistake) still bills the minimum, once.
  auto reversed = SliceRun(T("2026-11-25T10:00:00Z"), T("2026-11-25T09:00:00Z"), true);
  EXPECT_EQ(Total(reversed), 60);
}

}  // namespace
}  // namespace meterd::metering
