#include "model/service_model.h"

#include <gtest/gtest.h>

namespace meterd::model {
namespace {

std::vector<Violation> Validate(const char* op, const char* body) {
  auto v = json::Parse(body);
  EXPECT_TRUE(v.ok()) << body;
  std::vector<Violation> out;
  ServiceModel::Builtin().ValidateInput(op, *v, &out);
  return out;
}

TEST(ServiceModelTest, KnowsTheServiceMetadata) {
  const ServiceModel& m = ServiceModel::Builtin();
  EXPECT_EQ(m.target_prefix(), "AWSMPMeteringService");
  EXPECT_EQ(m.signing_name(), "aws-marketplace");
  for (const char* op : {"BatchMeterUsage", "MeterUsage", "RegisterUsage", "ResolveCustomer"}) {
    EXPECT_TRUE(m.HasOperation(op)) << op;
  }
  EXPECT_FALSE(m.HasOperation("DeleteEverything"));
}

TEST(ServiceModelTest, AcceptsAValidBatch) {
  EXPECT_TRUE(Validate("BatchMeterUsage",
                       R"({"ProductCode":"acmesaas01","UsageRecords":[{"Timestamp":1700000000.5,
                           "CustomerIdentifier":"c","Dimension":"d","Quantity":0,
                           "UsageAllocations":[{"AllocatedUsageQuantity":0,
                           "Tags":[{"Key":"k","Value":"v w"}]}]}]})")
                  .empty());
}

TEST(ServiceModelTest, ReportsEveryViolationWithAwsWording) {
  auto v =
      Validate("BatchMeterUsage",
               R"({"ProductCode":"bad code!","UsageRecords":[{"Dimension":"","Quantity":-1}]})");
  ASSERT_EQ(v.size(), 5u);
  std::string text = FormatViolations(v);
  EXPECT_NE(text.find("5 validation errors detected: "), std::string::npos);
  EXPECT_NE(text.find("Value 'bad code!' at 'productCode' failed to satisfy constraint: Member "
                      "must satisfy regular expression pattern: ^[-a-zA-Z0-9/=:_.@]*$"),
            std::string::npos);
  EXPECT_NE(text.find("Value null at 'usageRecords.1.member.timestamp' failed to satisfy "
                      "constraint: Member must not be null"),
            std::string::npos);
  EXPECT_NE(text.find("Value '' at 'usageRecords.1.member.dimension' failed to satisfy "
                      "constraint: Member must have length greater than or equal to 1"),
            std::string::npos);
  EXPECT_NE(text.find("Value '-1' at 'usageRecords.1.member.quantity' failed to satisfy "
                      "constraint: Member must have value greater than or equal to 0"),
            std::string::npos);
}

TEST(ServiceModelTest, ListSizesTypesAndRanges) {
  std::string records = "[";
  for (int i = 0; i < 26; ++i) {
    records +=
        std::string(i ? "," : "") + R"({"Timestamp":1,"CustomerIdentifier":"c","Dimension":"d"})";
  }
  records += "]";
  auto v = Validate("BatchMeterUsage", ("{\"UsageRecords\":" + records + "}").c_str());
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(FormatViolations(v),
            "1 validation error detected: Value '26' at 'usageRecords' failed to satisfy "
            "constraint: Member must have length less than or equal to 25");
  EXPECT_EQ(Validate("MeterUsage", R"({"ProductCode":"p","Timestamp":"now","UsageDimension":"d"})")
                .at(0)
                .constraint,
            "Member must be a timestamp in epoch seconds");
  EXPECT_EQ(
      Validate(
          "MeterUsage",
          R"({"ProductCode":"p","Timestamp":1,"UsageDimension":"d","UsageQuantity":2147483648})")
          .at(0)
          .constraint,
      "Member must have value less than or equal to 2147483647");
  EXPECT_EQ(
      Validate("MeterUsage",
               R"({"ProductCode":"p","Timestamp":1,"UsageDimension":"d","UsageQuantity":1.5})")
          .at(0)
          .constraint,
      "Member must be an integer");
  EXPECT_EQ(Validate("MeterUsage",
                     R"({"ProductCode":"p","Timestamp":1,"UsageDimension":"d","DryRun":"yes"})")
                .at(0)
                .constraint,
            "Member must be a boolean");
  // A required ProductCode of "" is absent (Smithy default "").
  EXPECT_EQ(Validate("MeterUsage", R"({"ProductCode":"","Timestamp":1,"UsageDimension":"d"})")
                .at(0)
                .constraint,
            "Member must not be null");
  // Null members are absent; unknown members are ignored.
  EXPECT_TRUE(
      Validate("MeterUsage",
               R"({"ProductCode":"p","Timestamp":1,"UsageDimension":"d","ClientToken":null,"X":1})")
          .empty());
}

TEST(ServiceModelTest, TagRulesAreMarked) {
  auto v = Validate("MeterUsage", R"({"ProductCode":"p","Timestamp":1,"UsageDimension":"d",
      "UsageAllocations":[{"AllocatedUsageQuantity":1,"Tags":[
        {"Key":"a","Value":"1"},{"Key":"b","Value":"2"},{"Key":"c","Value":"3"},
        {"Key":"d","Value":"4"},{"Key":"e","Value":"5"},{"Key":"f~","Value":"6"}]}]})");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_TRUE(v[0].in_tag);  // 6 tags
  EXPECT_TRUE(v[1].in_tag);  // '~' is outside the tag pattern
  auto missing = Validate("MeterUsage", R"({"ProductCode":"p","Timestamp":1,"UsageDimension":"d",
      "UsageAllocations":[{"AllocatedUsageQuantity":1,"Tags":[{"Key":"a"}]}]})");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_FALSE(missing[0].in_tag);  // a missing Value is a plain validation error
}

TEST(PatternTest, CompiledClassesMatchTheRegexSemantics) {
  // The tag pattern's " -=" is a range (U+0020..U+003D): it admits '!' and '<'.
  Pattern tag("^[a-zA-Z0-9+ -=._:\\/@]+$");
  EXPECT_TRUE(tag.Matches("a b!<"));
  EXPECT_FALSE(tag.Matches(""));
  EXPECT_FALSE(tag.Matches("a~"));
  Pattern code("^[-a-zA-Z0-9/=:_.@]*$");
  EXPECT_TRUE(code.Matches(""));
  EXPECT_TRUE(code.Matches("prod-1/x=y:z_@."));
  EXPECT_FALSE(code.Matches("p p"));
  Pattern any("[\\s\\S]+");
  EXPECT_TRUE(any.Matches("\n"));
  EXPECT_FALSE(any.Matches(""));
  Pattern arn(
      "^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/"
      ".-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$");
  EXPECT_TRUE(arn.Matches("arn:aws:license-manager::294406891311:license:l-0a1b"));
  EXPECT_FALSE(arn.Matches("arn:aws:license-manager"));
}

}  // namespace
}  // namespace meterd::model
