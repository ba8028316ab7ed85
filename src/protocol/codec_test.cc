#include "protocol/codec.h"

#include <gtest/gtest.h>

#include "protocol/errors.h"

namespace meterd::protocol {
namespace {

TEST(CodecTest, TimestampsInEveryFormClientsSend) {
  auto ms = [](const char* text) { return TimestampMillis(*json::Parse(text)); };
  EXPECT_EQ(ms("1704164645"), 1704164645000);        // botocore, AWS CLI
  EXPECT_EQ(ms("1704164645.678"), 1704164645678);    // JS v3
  EXPECT_EQ(ms("1.704164645678E9"), 1704164645678);  // exponent form
  EXPECT_EQ(ms("1.7041646456789e9"), 1704164645678);
  EXPECT_EQ(EpochSecondsText(1704164645000), "1704164645");
  EXPECT_EQ(EpochSecondsText(1704164645678), "1704164645.678");
  EXPECT_EQ(EpochSecondsText(1704164645500), "1704164645.5");
  EXPECT_EQ(EpochSecondsText(-1500), "-2.5");
}

TEST(CodecTest, DecodesAndEchoesABatch) {
  auto body = json::Parse(R"({"ProductCode":"","UsageRecords":[{"Timestamp":1704164645.678,
      "CustomerAWSAccountId":"444455556666","LicenseArn":"arn:aws:x::1:l:y","Dimension":"d\"q",
      "UsageAllocations":[{"AllocatedUsageQuantity":0}]}]})");
  ASSERT_TRUE(body.ok());
  auto in = DecodeBatchMeterUsage(*body);
  EXPECT_TRUE(in.product_code.empty());
  ASSERT_EQ(in.records.size(), 1u);
  EXPECT_EQ(in.records[0].quantity, 0);  // absent -> 0
  EXPECT_TRUE(in.records[0].has_allocations);
  metering::BatchMeterUsageOutput out;
  out.results.push_back({in.records[0], "id-1", metering::RecordStatus::kSuccess});
  EXPECT_EQ(EncodeBatchMeterUsage(out),
            R"({"Results":[{"UsageRecord":{"Timestamp":1704164645.678,)"
            R"("CustomerAWSAccountId":"444455556666","LicenseArn":"arn:aws:x::1:l:y",)"
            R"("Dimension":"d\"q","Quantity":0,"UsageAllocations":[{"AllocatedUsageQuantity":0}]},)"
            R"("MeteringRecordId":"id-1","Status":"Success"}],"UnprocessedRecords":[]})");
}

TEST(ErrorsTest, StatusMapsToTheWire) {
  EXPECT_EQ(ToWireError(StatusCode::kIdempotencyConflict).http_status, 409);
  EXPECT_STREQ(ToWireError(StatusCode::kDryRunOperation).type, "DryRunOperation");
  EXPECT_EQ(ToWireError(StatusCode::kDryRunOperation).http_status, 412);
  EXPECT_EQ(ToWireError(StatusCode::kMissingAuthenticationToken).http_status, 403);
  EXPECT_EQ(ToWireError(StatusCode::kInvalidSignatureScope).http_status, 400);
  EXPECT_EQ(ToWireError(StatusCode::kIoError).http_status, 500);
  HttpResponse r = ErrorResponse(Status(StatusCode::kIoError, "/secret/path: disk full"), "rid");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("/secret/path"), std::string::npos);  // internal detail not leaked
  EXPECT_NE(r.body.find("\"__type\":\"InternalServiceErrorException\""), std::string::npos);
  HttpResponse t = ErrorResponse(Status(StatusCode::kTimestampOutOfBounds, "m\"x"), "rid");
  EXPECT_EQ(t.body, R"({"__type":"TimestampOutOfBoundsException","message":"m\"x"})");
  bool has_id = false;
  for (const auto& h : t.headers)
    has_id = has_id || (h.name == "x-amzn-RequestId" && h.value == "rid");
  EXPECT_TRUE(has_id);
}

}  // namespace
}  // namespace meterd::protocol
