#include "common/time_util.h"

#include <gtest/gtest.h>

namespace meterd {
namespace {

TEST(TimeUtilTest, ParsesIso8601Forms) {
  EXPECT_EQ(ParseIso8601("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseIso8601("2024-01-02T03:04:05Z"), 1704164645000);
  EXPECT_EQ(ParseIso8601("2024-01-02T03:04:05.678Z"), 1704164645678);
  EXPECT_EQ(ParseIso8601("2024-01-02T04:04:05+01:00"), 1704164645000);
  EXPECT_FALSE(ParseIso8601("2024-02-30T00:00:00Z"));
  EXPECT_FALSE(ParseIso8601("2024-01-02 03:04"));
  EXPECT_FALSE(ParseIso8601("2024-01-02T03:04:05"));
}

TEST(TimeUtilTest, AmzDateRoundTrip) {
  EXPECT_EQ(ParseAmzDate("20240102T030405Z"), 1704164645000);
  EXPECT_EQ(FormatAmzDate(1704164645000), "20240102T030405Z");
  EXPECT_FALSE(ParseAmzDate("20240102T030405"));
  EXPECT_FALSE(ParseAmzDate("2024010XT030405Z"));
}

TEST(TimeUtilTest, FloorsToHourAndMonth) {
  int64_t t = *ParseIso8601("2026-12-01T03:59:59.999Z");
  EXPECT_EQ(FloorToHour(t), *ParseIso8601("2026-12-01T03:00:00Z"));
  EXPECT_EQ(StartOfMonth(t), *ParseIso8601("2026-12-01T00:00:00Z"));
  EXPECT_EQ(StartOfMonth(*ParseIso8601("2024-02-29T23:00:00Z")),
            *ParseIso8601("2024-02-01T00:00:00Z"));
  EXPECT_EQ(FloorToHour(-1), -3600000);
  EXPECT_EQ(FormatIso8601(t), "2026-12-01T03:59:59.999Z");
}

}  // namespace
}  // namespace meterd
