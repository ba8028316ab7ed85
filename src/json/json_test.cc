#include "json/json.h"

#include <gtest/gtest.h>

namespace meterd::json {
namespace {

TEST(JsonTest, ParsesNestedDocument) {
  auto v = Parse(R"({"a":[1,2.5,-3e2,"x\u00e9\ud83d\ude00"],"b":{"c":true,"d":null}})");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const Value* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items().size(), 4u);
  EXPECT_EQ(a->items()[1].text(), "2.5");
  EXPECT_EQ(a->items()[2].text(), "-3e2");
  EXPECT_EQ(a->items()[3].text(), "x\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v->Find("b")->Find("c")->as_bool());
  EXPECT_TRUE(v->Find("b")->Find("d")->is_null());
}

TEST(JsonTest, RefusesMalformedInput) {
  for (const char* bad : {"",
                          "{",
                          "{\"a\":}",
                          "{\"a\":1,}",
                          "[1 2]",
                          "{} x",
                          "01",
                          "1.",
                          "-",
                          "+1",
                          "\"abc",
                          "\"\\x\"",
                          "\"\\ud800\"",
                          "\"\\udc00\"",
                          "{\"a\":1,\"a\":2}",
                          "tru",
                          "nul",
                          "\"\x01\"",
                          "\"\xff\"",
                          "\"\xc0\xaf\"",
                          "\"\xed\xa0\x80\"",
                          "{'a':1}"}) {
    auto v = Parse(bad);
    EXPECT_FALSE(v.ok()) << "accepted: " << bad;
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), StatusCode::kSerialization);
    }
  }
}

TEST(JsonTest, LimitsNestingDepth) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(Parse(deep).ok());
  std::string ok(64, '[');
  ok += std::string(64, ']');
  EXPECT_TRUE(Parse(ok).ok());
}

TEST(JsonTest, GetInt64OnlyForPlainIntegers) {
  int64_t n = 0;
  EXPECT_TRUE(Parse("42")->GetInt64(&n));
  EXPECT_EQ(n, 42);
  EXPECT_TRUE(Parse("-9223372036854775808")->GetInt64(&n));
  EXPECT_EQ(n, INT64_MIN);
  EXPECT_FALSE(Parse("9223372036854775808")->GetInt64(&n));
  EXPECT_FALSE(Parse("1.0")->GetInt64(&n));
  EXPECT_FALSE(Parse("1e3")->GetInt64(&n));
}

TEST(JsonTest, ScaledDecimalIsExact) {
  bool sat = false;
  // 1704164645.678 is not exact in binary floating point; the decimal parse must be.
  EXPECT_EQ(ScaledDecimal("1704164645.678", 3, &sat), 1704164645678);
  EXPECT_EQ(ScaledDecimal("1.704164645678E9", 3, &sat), 1704164645678);
  EXPECT_EQ(ScaledDecimal("1.704164645e9", 3, &sat), 1704164645000);
  EXPECT_EQ(ScaledDecimal("1704164645", 3, &sat), 1704164645000);
  EXPECT_EQ(ScaledDecimal("1704164645.6789", 3, &sat), 1704164645678);  // truncated
  EXPECT_EQ(ScaledDecimal("17041646456789E-4", 3, &sat), 1704164645678);
  EXPECT_EQ(ScaledDecimal("-1.5", 3, &sat), -1500);
  EXPECT_EQ(ScaledDecimal("-0.0005", 3, &sat), -1);  // floor
  EXPECT_EQ(ScaledDecimal("0", 3, &sat), 0);
  EXPECT_EQ(ScaledDecimal("0.000", 3, &sat), 0);
  EXPECT_FALSE(sat);
  ScaledDecimal("1e300", 3, &sat);
  EXPECT_TRUE(sat);
  ScaledDecimal("99999999999999999", 3, &sat);
  EXPECT_TRUE(sat);
}

TEST(JsonTest, QuotesAndSerializesRoundTrip) {
  std::string out;
  AppendQuoted(&out, "a\"b\\c\n\x01\xc3\xa9");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"");
  auto v = Parse(R"({"k":[1,"two",{"x":false}],"n":null})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(Serialize(*v), R"({"k":[1,"two",{"x":false}],"n":null})");
}

}  // namespace
}  // namespace meterd::json
