#include "common/decimal.h"

#include <gtest/gtest.h>

namespace meterd {
namespace {

std::string Text(std::string_view s) {
  auto d = Decimal::Parse(s);
  return d ? d->ToString() : "invalid";
}

TEST(DecimalTest, ParsesTheJsonNumberGrammarKeepingTheScale) {
  EXPECT_EQ(Text("12"), "12");
  EXPECT_EQ(Text("0.50"), "0.50");
  EXPECT_EQ(Text("-0.5"), "-0.5");
  EXPECT_EQ(Text("1.5e-3"), "0.0015");
  EXPECT_EQ(Text("2E2"), "200");
  EXPECT_EQ(Text("2.5e+1"), "25");
  EXPECT_EQ(Text("0.000000000000000001"), "0.000000000000000001");
  for (const char* bad :
       {"", "-", "01", "1.", ".5", "1e", "1x", "+1", "0.0000000000000000001", "1e40", "1 "}) {
    EXPECT_EQ(Text(bad), "invalid") << bad;
  }
}

TEST(DecimalTest, ProductsAndSumsAreExact) {
  // 0.1 * 3 is exactly 0.3 (a double would give 0.30000000000000004).
  auto price = *Decimal::Parse("0.1");
  EXPECT_EQ(price.Times(3)->ToString(), "0.3");
  auto amount = *Decimal::Parse("0.0123");
  EXPECT_EQ(amount.Times(100)->ToString(), "1.2300");
  auto sum = Decimal::FromInt(0);
  for (int i = 0; i < 10; ++i) sum = *sum.Plus(price);
  EXPECT_EQ(sum.ToString(), "1.0");
  EXPECT_EQ(sum, Decimal::FromInt(1));
  EXPECT_EQ(Decimal::Parse("1.5")->Plus(*Decimal::Parse("2.25"))->ToString(), "3.75");
  // The largest quantity sum times a price with many digits stays exact.
  auto big = *Decimal::Parse("1234.123456789012");
  EXPECT_EQ(big.Times(INT64_MAX)->ToString(), "11382779781374326506582.889361032684");
}

TEST(DecimalTest, OverflowIsRefusedNotWrapped) {
  auto big = *Decimal::Parse("99999999999999999999");
  EXPECT_FALSE(big.Times(INT64_MAX).has_value());
  auto near = *Decimal::Parse("999999999999999999999999999999999999");
  EXPECT_FALSE(near.Plus(Decimal::FromInt(1)).has_value());
}

TEST(DecimalTest, DivisionRoundsHalfAwayFromZero) {
  EXPECT_EQ(Decimal::FromInt(1).DividedRounded(3, 4)->ToString(), "0.3333");
  EXPECT_EQ(Decimal::FromInt(2).DividedRounded(3, 4)->ToString(), "0.6667");
  EXPECT_EQ(Decimal::FromInt(1).DividedRounded(8, 2)->ToString(), "0.13");
  EXPECT_EQ(Decimal::FromInt(-1).DividedRounded(8, 2)->ToString(), "-0.13");
  EXPECT_EQ(Decimal::FromInt(3600).DividedRounded(3600, 6)->ToString(), "1.000000");
}

}  // namespace
}  // namespace meterd
